"""Every zoo model trains through the Trainer's ``run_fn`` on a real Transform output and exports a SavedModel
whose ``serving_default`` answers serialized tf.Examples (the pipeline's Trainer contract)."""

import json

import pytest

from models.registry import MODELS
from tests.helpers import finish_python, pipeline_outputs, start_python

CHILD = r"""
import glob, json, os, sys
import tensorflow as tf
from models.trainer import run_fn
from features.spec import resolve_spec
from tests.helpers import trainer_fn_args

transform_dir, examples_dir, raw_dir, out_root, models = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6])

records = [r.numpy() for r in tf.data.TFRecordDataset(
    sorted(glob.glob(os.path.join(raw_dir, "Split-eval", "*"))), compression_type="GZIP").take(64)]
results = {}
for model, model_config in models.items():
    out_dir = os.path.join(out_root, model)
    a = trainer_fn_args(transform_dir, examples_dir, out_dir,
                        {"spec": resolve_spec("synthetic").to_dict(), "model": model, "model_config": model_config,
                         "train": {"batch_size": 512, "epochs": 1}}, train_steps=4, eval_steps=2)
    run_fn(a)
    loaded = tf.saved_model.load(a.serving_model_dir)
    out = loaded.signatures["serving_default"](examples=tf.constant(records))
    summary = json.load(open(os.path.join(a.model_run_dir, "train_summary.json")))
    results[model] = {"outputs": {k: v.numpy().tolist() for k, v in out.items()},
                      "summary_outputs": summary["outputs"]}
json.dump(results, open(sys.argv[1], "w"))
"""

SMALL = {
    "mmoe": {"num_experts": 2, "expert_units": [32]},
    "ple": {"num_shared_experts": 1, "expert_units": [32]},
    "ektm": {"expert_units": [32], "key_dim": 8, "transmitter_units": [16]},
    "star": {"star_units": [32]},
}


# SharedBottom, AEM2TL and ESMM go through the whole pipeline in pipeline_e2e_test; the others train a few steps
# here (the contract is the export, not the fit), in two child processes that run at once.
MODELS_HERE = sorted(m for m in MODELS if m not in ("shared_bottom", "aem2tl", "esmm"))


@pytest.fixture(scope="module")
def trained(synthetic_run, tmp_path_factory):
    _, out, _ = synthetic_run
    tmp = tmp_path_factory.mktemp("run_fn")
    p = pipeline_outputs(out)
    halves = [MODELS_HERE[0::2], MODELS_HERE[1::2]]
    children = [start_python(CHILD, str(tmp / f"res{i}.json"), [p["transform"], p["examples"], p["raw"], str(tmp),
                                                                 json.dumps({m: SMALL.get(m, {}) for m in half})])
                for i, half in enumerate(halves)]
    results = {}
    for i, child in enumerate(children):
        results.update(finish_python(child, str(tmp / f"res{i}.json")))
    return results


@pytest.mark.parametrize("model", MODELS_HERE)
def test_run_fn_trains_and_exports(trained, model):
    res = trained[model]
    outs = res["outputs"]
    assert set(outs) == set(res["summary_outputs"]) and "ctr" in outs
    for head, values in outs.items():
        assert len(values) == 64 and all(0.0 <= v <= 1.0 for v in values), head
