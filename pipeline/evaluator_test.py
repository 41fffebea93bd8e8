"""GatedEvaluator's pre-TFMA step: positives per head and slice, and thresholds dropped where they are too few."""

import json

import tensorflow as tf

from features.spec import resolve_spec
from pipeline.eval_config import BlessingConfig, build_eval_config
from pipeline.evaluator import count_positives, drop_thin_slices, gating_parameters

SPEC = resolve_spec("synthetic")
HEADS = ("ctr", "cvr", "ctcvr", "xcvr", "ctavr")


def _example(scenario, click, action, conversion):
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "scenario": f(bytes_list=tf.train.BytesList(value=[scenario.encode()])),
        "click": f(int64_list=tf.train.Int64List(value=[click])),
        "action": f(int64_list=tf.train.Int64List(value=[action])),
        "conversion": f(int64_list=tf.train.Int64List(value=[conversion]))})).SerializeToString()


ROWS = [  # scenario, click, action, conversion
    ("home_feed", 1, 1, 1), ("home_feed", 1, 0, 0), ("home_feed", 0, 0, 1), ("home_feed", 0, 0, 0),
    ("search", 1, 0, 1), ("search", 1, 0, 1), ("search", 0, 0, 0),
    ("detail_page", 0, 0, 0),
]


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
        for r in rows:
            w.write(_example(*r))


def test_count_positives_per_head_and_scenario(tmp_path):
    _write(tmp_path / "a.gz", ROWS[:5])
    _write(tmp_path / "b.gz", ROWS[5:])
    gating = gating_parameters(SPEC, ["ctr", "ctavr", "ctcvr", "xcvr"], 2)
    assert gating["heads"] == {"ctr": ["click"], "ctavr": ["click", "action"], "ctcvr": ["click", "conversion"],
                               "xcvr": ["conversion"]}
    got = count_positives([str(tmp_path / "*.gz")], gating["scenario"], gating["heads"])
    # Counted by hand from ROWS.
    assert got == {("ctr", "overall"): 4, ("ctr", "home_feed"): 2, ("ctr", "search"): 2,
                   ("ctavr", "overall"): 1, ("ctavr", "home_feed"): 1,
                   ("ctcvr", "overall"): 3, ("ctcvr", "home_feed"): 1, ("ctcvr", "search"): 2,
                   ("xcvr", "overall"): 4, ("xcvr", "home_feed"): 2, ("xcvr", "search"): 2}


def _gated_slices(cfg):
    out = set()
    for ms in cfg.metrics_specs:
        for m in ms.metrics:
            for pst in m.per_slice_thresholds:
                for s in pst.slicing_specs:
                    out.add((ms.output_names[0], m.class_name, dict(s.feature_values).get("scenario", "overall")))
    return out


def test_thin_slices_are_not_gated_but_overall_auc_always_is():
    cfg = build_eval_config(SPEC, HEADS)
    positives = {("ctr", "overall"): 500, ("ctr", "home_feed"): 300, ("ctr", "search"): 199,
                 ("ctr", "detail_page"): 1, ("ctcvr", "overall"): 150, ("ctcvr", "home_feed"): 120}
    removed = drop_thin_slices(cfg, positives, 200)
    gated = _gated_slices(cfg)
    assert {s for s in gated if s[0] == "ctr"} == {("ctr", "AUC", "overall"), ("ctr", "AUC", "home_feed"),
                                                   ("ctr", "Calibration", "overall")}
    # ctcvr: 150 < 200 positives overall: calibration and every scenario are not gated; overall AUC still is.
    assert {s for s in gated if s[0] == "ctcvr"} == {("ctcvr", "AUC", "overall")}
    assert {"head": "ctr", "slice": "search", "metric": "AUC", "positives": 199} in removed
    assert {"head": "ctcvr", "slice": "overall", "metric": "Calibration", "positives": 150} in removed
    assert not any(r["slice"] == "overall" and r["metric"] == "AUC" for r in removed)
    json.dumps(removed)  # written to gating.json


def test_min_positives_zero_gates_everything():
    cfg = build_eval_config(SPEC, HEADS, blessing=BlessingConfig(min_positives=0))
    before = _gated_slices(cfg)
    assert drop_thin_slices(cfg, {}, 0) == [] and _gated_slices(cfg) == before


CALIBRATION_CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from features.spec import resolve_spec
from pipeline.eval_config import BlessingConfig, build_eval_config
from pipeline.report import blessing_failures

out = sys.argv[2]
rng = np.random.default_rng(0)
n = 4000
scen = rng.choice(["home_feed", "search", "detail_page"], n)
p = rng.uniform(0.02, 0.3, n)
y = (rng.random(n) < p).astype(np.float32)
f = tf.train.Feature
with tf.io.TFRecordWriter(out + "/data.tfrecord") as w:
    for i in range(n):
        w.write(tf.train.Example(features=tf.train.Features(feature={
            "scenario": f(bytes_list=tf.train.BytesList(value=[scen[i].encode()])),
            "user_id": f(bytes_list=tf.train.BytesList(value=[b"u%d" % (i % 50)])),
            "label_click": f(float_list=tf.train.FloatList(value=[y[i]])),
            "label_ctcvr": f(float_list=tf.train.FloatList(value=[y[i]])),
            "ctr": f(float_list=tf.train.FloatList(value=[p[i]])),              # calibrated
            "ctcvr": f(float_list=tf.train.FloatList(value=[min(3 * p[i], 1.0)])),  # same ranking, 3x too high
        })).SerializeToString())
cfg = build_eval_config(resolve_spec("synthetic"), ("ctr", "ctcvr"), blessing=BlessingConfig(), with_baseline=False)
del cfg.model_specs[:]  # TFMA's model-agnostic mode: the predictions are columns of the examples
cfg.model_specs.add(label_keys={"ctr": "label_click", "ctcvr": "label_ctcvr"},
                    prediction_keys={"ctr": "ctr", "ctcvr": "ctcvr"})
tfma.run_model_analysis(eval_config=cfg, data_location=out + "/data.tfrecord", output_path=out + "/eval")
result = tfma.load_validation_result(out + "/eval")
json.dump({"ok": bool(result.validation_ok),
           "failed": [(h, where, t, v) for h, where, t, v, _ in blessing_failures(result)]}, open(sys.argv[1], "w"))
"""


def test_a_candidate_with_good_auc_but_probabilities_far_too_high_is_not_blessed(tmp_path):
    """The gate's EvalConfig under TFMA's own validator: ctcvr ranks as well as ctr but predicts 3x its rate."""
    from tests.helpers import run_python

    res = run_python(CALIBRATION_CHILD, str(tmp_path / "res.json"), [str(tmp_path)])
    assert res["ok"] is False
    assert [(h, where) for h, where, _, _ in res["failed"]] == [("ctcvr", "overall")], res
    head, _, threshold, value = res["failed"][0]
    assert threshold == "calibration >= 0.8 and calibration <= 1.25" and float(value) > 2.5


def test_batched_evaluation_is_used_where_it_covers_the_config_else_tfxs_own_path(caplog):
    from pipeline.evaluator import _batched_evaluation_covers

    config = build_eval_config(resolve_spec("synthetic"), ["ctr", "ctcvr"])
    assert _batched_evaluation_covers(config, has_baseline=True)
    assert _batched_evaluation_covers(config, has_baseline=False)
    config.metrics_specs[0].metrics.add(class_name="MeanSquaredError")
    assert not _batched_evaluation_covers(config, has_baseline=True)
    assert "MeanSquaredError" in caplog.text and "one example at a time" in caplog.text
