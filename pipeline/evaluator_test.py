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
