"""Test helpers: run TensorFlow/Beam work in a child process and read its JSON result.

A process that ran ``tft_beam`` may crash at interpreter exit after finishing; children therefore write
their result to a file and the test judges that file, keeping pytest's own exit code clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")


def child_env() -> dict:
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_python(code: str, result_path: str, args: Optional[List[str]] = None) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter with ``sys.argv[1] == result_path`` (see :func:`finish_python`):
    independent children started together overlap their fixed costs (imports, graph building)."""
    if os.path.exists(result_path):
        os.remove(result_path)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), result_path] + list(args or []),
                            cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_python(proc: subprocess.Popen, result_path: str, timeout: int = 900) -> Any:
    """Wait for a :func:`start_python` child and return the JSON it wrote."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    if not os.path.exists(result_path):
        raise AssertionError(f"child exited with {proc.returncode} and wrote no result\n"
                             f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-6000:]}")
    with open(result_path) as fh:
        return json.load(fh)


def run_python(code: str, result_path: str, args: Optional[List[str]] = None, timeout: int = 900) -> Any:
    """Run ``code`` in a fresh interpreter with ``sys.argv[1] == result_path``; return the JSON it wrote."""
    return finish_python(start_python(code, result_path, args), result_path, timeout)


# A small spec over the synthetic logs (features.synthetic): four features, hashed ids, so that a pipeline run is
# short and its embedding shapes do not change from day to day; the labels are the caller's.
SMALL_SYNTHETIC_FEATURES = """features:
  - {name: user_id, role: id, dtype: string, encoding: hash, hash_buckets: 2000}
  - {name: item_id, role: id, dtype: string, encoding: hash, hash_buckets: 600}
  - {name: scenario, role: scenario, dtype: string, values: [home_feed, search, detail_page]}
  - {name: item_price, role: numeric, transform: log1p_zscore, default: 0.0}
"""
SMALL_SYNTHETIC_IGNORE = """ignore: [request_id, ts, span, user_segment, user_age, user_gender, user_activity, item_category,
         item_brand, item_popularity, item_tags, hour, device, p_click, p_click_action, p_click_conv, p_conv]
"""


def run_cli(args: List[str], timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run ``python -m pipeline.cli ARGS`` and return the completed process (output captured)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli"] + args, cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def synthetic_data(root) -> str:
    """The ``--data`` pattern of the session's synthetic logs (``synthetic_run``): one directory per daily span,
    so a run trains on the earlier spans and evaluates on the latest (next-span evaluation)."""
    return os.path.join(str(root), "data", "span-{SPAN}", "impressions.csv")


def newest_pushed_version(out) -> str:
    """The newest version directory the pipeline run at ``out`` pushed (``out/serving/msmt/<version>``)."""
    import glob

    versions = glob.glob(os.path.join(str(out), "serving", "msmt", "*", "saved_model.pb"))
    assert versions, "the run pushed no model"
    return max((os.path.dirname(v) for v in versions), key=lambda d: int(os.path.basename(d)))


def eval_examples_glob(out) -> str:
    """Glob of the eval split ExampleGen wrote for the pipeline run at ``out`` (gzipped tf.Example files)."""
    return os.path.join(str(out), "pipeline_root", "CsvExampleGen", "examples", "*", "Split-eval", "*")


def trainer_fn_args(transform_dir: str, examples_dir: str, out_dir: str, custom_config: dict,
                    train_steps: Optional[int] = None, eval_steps: Optional[int] = None):
    """The ``fn_args`` of the TFX Trainer that ``models.trainer.run_fn`` reads, over a Transform output
    (``examples_dir`` holds ``Split-train``/``Split-eval``, directly or per training span). For use inside a
    child process."""
    from pipeline.results import split_patterns


    class FnArgs:
        pass

    a = FnArgs()
    a.custom_config = custom_config
    a.transform_graph_path = transform_dir
    a.train_files = split_patterns(examples_dir, "train")
    a.eval_files = split_patterns(examples_dir, "eval")
    a.train_steps = train_steps
    a.eval_steps = eval_steps
    a.serving_model_dir = os.path.join(out_dir, "serving")
    a.model_run_dir = os.path.join(out_dir, "run")
    return a


def pipeline_outputs(out) -> dict:
    """Newest Transform graph, transformed examples and raw ExampleGen examples of the pipeline run at ``out``."""
    from pipeline.results import newest_artifact

    found = {"transform": newest_artifact(str(out), "Transform", "transform_graph"),
             "examples": newest_artifact(str(out), "Transform", "transformed_examples"),
             "raw": newest_artifact(str(out), "CsvExampleGen", "examples")}
    missing = [k for k, v in found.items() if v is None]
    assert not missing, f"the pipeline run at {out} has no {missing} artifact"
    return found


# A child that loads a SavedModel and calls serving_default on the first 200 serialized examples of a glob.
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


def serve_eval_examples(tmp_path, model_dir: str, examples_uri: str) -> Any:
    """``serving_default`` of ``model_dir`` on 200 examples of an ExampleGen artifact's eval split, in a child."""
    return run_python(SERVE_CHILD, str(tmp_path / "serve.json"),
                      [model_dir, os.path.join(examples_uri, "Split-eval", "*")])


def pipeline_states(run_dir, name: str = "msmt"):
    """(MLMD store, the latest run's executions by component id) of the pipeline run at ``run_dir``."""
    from pipeline import mlmd

    store = mlmd.open_store(os.path.join(str(run_dir), "metadata.sqlite"))
    return store, mlmd.latest_run(store, name)


def component(runs, short: str):
    """The execution of the component whose id ends with ``short`` (e.g. ``Trainer``) in ``runs``."""
    return next(v for k, v in runs.items() if k.endswith(short))


def served_versions(out) -> List[str]:
    """The numeric version directories under ``out/serving/msmt``, oldest first."""
    return sorted((p for p in os.listdir(os.path.join(str(out), "serving", "msmt")) if p.isdigit()), key=int)
