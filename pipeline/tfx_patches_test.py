"""Each TFX patch: TFX still behaves the way that makes it necessary, the patch changes exactly that, and the
original comes back. A failure after a TFX upgrade says which patch to revisit (pipeline/tfx_patches.py)."""

import apache_beam as beam
import pytest
from tfx.components.example_gen import write_split
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2

from pipeline import tfx_patches


def test_other_tfx_versions_are_refused_loudly():
    assert tfx_patches.check_tfx_version().startswith(tfx_patches.SUPPORTED_TFX)
    with pytest.raises(tfx_patches.UnsupportedTfxVersion, match="written for TFX 1.21.x and TFX 1.22.0 is installed"):
        tfx_patches.check_tfx_version("1.22.0")


def test_transform_batch_size_is_still_left_to_tfx_bsl_and_the_patch_fixes_it():
    processor = transform_executor.TransformProcessor
    example = example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE
    original = processor._GetDesiredBatchSize
    # Still needed: for tf.Examples TFX returns no batch size, so tfx-bsl tunes it by timing.
    assert original(object.__new__(processor), example, None) is None
    with tfx_patches.fixed_transform_batch_size(1000):
        assert processor._GetDesiredBatchSize(object.__new__(processor), example, None) == 1000
    assert processor._GetDesiredBatchSize is original


def _stage_labels(ptransform_factory, tmp_path):
    """Labels of the stages a split writer adds to a pipeline (built, not run; Create's own stages left out)."""
    p = beam.Pipeline()
    _ = p | beam.Create([b"a"]) | "Write" >> ptransform_factory(str(tmp_path), example_gen_pb2.FORMAT_TFRECORDS_GZIP)
    labels = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            labels.append(node.full_label)

        def visit_transform(self, node):
            labels.append(node.full_label)

    p.visit(Visitor())
    return [label for label in labels if label.startswith("Write")]


def test_example_gen_still_reshuffles_each_split_and_the_patch_writes_in_reading_order(tmp_path):
    # Still needed: TFX's writer reshuffles (held in memory whole by the in-process runner).
    assert "Write/Shuffle" in _stage_labels(write_split.WriteSplit, tmp_path / "tfx")  # a beam Reshuffle
    original = write_split.WriteSplit
    with tfx_patches.splits_written_in_order():
        labels = _stage_labels(write_split.WriteSplit, tmp_path / "ours")
        assert "Write/Shuffle" not in labels and "Write/MaybeSerialize" in labels, labels
        with beam.Pipeline() as p:  # and it writes every record
            _ = p | beam.Create([b"x", b"y"]) | write_split.WriteSplit(
                str(tmp_path / "out"), example_gen_pb2.FORMAT_TFRECORDS_GZIP)
    assert write_split.WriteSplit is original
    import tensorflow as tf
    written = sorted(r.numpy() for r in tf.data.TFRecordDataset(
        tf.io.gfile.glob(str(tmp_path / "out" / "*")), compression_type="GZIP"))
    assert written == [b"x", b"y"]


def test_evaluator_still_runs_tfmas_default_evaluators_and_the_patch_passes_ours():
    import inspect

    import tensorflow_model_analysis as tfma
    from tfx.components.evaluator import executor as evaluator_executor

    # Still needed: TFX's Evaluator calls ExtractEvaluateAndWriteResults without evaluators (TFMA's defaults).
    source = inspect.getsource(evaluator_executor.Executor.Do)
    call = source[source.index("tfma.ExtractEvaluateAndWriteResults("):]
    call = call[:call.index("output_path=")]
    assert "extractors=extractors" in call and "evaluators=" not in call
    seen = []

    def stages(shared, config):
        seen.append((shared, config))
        return {"extractors": ["E"], "evaluators": ["V"]}

    original = evaluator_executor.tfma
    with tfx_patches.evaluator_stages(stages):
        patched = evaluator_executor.tfma
        assert patched.EvalConfig is tfma.EvalConfig  # everything else is TFMA's
        called = {}
        real = tfma.ExtractEvaluateAndWriteResults
        try:
            tfma.ExtractEvaluateAndWriteResults = lambda *a, **kw: called.update(kw) or "ptransform"
            assert patched.ExtractEvaluateAndWriteResults(eval_shared_model="M", eval_config="C",
                                                          extractors=None, output_path="o") == "ptransform"
        finally:
            tfma.ExtractEvaluateAndWriteResults = real
    assert evaluator_executor.tfma is original
    assert seen == [("M", "C")]
    assert called == {"eval_shared_model": "M", "eval_config": "C", "extractors": ["E"], "evaluators": ["V"],
                      "output_path": "o"}


class _BeamExecutor(base_beam_executor.BaseBeamExecutor):
    """A Beam executor as TFX constructs them (only its Beam args are looked at)."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        pass


def test_beam_executors_still_package_tfx_and_the_patch_skips_it_for_the_direct_runner(monkeypatch):
    from tfx.utils import dependency_utils

    built = []
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package",
                        lambda: built.append(1) or "/tmp/tfx_ephemeral-1.21.0.tar.gz")

    def executor_args(args):
        return _BeamExecutor(_BeamExecutor.Context(beam_pipeline_args=list(args)))._beam_pipeline_args

    local = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    # Still needed: TFX packages itself for the DirectRunner too, which never stages it.
    assert "--extra_package=/tmp/tfx_ephemeral-1.21.0.tar.gz" in executor_args(local) and len(built) == 1
    original = dependency_utils.make_beam_dependency_flags
    with tfx_patches.no_tfx_sdist_for_local_beam():
        assert not any(a.startswith("--extra_package") for a in executor_args(local))
        assert not any(a.startswith("--extra_package") for a in executor_args(["--runner=DirectRunner"] + local))
        assert len(built) == 1
        # Other runners stage their dependencies: they still get TFX's package.
        remote = executor_args(["--runner=DataflowRunner", "--project=p", "--region=r"])
        assert "--extra_package=/tmp/tfx_ephemeral-1.21.0.tar.gz" in remote and len(built) == 2
        # And dependencies the user named are left alone, as TFX does.
        assert not any(a.startswith("--extra_package") for a in
                       executor_args(["--runner=FlinkRunner", "--setup_file=/src/setup.py"]))
    assert dependency_utils.make_beam_dependency_flags is original


@pytest.mark.parametrize("args, local", [
    ([], True), (["--runner=DirectRunner"], True), (["--runner=SwitchingDirectRunner"], True),
    (["--runner=DataflowRunner"], False), (["--runner=FlinkRunner"], False), (["--runner", "SparkRunner"], False),
    (["--runner=PortableRunner", "--job_endpoint=localhost:8099"], False)])
def test_is_local_beam_runner(args, local):
    assert tfx_patches.is_local_beam_runner(args) is local
