"""Tests of serving.check on small SavedModels built from the stub model of ``signatures_test``."""

import argparse
import os
import shutil

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving import check, signatures, warmup
from serving.testing import EXAMPLES, RAW_SPEC, SPEC, StubModel, StubTransformOutput


class ScaledStub(StubModel):
    """The stub model with a variable (so a copy without ``variables/`` is broken) and an output scale."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = tf.Variable(scale)

    def __call__(self, x, training=False):
        return {k: v * self.scale for k, v in super().__call__(x, training).items()}


def _export(path, scale=1.0, with_warmup=True):
    model = ScaledStub(scale)
    sigs = signatures.build_signatures(model, StubTransformOutput(), SPEC)
    tf.saved_model.save(model, path, signatures=sigs)
    raw = {k: RAW_SPEC[k] for k in ("user_id", "scenario", "age", "price", "tags")}
    signatures.write_export_metadata(path, signatures.export_metadata(SPEC, ["ctr", "ctcvr"], raw))
    if with_warmup:
        warmup.write_warmup_requests(path, EXAMPLES)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return _export(str(tmp_path_factory.mktemp("check") / "1"))


def test_servable_model_passes_every_step(good):
    res = check.export_check(good)
    assert res.ok, res.problems
    text = "\n".join(res.lines)
    assert "signature_def['predict_raw']:" in text and "inputs['price'] tensor_info:" in text
    assert "        dtype: DT_STRING\n        shape: (-1)\n        name: serving_default_examples:0" in text
    for step in ("TF1 session loader: serving_default", "TF1 and TF2 agree",
                 "TF2 signature predict_raw == serving_default", "TF2 signature eval_labels",
                 "warm-up request 2/2: serving_default, 8 examples"):
        assert any(line.startswith(f"[ok] {step}") for line in res.lines), step


def test_cli_handler_exit_codes(good, tmp_path, capsys):
    assert check.cmd_export_check(argparse.Namespace(model_dir=good)) == 0
    assert capsys.readouterr().out.rstrip().endswith("export-check: OK")
    assert check.cmd_export_check(argparse.Namespace(model_dir=str(tmp_path / "nope"))) == 2
    assert "nope: no such model directory" in capsys.readouterr().err
    os.makedirs(tmp_path / "msmt" / "17")
    assert check.cmd_export_check(argparse.Namespace(model_dir=str(tmp_path / "msmt"))) == 2
    assert "holds versions 17: pass one of them" in capsys.readouterr().err


def test_parser_registers_the_subcommand(capsys):
    parser = argparse.ArgumentParser(prog="msmt")
    check.add_export_check_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export-check", "/m/1"])
    assert args.model_dir == "/m/1" and args.func is check.cmd_export_check
    with pytest.raises(SystemExit):
        parser.parse_args(["export-check", "--help"])
    assert "tf_serving_warmup_requests" in capsys.readouterr().out


def _problems(path):
    res = check.export_check(path)
    assert not res.ok
    return "\n".join(res.problems)


def test_out_of_range_outputs_and_missing_warmup_fail(tmp_path, capsys):
    assert "head 'ctr': values outside [0, 1]" in _problems(_export(str(tmp_path / "big"), scale=3.0))
    missing = _problems(_export(str(tmp_path / "nowarm"), with_warmup=False))
    assert "tf_serving_warmup_requests: no TF Serving warm-up file" in missing
    assert check.cmd_export_check(argparse.Namespace(model_dir=str(tmp_path / "nowarm"))) == 1
    assert "export-check: FAILED: warm-up requests" in capsys.readouterr().err


def test_wrong_warmup_signature_and_missing_variables_fail(good, tmp_path):
    wrong = shutil.copytree(good, tmp_path / "wrong")
    with tf.io.TFRecordWriter(warmup.warmup_path(str(wrong))) as w:
        w.write(warmup.predict_log(EXAMPLES, "msmt", signature_name="serve_examples").SerializeToString())
    assert "signature 'serve_examples' does not exist" in _problems(str(wrong))
    novars = shutil.copytree(good, tmp_path / "novars")
    shutil.rmtree(novars / "variables")
    problems = _problems(str(novars))
    assert "TF1 session loader: serving_default:" in problems and "tf.saved_model.load:" in problems


def test_serving_default_needs_exactly_one_string_input():
    meta = meta_graph_pb2.MetaGraphDef()
    sig = meta.signature_def["serving_default"]
    sig.inputs["a"].dtype = tf.string.as_datatype_enum
    sig.inputs["b"].dtype = tf.float32.as_datatype_enum
    with pytest.raises(ValueError, match="exactly one DT_STRING input"):
        check.serving_input_key(meta)
    with pytest.raises(ValueError, match="no serving_default signature"):
        check.serving_input_key(meta_graph_pb2.MetaGraphDef())


def test_publish_runs_the_checks_on_the_copy_and_refuses_an_unservable_model(good, tmp_path):
    """The Pusher's path: ``publish_version(check=servability_problems)`` publishes the servable model and
    refuses one whose outputs leave [0, 1], naming the reason, with nothing left under the model root."""
    from serving.publish import UnservableModelError, publish_version

    root = str(tmp_path / "serving")
    version = publish_version(good, root, "msmt", version=1, check=check.servability_problems)
    assert os.listdir(os.path.join(root, "msmt")) == ["1"] and version.endswith("/msmt/1")
    bad = _export(str(tmp_path / "big"), scale=3.0)
    with pytest.raises(UnservableModelError, match=r"big is not servable, not published: .*head 'ctr': values "
                                                   r"outside \[0, 1\]"):
        publish_version(bad, root, "msmt", version=2, check=check.servability_problems)
    assert os.listdir(os.path.join(root, "msmt")) == ["1"]
    assert check.servability_problems(str(tmp_path / "nope")) == [f"{tmp_path / 'nope'}: no such model directory"]
