"""Transform with a fixed input batch size, so that the same data always gives the same transformed data.

TFX's Transform reads its input in batches whose size tfx-bsl tunes by timing, so it changes with machine
load. Full-pass analyzers (mean and variance for ``tft.scale_to_z_score``) then sum the same numbers in a
different order, and the z-scores differ in the last float32 bits; a few epochs of training amplify that to
visibly different metrics (issue #7, determinism: up to 0.06 GAUC between two identical runs). This executor
asks for a constant batch of ``BATCH_SIZE`` rows (the largest the tuned batching uses) whenever TFX would let
tfx-bsl choose. The component keeps the id ``Transform``.
"""

from tfx import v1 as tfx
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec

BATCH_SIZE = 1000


class FixedBatchExecutor(transform_executor.Executor):
    """Transform executor whose Beam input batches always hold ``BATCH_SIZE`` records."""

    def Do(self, input_dict, output_dict, exec_properties):
        processor = transform_executor.TransformProcessor
        tuned = processor._GetDesiredBatchSize  # noqa: SLF001 - the one hook TFX has for the batch size

        def fixed(self_, data_format, schema):
            return tuned(self_, data_format, schema) or BATCH_SIZE

        processor._GetDesiredBatchSize = fixed
        try:
            return super().Do(input_dict, output_dict, exec_properties)
        finally:
            processor._GetDesiredBatchSize = tuned


class DeterministicTransform(tfx.components.Transform):
    """``tfx.components.Transform`` with :class:`FixedBatchExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(FixedBatchExecutor)
