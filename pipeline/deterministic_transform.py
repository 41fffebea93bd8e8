"""Transform with a fixed input batch size, so that the same data always gives the same transformed data.

TFX's Transform reads its input in batches whose size tfx-bsl tunes by timing, so it changes with machine
load. Full-pass analyzers (mean and variance for ``tft.scale_to_z_score``) then sum the same numbers in a
different order, and the z-scores differ in the last float32 bits; a few epochs of training amplify that to
visibly different metrics (two identical runs differed by up to 0.06 GAUC). This executor asks for a constant
batch of ``BATCH_SIZE`` rows (the largest the tuned batching uses) whenever TFX would let tfx-bsl choose
(``pipeline.tfx_patches.fixed_transform_batch_size``). The component keeps the id ``Transform``.

**Analyzer cache.** TFT can keep each analyzer's partial result per input span (TFX's ``analyzer_cache`` /
``updated_analyzer_cache``) so that a later run over an overlapping window analyses only its new spans. That
pays only when spans recur, and it costs every run: per-span analysis builds one Beam branch per analyzer and
span, and writing the cache adds its own stages (Transform on the 8,000-row session data, two spans: 29 s with
the cache, 20 s without; at 200k rows a span, day 3 of a two-span window with its first span cached: 53 s
against 55 s; docs/benchmarks.md). A run whose analyzer-cache input changed is also never an unchanged rerun
for TFX's execution cache: a same-day rerun re-executes Transform. So the cache is an option,
``msmt run --transform-cache`` (a window that moves by one span a day, over large spans), which reads the newest
cache with :func:`latest_analyzer_cache_resolver`; by default it is off (``disable_analyzer_cache``: one
joint analysis of all spans). Cache entries are keyed by the span's Examples artifact and by a fingerprint of the
analyzer, so a changed spec or a re-read span is analysed again.
"""

from tfx import v1 as tfx
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec

from pipeline.resolvers import latest_output_resolver
from pipeline.tfx_patches import fixed_transform_batch_size

BATCH_SIZE = 1000
TRANSFORM_ID = "Transform"
CACHE_RESOLVER_ID = "latest_analyzer_cache_resolver"
CACHE_KEY = "analyzer_cache"


class FixedBatchExecutor(transform_executor.Executor):
    """Transform executor whose Beam input batches always hold ``BATCH_SIZE`` records."""

    def Do(self, input_dict, output_dict, exec_properties):
        with fixed_transform_batch_size(BATCH_SIZE):
            return super().Do(input_dict, output_dict, exec_properties)


class DeterministicTransform(tfx.components.Transform):
    """``tfx.components.Transform`` with :class:`FixedBatchExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(FixedBatchExecutor)


def latest_analyzer_cache_resolver(empty_is_success: bool = True):
    """Resolver node: the analyzer cache the newest earlier Transform wrote, or none on the first run."""
    return latest_output_resolver(CACHE_RESOLVER_ID, CACHE_KEY, tfx.types.standard_artifacts.TransformCache,
                                  TRANSFORM_ID, "updated_analyzer_cache", empty_is_success)
