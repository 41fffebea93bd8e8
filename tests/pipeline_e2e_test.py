"""End to end: `msmt run` on ~8k synthetic impressions and on the Ali-CCP sample.

Checks an MLMD execution for every component, then loads the pushed SavedModel in a fresh process and
calls ``serving_default`` on real serialized tf.Examples from the run's eval split.
"""

import glob
import os

import pytest

from pipeline import mlmd
from pipeline.pipeline import COMPONENT_ORDER
from tests.helpers import SHARED_DATA, run_cli, run_python

SERVE_CHILD = r"""
import glob, json, os, sys
import numpy as np
import tensorflow as tf
model_dir, examples_glob = sys.argv[2], sys.argv[3]
files = sorted(glob.glob(examples_glob))
records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(200)]
loaded = tf.saved_model.load(model_dir)
sig = loaded.signatures["serving_default"]
inputs = sig.structured_input_signature[1]
out = {k: v.numpy().tolist() for k, v in sig(examples=tf.constant(records)).items()}
json.dump({"n": len(records), "outputs": out, "inputs": {k: str(v.dtype.name) for k, v in inputs.items()},
           "signatures": sorted(loaded.signatures.keys())}, open(sys.argv[1], "w"))
"""


def _pipeline_states(run_dir, name="msmt"):
    store = mlmd.open_store(os.path.join(run_dir, "metadata.sqlite"))
    return store, mlmd.latest_run(store, name)


def _component(runs, short):
    return next(v for k, v in runs.items() if k.endswith(short))


def _serve(tmp_path, model_dir, examples_uri):
    return run_python(SERVE_CHILD, str(tmp_path / "serve.json"),
                      [model_dir, os.path.join(examples_uri, "Split-eval", "*")])


def test_every_component_executed_in_mlmd(synthetic_run):
    _, out, _ = synthetic_run
    _, runs = _pipeline_states(str(out))
    states = {c: _component(runs, c).state for c in COMPONENT_ORDER}
    assert all(s == "COMPLETE" for s in states.values()), states


def test_progress_and_summary_printed(synthetic_run):
    _, out, stdout = synthetic_run
    for c in COMPONENT_ORDER:
        assert f"{c}" in stdout and "finished in" in stdout
    assert "pushed model: " + str(out / "serving" / "msmt") in stdout
    assert "ctr    overall" in stdout
    assert os.path.exists(out / "run_summary.json")


def test_model_blessed_and_pushed_to_versioned_dir(synthetic_run):
    _, out, _ = synthetic_run
    _, runs = _pipeline_states(str(out))
    blessing = _component(runs, "Evaluator").outputs["blessing"][0]
    assert mlmd.custom_property(blessing, "blessed") == 1
    versions = glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))
    assert len(versions) == 1, versions


def test_pushed_model_serves_serialized_examples(synthetic_run, tmp_path):
    _, out, _ = synthetic_run
    _, runs = _pipeline_states(str(out))
    model_dir = os.path.dirname(glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))[0])
    res = _serve(tmp_path, model_dir, _component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["inputs"] == {"examples": "string"}
    assert {"serving_default", "transform_features"} <= set(res["signatures"])
    outs = res["outputs"]
    assert {"ctr", "ctcvr", "xcvr"} <= set(outs)
    for head, values in outs.items():
        assert len(values) == res["n"] == 200, head
        assert all(0.0 <= v <= 1.0 for v in values), head
    assert all(c <= r + 1e-6 for c, r in zip(outs["ctcvr"], outs["ctr"]))
    assert all(c <= x + 1e-6 for c, x in zip(outs["ctcvr"], outs["xcvr"]))
    assert len(set(round(v, 6) for v in outs["ctr"])) > 10, "predictions should vary across examples"


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "aliccp")),
                    reason="../shared/data/aliccp is absent (third-party samples are read in place, never copied)")
def test_aliccp_sample_pipeline(tmp_path):
    out = tmp_path / "aliccp"
    proc = run_cli(["run", "--data", os.path.join(SHARED_DATA, "aliccp", "ali_ccp_*_sample.csv"), "--spec", "aliccp",
                    "--output", str(out), "--epochs", "3", "--batch-size", "32", "--min-auc", "0.0"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = _pipeline_states(str(out))
    states = {c: _component(runs, c).state for c in COMPONENT_ORDER}
    assert all(s == "COMPLETE" for s in states.values()), states
    model_dir = _component(runs, "Trainer").outputs["model"][0].uri
    res = _serve(tmp_path, os.path.join(model_dir, "Format-Serving"),
                 _component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["n"] > 0
    for values in res["outputs"].values():
        assert all(0.0 <= v <= 1.0 for v in values)


def test_aem2tl_rerun_reuses_cached_upstream_and_pushes(synthetic_run, tmp_path):
    root, out, _ = synthetic_run
    cfg = tmp_path / "aem2tl.yaml"
    cfg.write_text("embedding_dim: 8\nscenario_expert_units: [32]\ntask_expert_units: [16]\ntower_units: [16]\n")
    train = tmp_path / "train.yaml"
    train.write_text("weighting: {strategy: gradnorm, alpha: 1.5}\n")
    proc = run_cli(["run", "--data", str(root / "data" / "span-*" / "impressions.csv"), "--spec", "synthetic",
                    "--output", str(out), "--model", "aem2tl", "--model-config", str(cfg), "--train-config",
                    str(train), "--epochs", "2", "--batch-size", "256"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = _pipeline_states(str(out))
    states = {c: _component(runs, c).state for c in COMPONENT_ORDER}
    upstream = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform")
    assert all(states[c] == "CACHED" for c in upstream), states
    assert all(states[c] == "COMPLETE" for c in ("Trainer", "Evaluator", "Pusher")), states
    versions = sorted(glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb")))
    assert len(versions) == 2, versions
    res = _serve(tmp_path, os.path.dirname(versions[-1]), _component(runs, "ExampleGen").outputs["examples"][0].uri)
    outs = res["outputs"]
    assert {"ctr", "ctavr", "ctcvr", "xcvr"} <= set(outs)
    assert all(c <= x + 1e-6 for c, x in zip(outs["ctcvr"], outs["xcvr"]))
