"""Scale-out and GPU readiness of the Trainer's ``run_fn``, proved on CPU (no GPU machine is available).

* Two replicas (the CPU split into two logical devices, ``MirroredStrategy``) train AEM2TL with GradNorm to
  the same losses, loss weights and exported predictions as one device at the same global batch.
* ``mixed_float16`` keeps every output float32, finite and in [0, 1] (training and the exported signature),
  close to the float32 model.
* Two worker processes on localhost (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``) both train the same
  steps to the same loss as one device; only the chief writes the SavedModel, which serves real examples.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import child_env, finish_python, pipeline_outputs, run_python, start_python

STEPS = 12
BATCH = 128
# dropout off (here and in SharedBottom): replicas and workers draw other dropout masks than one device
AEM2TL_SMALL = {"scenario_shared_experts": 2, "scenario_specific_experts": 1, "scenario_expert_units": [32],
                "task_shared_experts": 1, "task_expert_units": [16], "tower_units": [16], "dropout": 0.0}

# argv: result, transform, examples, raw, out_root, JSON list of runs [{name, model, model_config, train}],
# logical CPU devices (0 = leave the CPU as it is).
CHILD = r"""
import glob, json, os, sys
import tensorflow as tf
devices = int(sys.argv[7])
if devices:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
from models.trainer import run_fn
from features.spec import resolve_spec
from tests.helpers import trainer_fn_args

transform, examples, raw, out_root, runs = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
records = [r.numpy() for r in tf.data.TFRecordDataset(
    sorted(glob.glob(os.path.join(raw, "Split-eval", "*"))), compression_type="GZIP").take(64)]
results = {}
for run in runs:
    a = trainer_fn_args(transform, examples, os.path.join(out_root, run["name"]),
                        {"spec": resolve_spec("synthetic").to_dict(), "model": run["model"],
                         "model_config": run.get("model_config"), "train": run["train"]},
                        train_steps=run.get("steps"), eval_steps=2)
    run_fn(a)
    summary = json.load(open(os.path.join(a.model_run_dir, "train_summary.json")))
    served = tf.saved_model.load(a.serving_model_dir).signatures["serving_default"](examples=tf.constant(records))
    results[run["name"]] = {"summary": summary,
                            "dtypes": {k: v.dtype.name for k, v in served.items()},
                            "outputs": {k: v.numpy().reshape(-1).tolist() for k, v in served.items()}}
json.dump(results, open(sys.argv[1], "w"))
"""


def _aem2tl_run(name, **train):
    return {"name": name, "model": "aem2tl", "model_config": AEM2TL_SMALL, "steps": STEPS,
            "train": dict({"batch_size": BATCH, "seed": 11, "weighting": {"strategy": "gradnorm"},
                           # the paper's losses plus ctcvr (the Trainer's supervised_heads switch)
                           "supervised_heads": ["ctr", "ctavr", "ctcvr", "xcvr"]}, **train)}


def _shared_bottom_run(name, **train):
    return {"name": name, "model": "shared_bottom", "model_config": {"dropout": 0.0}, "steps": STEPS,
            "train": dict({"batch_size": BATCH, "seed": 11}, **train)}


def _start(tmp, p, name, runs, devices):
    return start_python(CHILD, str(tmp / f"{name}.json"),
                        [p["transform"], p["examples"], p["raw"], str(tmp / name), json.dumps(runs), str(devices)])


@pytest.fixture(scope="module")
def runs(synthetic_run, tmp_path_factory):
    """One device (AEM2TL; SharedBottom in float32 and mixed_float16) and two logical devices (AEM2TL)."""
    _, out, _ = synthetic_run
    tmp = tmp_path_factory.mktemp("distributed")
    p = pipeline_outputs(out)
    one = _start(tmp, p, "one_device", [_aem2tl_run("aem2tl", distribution="default"),
                                        _shared_bottom_run("shared_bottom", distribution="default"),
                                        _shared_bottom_run("mixed", distribution="default",
                                                           mixed_precision=True)], 0)
    # One MirroredStrategy per process, as in the Trainer (two in a row can mix up their collective keys).
    # Both children run at once (op determinism makes their numbers independent of the load).
    two = _start(tmp, p, "two_devices", [_aem2tl_run("aem2tl", distribution="mirrored")], 2)
    one, two = finish_python(one, str(tmp / "one_device.json")), finish_python(two, str(tmp / "two_devices.json"))
    return dict(one, **{f"two_{k}": v for k, v in two.items()}), tmp, p


def _close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=tol, atol=tol)


def test_two_replicas_equal_one_device_for_aem2tl_with_gradnorm(runs):
    res, _, _ = runs
    one, two = res["aem2tl"]["summary"], res["two_aem2tl"]["summary"]
    assert two["distribution"]["strategy"] == "MirroredStrategy" and two["distribution"]["replicas"] == 2
    assert one["distribution"]["replicas"] == 1
    assert one["steps"] == two["steps"] == STEPS
    weights = [k for k in one["history"] if k.startswith("weight_")]
    assert sorted(weights) == ["weight_ctavr", "weight_ctcvr", "weight_ctr", "weight_xcvr"], weights
    # GradNorm moved the weights, identically on both (the weights see global-batch losses and gradients).
    assert any(abs(one["history"][k][0] - 1.0) > 1e-4 for k in weights)
    for key in ["loss", "val_loss"] + weights + [k for k in one["history"] if k.startswith("loss_")]:
        _close(two["history"][key], one["history"][key], 1e-5)
    for head, values in res["aem2tl"]["outputs"].items():
        _close(res["two_aem2tl"]["outputs"][head], values, 1e-5)


def test_mixed_precision_keeps_outputs_float32_and_finite(runs):
    res, _, _ = runs
    mixed = res["mixed"]
    assert mixed["summary"]["distribution"]["mixed_precision"] is True
    assert set(mixed["dtypes"].values()) == {"float32"}, mixed["dtypes"]
    assert np.isfinite(mixed["summary"]["history"]["loss"]).all()
    for head, values in mixed["outputs"].items():
        v = np.asarray(values)
        assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all(), head
        # float16 compute, float32 results: close to the float32 model, not bit-equal.
        assert np.abs(v - np.asarray(res["shared_bottom"]["outputs"][head])).max() < 0.05, head


WORKER = r"""
import json, os, sys
from models.trainer import run_fn
from features.spec import resolve_spec
from tests.helpers import trainer_fn_args
transform, examples, out_dir, run = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
a = trainer_fn_args(transform, examples, out_dir,
                    {"spec": resolve_spec("synthetic").to_dict(), "model": run["model"],
                     "model_config": run["model_config"], "train": run["train"]},
                    train_steps=run["steps"], eval_steps=2)
run_fn(a)
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_on_localhost_train_and_only_the_chief_exports(runs, tmp_path):
    res, _, p = runs
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    out = tmp_path / "multi_worker"
    run = _shared_bottom_run("mw", distribution="multi_worker")
    procs, logs = [], []
    for index in range(2):
        env = dict(child_env(), TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                  "index": index}}))
        log = open(tmp_path / f"worker-{index}.log", "w+")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER), p["transform"],
                                       p["examples"], str(out), json.dumps(run)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()))
    try:
        codes = [proc.wait(timeout=600) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for log, code in zip(logs, codes):
        log.seek(0)
        assert code == 0, log.read()[-4000:]

    chief = json.load(open(out / "run" / "train_summary.json"))
    worker = json.load(open(out / "run" / "worker-worker-1" / "train_summary.json"))
    assert chief["distribution"] == {"strategy": "CollectiveAllReduceStrategy", "replicas": 2,
                                     "task_type": "worker", "task_id": 0, "chief": True,
                                     "mixed_precision": False}
    assert worker["distribution"]["chief"] is False and worker["distribution"]["task_id"] == 1
    assert chief["steps"] == worker["steps"] == STEPS
    # Both workers applied the same all-reduced updates, which equal one device's at the same global batch.
    single = res["shared_bottom"]["summary"]["history"]
    for key in ("loss", "val_loss"):
        _close(worker["history"][key], chief["history"][key], 1e-6)
        _close(chief["history"][key], single[key], 1e-5)
    # Only the chief wrote the model; the non-chief's collective save went to a scratch directory, now gone.
    assert (out / "serving" / "saved_model.pb").exists()
    assert not list((out / "run" / "worker-worker-1").glob("**/saved_model.pb"))
    check = run_python(r"""
import glob, json, sys
import tensorflow as tf
records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(sys.argv[3] + "/Split-eval/*")),
                                                      compression_type="GZIP").take(32)]
out = tf.saved_model.load(sys.argv[2]).signatures["serving_default"](examples=tf.constant(records))
json.dump({k: v.numpy().reshape(-1).tolist() for k, v in out.items()}, open(sys.argv[1], "w"))
""", str(tmp_path / "served.json"), [str(out / "serving"), p["raw"]])
    assert set(check) >= {"ctr", "ctcvr", "xcvr"}
    for head, values in check.items():
        v = np.asarray(values)
        assert len(v) == 32 and np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all(), head
        _close(v, res["shared_bottom"]["outputs"][head][:32], 1e-5)
