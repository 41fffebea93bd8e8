"""Every place msmt-rank changes TFX's own code, fenced here, for the TFX version it was written for.

Each patch is a context manager that swaps one TFX function for the duration of one executor's ``Do`` and
restores it afterwards, and each first checks the installed TFX version (:func:`check_tfx_version`): on a
version the patches were not written for it raises :class:`UnsupportedTfxVersion` instead of silently doing
something else. ``pipeline/tfx_patches_test.py`` shows, per patch, that TFX still needs it (the upstream
behaviour is still there) and that the patch does what it says. When TFX is upgraded: run that test, drop the
patches whose upstream change has landed, move :data:`SUPPORTED_TFX` on.

Patches:

* :func:`fixed_transform_batch_size` (used by ``pipeline.deterministic_transform``): TFX's Transform lets
  tfx-bsl tune its input batch size by timing, so full-pass analyzers sum the same numbers in a different order
  from run to run and z-scores differ in the last bits (two identical runs differed by up to 0.06 GAUC after
  training). It would go away with a Transform option for a fixed batch size (``TransformProcessor.
  _GetDesiredBatchSize`` is the only hook in TFX 1.21).
* :func:`splits_written_in_order` (used by ``pipeline.checked_example_gen`` with ``--no-example-shuffle``):
  ExampleGen's ``write_split.WriteSplit`` reshuffles every split, which Beam's in-process DirectRunner holds
  in memory whole (13 GiB at 5M rows). It would go away with an ExampleGen option to write without the
  ``Reshuffle``.
* :func:`evaluator_stages` (used by ``pipeline.evaluator`` with ``evaluate_from="batches"``): TFX's Evaluator
  calls TFMA's ``ExtractEvaluateAndWriteResults`` with its default evaluators, whose metrics take one example
  at a time (``pipeline.batched_evaluation``). The patch passes TFMA extractors and evaluators built from the
  shared models and EvalConfig TFX resolved; TFX's reading, EvalConfig defaults, writers and blessing are
  unchanged. It would go away with an Evaluator option for custom evaluators (TFX 1.21 has
  ``custom_extractors`` only).
* :func:`no_tfx_sdist_for_local_beam` (used by ``pipeline.local_runner`` around each ``LocalDagRunner`` run):
  every Beam-based executor TFX constructs (ExampleGen, StatisticsGen, Transform, Evaluator, ...) packages the
  installed TFX as an sdist (``dependency_utils.make_beam_dependency_flags``: a copy of the whole TFX tree and a
  ``setup.py sdist`` child process, 1.2-1.7 s each) unless the Beam args already name a dependency, so that
  remote workers can import TFX. The in-process DirectRunner stages nothing, so on it the package is built and
  never used: eight times in every ``msmt run`` with two training spans. The patch skips it for the
  DirectRunner only; any other runner (Dataflow, Flink, Spark, ...) still gets TFX's sdist. It would go away
  with TFX checking the runner before packaging.
"""

from __future__ import annotations

import contextlib
import os

SUPPORTED_TFX = "1.21."


class UnsupportedTfxVersion(RuntimeError):
    """The installed TFX is not the version these patches were written for."""


def check_tfx_version(version: str = None) -> str:
    """The installed TFX version; :class:`UnsupportedTfxVersion` unless it is a :data:`SUPPORTED_TFX` release."""
    if version is None:
        import tfx

        version = tfx.__version__
    if not version.startswith(SUPPORTED_TFX):
        raise UnsupportedTfxVersion(
            f"pipeline/tfx_patches.py was written for TFX {SUPPORTED_TFX}x and TFX {version} is installed: check "
            f"each patch against this TFX (pipeline/tfx_patches_test.py) before moving SUPPORTED_TFX")
    return version


@contextlib.contextmanager
def fixed_transform_batch_size(batch_size: int):
    """Transform's Beam input batches hold ``batch_size`` records wherever TFX would let tfx-bsl choose."""
    check_tfx_version()
    from tfx.components.transform import executor as transform_executor

    processor = transform_executor.TransformProcessor
    tuned = processor._GetDesiredBatchSize  # noqa: SLF001 - the one hook TFX has for the batch size

    def fixed(self_, data_format, schema):
        return tuned(self_, data_format, schema) or batch_size

    processor._GetDesiredBatchSize = fixed
    try:
        yield
    finally:
        processor._GetDesiredBatchSize = tuned


def _write_split_in_order():
    import apache_beam as beam
    from tfx.components.example_gen import write_split

    @beam.ptransform_fn
    def write_in_order(example_split, output_split_path: str, output_format, exec_properties=None):
        """TFX's ``write_split.WriteSplit`` for tf.Example TFRecords, without its ``Reshuffle``: a fused stage
        that serialises and writes while the rows are read, so no runner holds the whole split in memory."""
        del output_format, exec_properties
        return (example_split
                | "MaybeSerialize" >> beam.ParDo(write_split.MaybeSerialize())
                | "Write" >> beam.io.WriteToTFRecord(os.path.join(output_split_path, write_split.DEFAULT_FILE_NAME),
                                                     file_name_suffix=".gz"))

    return write_in_order


@contextlib.contextmanager
def splits_written_in_order():
    """ExampleGen's ``Do`` writes its splits in reading order (it looks ``write_split.WriteSplit`` up when it
    builds the Beam pipeline)."""
    check_tfx_version()
    from tfx.components.example_gen import write_split

    original = write_split.WriteSplit
    write_split.WriteSplit = _write_split_in_order()
    try:
        yield
    finally:
        write_split.WriteSplit = original


class _TfmaWithStages:
    """The ``tfma`` module as TFX's Evaluator executor sees it, with ``ExtractEvaluateAndWriteResults`` given
    the extractors and evaluators of ``stages(eval_shared_model, eval_config)``."""

    def __init__(self, tfma, stages):
        self._tfma = tfma
        self._stages = stages

    def __getattr__(self, name):
        return getattr(self._tfma, name)

    def ExtractEvaluateAndWriteResults(self, *args, **kwargs):  # noqa: N802 - TFMA's name
        kwargs.update(self._stages(kwargs.get("eval_shared_model"), kwargs.get("eval_config")))
        return self._tfma.ExtractEvaluateAndWriteResults(*args, **kwargs)


@contextlib.contextmanager
def evaluator_stages(stages):
    """TFX's Evaluator ``Do`` runs TFMA with the extractors and evaluators ``stages(eval_shared_model,
    eval_config)`` returns (``{"extractors": [...], "evaluators": [...]}``)."""
    check_tfx_version()
    from tfx.components.evaluator import executor as evaluator_executor

    original = evaluator_executor.tfma
    evaluator_executor.tfma = _TfmaWithStages(original, stages)
    try:
        yield
    finally:
        evaluator_executor.tfma = original


LOCAL_BEAM_RUNNERS = (None, "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner")


def is_local_beam_runner(beam_pipeline_args) -> bool:
    """Whether ``beam_pipeline_args`` run Beam in this process (the DirectRunner, Beam's default)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(flags=list(beam_pipeline_args)).view_as(StandardOptions).runner
    return (runner if runner is None or isinstance(runner, str) else type(runner).__name__) in LOCAL_BEAM_RUNNERS


@contextlib.contextmanager
def no_tfx_sdist_for_local_beam():
    """Beam executors constructed meanwhile skip TFX's sdist of itself when their runner is the DirectRunner."""
    check_tfx_version()
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags

    def dependency_flags(beam_pipeline_args):
        if is_local_beam_runner(beam_pipeline_args):
            return list(beam_pipeline_args)
        return original(beam_pipeline_args)

    dependency_utils.make_beam_dependency_flags = dependency_flags
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = original
