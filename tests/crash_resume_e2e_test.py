"""Crash and resume: SIGKILL during the Trainer and during the push; reruns reuse the cached work.

Works on a copy of the session's run directory (``synthetic_run``: one model served), with a new learning
rate so that the Trainer must run again:

1. ``msmt run`` is killed (SIGKILL to its process group: the CLI and the pipeline child) as soon as the
   Trainer starts.
2. The rerun finds ExampleGen, StatisticsGen, SchemaGen and Transform CACHED in MLMD and trains. It is killed
   again during the push: ``MSMT_FAULT_PAUSE_BEFORE_PUBLISH`` holds the ServingPusher after the copy and
   before the rename, and the test kills it once the hidden ``.incoming-*`` copy exists. The served version
   is unchanged and loads and answers; no numeric version directory is half written.
3. The next rerun finds the Trainer CACHED (the Evaluator runs again, as in any rerun after a blessing: the
   resolver's baseline is now the blessed model itself), and the Pusher publishes exactly one new version
   and removes the stale ``.incoming-*`` copy.
"""

import os
import signal
import subprocess
import sys
import time

from pipeline import mlmd
from pipeline.pipeline import COMPONENT_ORDER
from tests.helpers import REPO_ROOT, child_env, run_cli, run_python, served_versions, synthetic_data

LOAD_CHILD = r"""
import glob, json, sys
import tensorflow as tf
files = sorted(glob.glob(sys.argv[3]))
examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(8)]
out = tf.saved_model.load(sys.argv[2]).signatures["serving_default"](examples=tf.constant(examples))
json.dump({"ctr": out["ctr"].numpy().tolist()}, open(sys.argv[1], "w"))
"""


def _args(root, out):
    return ["run", "--data", synthetic_data(root), "--spec", "synthetic",
            "--output", str(out), "--epochs", "4", "--batch-size", "256", "--learning-rate", "0.0017",
            "--max-auc-drop", "1.0"]


def _run_and_kill(args, until, env=None, timeout=900):
    """Start ``msmt ARGS`` in its own process group; SIGKILL the group once ``until()`` is true."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli"] + args, cwd=REPO_ROOT,
                            env=dict(child_env(), PYTHONUNBUFFERED="1", **(env or {})), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while not until():
            assert proc.poll() is None, f"msmt run ended (exit {proc.returncode}) before the kill point"
            assert time.time() - t0 < timeout, "kill point not reached"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _states(out):
    """Short component name (ExampleGen, ..., Pusher) -> state of its execution in the latest run."""
    runs = mlmd.latest_run(mlmd.open_store(str(out / "metadata.sqlite")), "msmt")
    return {c: v.state for k, v in runs.items() for c in COMPONENT_ORDER if k.endswith(c)}


def _trainer_running(out):
    return lambda: _states(out).get("Trainer") == "RUNNING"


def test_killed_trainer_and_killed_push_resume_from_the_cache(synthetic_run, session_run_copy, tmp_path):
    root, out = synthetic_run[0], session_run_copy
    model_root = out / "serving" / "msmt"
    served = served_versions(out)
    assert served

    assert _run_and_kill(_args(root, out), _trainer_running(out)) == -signal.SIGKILL
    assert served_versions(out) == served

    incoming = lambda: any(p.startswith(".incoming-") and (model_root / p / "assets.extra").exists()  # noqa: E731
                           for p in os.listdir(model_root))
    _run_and_kill(_args(root, out), incoming, env={"MSMT_FAULT_PAUSE_BEFORE_PUBLISH": "600"})
    states = _states(out)
    for c in ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform"):
        assert states[c] == "CACHED", states
    assert states["Trainer"] == "COMPLETE" and states["Evaluator"] == "COMPLETE", states
    assert served_versions(out) == served  # the killed push left no numeric version
    examples = os.path.join(str(out), "pipeline_root", "CsvExampleGen", "examples", "*", "Split-eval", "*")
    res = run_python(LOAD_CHILD, str(tmp_path / "load.json"), [str(model_root / served[-1]), examples])
    assert len(res["ctr"]) == 8 and all(0.0 <= v <= 1.0 for v in res["ctr"])

    proc = run_cli(_args(root, out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    states = _states(out)
    assert states["Trainer"] == "CACHED", states
    assert states["Pusher"] == "COMPLETE", states
    now = served_versions(out)
    assert len(now) == len(served) + 1 and now[:-1] == served, (served, now)
    assert not [p for p in os.listdir(model_root) if p.startswith(".incoming-")]
