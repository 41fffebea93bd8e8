"""Every zoo model trains through the Trainer's ``run_fn`` on a real Transform output and exports a SavedModel
whose ``serving_default`` answers serialized tf.Examples (the pipeline's Trainer contract)."""

import glob
import json
import os

import pytest

from models.registry import MODELS
from tests.helpers import run_python

CHILD = r"""
import glob, json, os, sys
import tensorflow as tf
from tfx_bsl.public import tfxio
from models.trainer import run_fn
from features.spec import resolve_spec

transform_dir, examples_dir, raw_dir, out_dir, model, model_config = sys.argv[2:8]

class DataAccessor:
    def tf_dataset_factory(self, files, options, schema):
        return tfxio.TFExampleRecord(file_pattern=files, schema=schema).TensorFlowDataset(options)

class FnArgs:
    pass

a = FnArgs()
a.custom_config = {"spec": resolve_spec("synthetic").to_dict(), "model": model,
                   "model_config": json.loads(model_config), "train": {"batch_size": 512, "epochs": 1}}
a.transform_output = transform_dir
a.train_files = [os.path.join(examples_dir, "Split-train", "*")]
a.eval_files = [os.path.join(examples_dir, "Split-eval", "*")]
a.train_steps = None
a.eval_steps = None
a.data_accessor = DataAccessor()
a.serving_model_dir = os.path.join(out_dir, "serving")
a.model_run_dir = os.path.join(out_dir, "run")
run_fn(a)
loaded = tf.saved_model.load(a.serving_model_dir)
records = [r.numpy() for r in tf.data.TFRecordDataset(
    sorted(glob.glob(os.path.join(raw_dir, "Split-eval", "*"))), compression_type="GZIP").take(64)]
out = loaded.signatures["serving_default"](examples=tf.constant(records))
summary = json.load(open(os.path.join(a.model_run_dir, "train_summary.json")))
json.dump({"outputs": {k: v.numpy().tolist() for k, v in out.items()}, "summary_outputs": summary["outputs"]},
          open(sys.argv[1], "w"))
"""

SMALL = {
    "mmoe": {"num_experts": 2, "expert_units": [32]},
    "ple": {"num_shared_experts": 1, "expert_units": [32]},
    "aem2tl": {"scenario_expert_units": [32], "task_expert_units": [16], "tower_units": [16]},
}


def _latest(pattern):
    return sorted(glob.glob(pattern), key=lambda p: int(os.path.basename(p)))[-1]


@pytest.mark.parametrize("model", sorted(m for m in MODELS if m != "shared_bottom"))
def test_run_fn_trains_and_exports(synthetic_run, model, tmp_path):
    _, out, _ = synthetic_run
    root = out / "pipeline_root"
    transform = _latest(str(root / "Transform" / "transform_graph" / "*"))
    examples = _latest(str(root / "Transform" / "transformed_examples" / "*"))
    raw = _latest(str(root / "CsvExampleGen" / "examples" / "*"))
    res = run_python(CHILD, str(tmp_path / "res.json"),
                     [transform, examples, raw, str(tmp_path), model, json.dumps(SMALL.get(model, {}))])
    outs = res["outputs"]
    assert set(outs) == set(res["summary_outputs"]) and "ctr" in outs
    for head, values in outs.items():
        assert len(values) == 64 and all(0.0 <= v <= 1.0 for v in values), head
