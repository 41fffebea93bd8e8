"""End to end: publish the pipeline's pushed model to a TF Serving root and prove it servable.

Uses the session's synthetic pipeline run (``synthetic_run``). One child process publishes the newest pushed
version with warm-up examples taken from the raw data (ExampleGen's tf.Examples), writes the server
configs, runs ``export-check`` on it, and on two deliberately broken copies: a warm-up file calling a
signature that does not exist, and a copy without its variables.
"""

import glob
import os

import pytest
from google.protobuf import text_format

from tests.helpers import run_python

CHILD = r"""
import argparse, contextlib, glob, io, json, os, shutil, sys
import tensorflow as tf
from serving import check, publish, warmup
from serving.signatures import read_export_metadata

result_path, model_dir, examples_glob, work = sys.argv[1:5]
files = sorted(glob.glob(examples_glob))
examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(16)]
version = publish.publish_version(model_dir, os.path.join(work, "serving"), "msmt", warmup_examples=examples)
configs = publish.write_server_configs(os.path.join(work, "serving"), ["msmt"])

def run_cli(path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = check.cmd_export_check(argparse.Namespace(model_dir=path))
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}

wrong = shutil.copytree(version, os.path.join(work, "wrong-signature"))
with tf.io.TFRecordWriter(warmup.warmup_path(wrong)) as w:
    w.write(warmup.predict_log(examples[:2], "msmt", signature_name="predict").SerializeToString())
novars = shutil.copytree(version, os.path.join(work, "no-variables"))
shutil.rmtree(os.path.join(novars, "variables"))

json.dump({
    "version": version, "configs": configs, "metadata": read_export_metadata(version),
    "warmup_batches": [len(r.predict_log.request.inputs["examples"].string_val)
                       for r in warmup.read_warmup_requests(version)],
    "cli": {"good": run_cli(version), "wrong": run_cli(wrong), "novars": run_cli(novars),
            "missing": run_cli(os.path.join(work, "serving", "msmt", "1"))},
}, open(result_path, "w"))
"""


def _newest_pushed_version(out):
    versions = glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))
    assert versions, "the session run pushed no model"
    return max((os.path.dirname(v) for v in versions), key=lambda d: int(os.path.basename(d)))


@pytest.fixture(scope="module")
def published(synthetic_run, tmp_path_factory):
    _, out, _ = synthetic_run
    work = tmp_path_factory.mktemp("serving-export")
    examples = str(out / "pipeline_root" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*")
    return run_python(CHILD, str(work / "result.json"), [_newest_pushed_version(out), examples, str(work)],
                      timeout=600), work


def test_published_version_is_numeric_and_atomic(published):
    res, work = published
    model_root = work / "serving" / "msmt"
    assert os.path.dirname(res["version"]) == str(model_root)
    assert sorted(os.listdir(model_root)) == [os.path.basename(res["version"])]
    assert os.path.basename(res["version"]).isdigit()
    assert res["warmup_batches"] == [1, 8]


def test_server_configs_point_at_the_model_root(published):
    from serving.publish import monitoring_config_class
    from tensorflow_serving.config import model_server_config_pb2

    res, work = published
    models_path, monitoring_path = res["configs"]
    with open(models_path) as fh:
        cfg = text_format.Parse(fh.read(), model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path) for c in cfg.model_config_list.config] == [("msmt", str(work / "serving" / "msmt"))]
    with open(monitoring_path) as fh:
        assert text_format.Parse(fh.read(), monitoring_config_class()()).prometheus_config.enable


def test_export_check_passes_with_every_head(published):
    res, _ = published
    good = res["cli"]["good"]
    assert good["code"] == 0 and good["stdout"].rstrip().endswith("export-check: OK"), good["stderr"]
    assert set(res["metadata"]) == {"spec", "heads", "raw_features", "required_features"}
    # the synthetic logs always hold the ids and the scenario: serving_default (and msmt score) require them
    assert res["metadata"]["required_features"] == ["user_id", "item_id", "scenario"]
    assert {"ctr", "ctavr", "ctcvr", "xcvr"} <= set(res["metadata"]["heads"])
    assert res["metadata"]["raw_features"]["item_tags"] == "string"
    assert res["metadata"]["raw_features"]["user_age"] == "int64"
    assert res["metadata"]["raw_features"]["item_price"] == "float32"
    assert "click" not in res["metadata"]["raw_features"]
    lines = good["stdout"]
    for sig in ("serving_default", "predict_raw", "transform_features", "eval_labels"):
        assert f"signature_def['{sig}']:" in lines
    for step in ("TF1 session loader", "TF1 and TF2 agree", "TF2 signature predict_raw == serving_default",
                 "TF2 signature transform_features", "warm-up request 2/2"):
        assert f"[ok] {step}" in lines, step


def test_broken_models_fail_with_a_clear_problem(published):
    res, _ = published
    wrong, novars, missing = res["cli"]["wrong"], res["cli"]["novars"], res["cli"]["missing"]
    assert wrong["code"] == 1
    assert "export-check: FAILED: warm-up request 1/1: ValueError: signature 'predict' does not exist" \
        in wrong["stderr"]
    assert novars["code"] == 1
    assert "export-check: FAILED: tf.saved_model.load:" in novars["stderr"]
    assert "export-check: FAILED: TF1 session loader: serving_default:" in novars["stderr"]
    assert missing["code"] == 2 and "no such model directory" in missing["stderr"]
