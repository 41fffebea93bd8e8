"""Transform with a fixed input batch size, so that the same data always gives the same transformed data.

TFX's Transform reads its input in batches whose size tfx-bsl tunes by timing, so it changes with machine
load. Full-pass analyzers (mean and variance for ``tft.scale_to_z_score``) then sum the same numbers in a
different order, and the z-scores differ in the last float32 bits; a few epochs of training amplify that to
visibly different metrics (two identical runs differed by up to 0.06 GAUC). This executor asks for a constant
batch of ``BATCH_SIZE`` rows (the largest the tuned batching uses) whenever TFX would let tfx-bsl choose
(``pipeline.tfx_patches.fixed_transform_batch_size``). The component keeps the id ``Transform``.
"""

from tfx import v1 as tfx
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec

from pipeline.tfx_patches import fixed_transform_batch_size

BATCH_SIZE = 1000


class FixedBatchExecutor(transform_executor.Executor):
    """Transform executor whose Beam input batches always hold ``BATCH_SIZE`` records."""

    def Do(self, input_dict, output_dict, exec_properties):
        with fixed_transform_batch_size(BATCH_SIZE):
            return super().Do(input_dict, output_dict, exec_properties)


class DeterministicTransform(tfx.components.Transform):
    """``tfx.components.Transform`` with :class:`FixedBatchExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(FixedBatchExecutor)
