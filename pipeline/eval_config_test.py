"""EvalConfig and BlessingConfig: metrics per head, thresholds where documented, validation errors."""

import json

import pytest

from features.spec import resolve_spec
from pipeline.eval_config import (BASELINE_NAME, CANDIDATE_NAME, BlessingConfig, BlessingConfigError,
                                  Thresholds, build_eval_config, user_id_feature)
from tensorflow_model_analysis.proto import config_pb2

SPEC = resolve_spec("synthetic")  # scenarios home_feed, search, detail_page; user id column user_id
ALL = ("ctr", "cvr", "ctcvr", "xcvr", "ctavr")  # what SharedBottom serves for this spec
EXAMPLE = {"min_auc": 0.5, "max_auc_drop": 0.01, "gated_heads": ["ctr", "ctcvr"],
           "heads": {"ctcvr": {"min_auc": 0.55}}, "scenarios": {"search": {"ctr": {"max_auc_drop": 0.02}}}}
HIGHER = config_pb2.MetricDirection.HIGHER_IS_BETTER


def _specs_by_head(cfg):
    out = {}
    for ms in cfg.metrics_specs:
        assert len(ms.output_names) == 1
        out[ms.output_names[0]] = ms
    return out


def _auc(ms):
    (auc,) = [m for m in ms.metrics if m.class_name == "AUC"]
    return auc


def _calibration_bounds(ms):
    """(slice, lower, upper) of the Calibration metric's thresholds."""
    (cal,) = [m for m in ms.metrics if m.class_name == "Calibration"]
    return [(_slice_name(s), p.threshold.value_threshold.lower_bound.value,
             p.threshold.value_threshold.upper_bound.value) for p in cal.per_slice_thresholds for s in p.slicing_specs]


def _slice_name(s):
    return dict(s.feature_values).get("scenario", "overall") if s.feature_values else "overall"


def _thresholds_by_slice(auc):
    """slice -> (lower_bound or None, change absolute or None)."""
    out = {}
    for pst in auc.per_slice_thresholds:
        t = pst.threshold
        value = t.value_threshold.lower_bound.value if t.HasField("value_threshold") else None
        change = None
        if t.HasField("change_threshold"):
            assert t.change_threshold.direction == HIGHER
            change = t.change_threshold.absolute.value
        for s in pst.slicing_specs:
            assert _slice_name(s) not in out
            out[_slice_name(s)] = (value, change)
    return out


def test_metrics_per_head_and_models():
    cfg = build_eval_config(SPEC, ALL)
    specs = _specs_by_head(cfg)
    assert set(specs) == {"ctr", "ctavr", "ctcvr", "xcvr"}
    for ms in specs.values():
        names = [m.class_name for m in ms.metrics]
        assert names == ["AUC", "GAUC", "BinaryCrossentropy", "Calibration", "ExampleCount", "CalibrationPlot",
                         "ConfusionMatrixPlot"]
        gauc = ms.metrics[1]
        assert gauc.module == "pipeline.gauc" and json.loads(gauc.config) == {"user_key": "user_id"}
        assert not ms.model_names  # filled in by TFMA with the models actually evaluated
    assert [(m.name, m.is_baseline) for m in cfg.model_specs] == [(CANDIDATE_NAME, False), (BASELINE_NAME, True)]
    for m in cfg.model_specs:
        assert m.signature_name == "serving_default" and list(m.preprocessing_function_names) == ["eval_labels"]
        assert dict(m.label_keys)["ctr"] == "label_click"
    assert [list(s.feature_keys) for s in cfg.slicing_specs] == [[], ["scenario"]]
    assert not cfg.options.include_default_metrics.value


def test_default_blessing_gates_every_served_head_overall_and_every_scenario():
    cfg = build_eval_config(SPEC, ALL)
    specs = _specs_by_head(cfg)
    assert set(specs) == {"ctr", "ctavr", "ctcvr", "xcvr"}  # cvr is conditional on a click: not evaluated
    for head in specs:
        assert _thresholds_by_slice(_auc(specs[head])) == {
            s: (0.5, pytest.approx(-0.01)) for s in ("overall", "home_feed", "search", "detail_page")}
        # Equal thresholds share one PerSliceMetricThreshold; nothing on the generic (all-slice) threshold.
        assert len(_auc(specs[head]).per_slice_thresholds) == 1
        assert not _auc(specs[head]).HasField("threshold")
        assert _calibration_bounds(specs[head]) == [("overall", pytest.approx(0.8), pytest.approx(1.25))]


def test_only_the_heads_the_model_serves_are_evaluated_and_gated():
    esmm = _specs_by_head(build_eval_config(SPEC, ("ctr", "cvr", "ctcvr")))  # ESMM on view-through data
    assert set(esmm) == {"ctr", "ctcvr"}
    direct = _specs_by_head(build_eval_config(SPEC, ("ctr", "xcvr")))  # AEM2TL without the entire-space module
    assert set(direct) == {"ctr", "xcvr"}


def test_gated_heads_and_calibration_bounds_are_settings():
    b = BlessingConfig.from_dict({"gated_heads": ["ctr"], "min_calibration": 0.9, "max_calibration": None})
    specs = _specs_by_head(build_eval_config(SPEC, ALL, blessing=b))
    assert _calibration_bounds(specs["ctr"]) == [("overall", pytest.approx(0.9), 0.0)]
    for head in ("ctavr", "ctcvr", "xcvr"):  # not gated
        assert not any(m.per_slice_thresholds or m.HasField("threshold") for m in specs[head].metrics)
    off = BlessingConfig(min_calibration=None, max_calibration=None)
    assert not _calibration_bounds(_specs_by_head(build_eval_config(SPEC, ALL, blessing=off))["ctr"])


def test_head_and_scenario_overrides_land_on_their_slices():
    cfg = build_eval_config(SPEC, ALL, blessing=BlessingConfig.from_dict(EXAMPLE))
    specs = _specs_by_head(cfg)
    assert _thresholds_by_slice(_auc(specs["ctr"])) == {
        "overall": (0.5, pytest.approx(-0.01)), "home_feed": (0.5, pytest.approx(-0.01)),
        "search": (0.5, pytest.approx(-0.02)), "detail_page": (0.5, pytest.approx(-0.01))}
    assert _thresholds_by_slice(_auc(specs["ctcvr"])) == {
        s: (pytest.approx(0.55), pytest.approx(-0.01)) for s in ("overall", "home_feed", "search", "detail_page")}
    assert not _auc(specs["xcvr"]).per_slice_thresholds


def test_without_baseline_no_change_thresholds_and_one_unnamed_model():
    cfg = build_eval_config(SPEC, ALL, blessing=BlessingConfig.from_dict(EXAMPLE), with_baseline=False)
    assert [(m.name, m.is_baseline) for m in cfg.model_specs] == [("", False)]
    by_slice = _thresholds_by_slice(_auc(_specs_by_head(cfg)["ctr"]))
    assert by_slice == {s: (0.5, None) for s in ("overall", "home_feed", "search", "detail_page")}


def test_tfx_drops_baseline_and_change_thresholds_when_no_baseline_is_resolved():
    """What the TFX Evaluator executor does with our config on a first run (has_baseline=False)."""
    from tensorflow_model_analysis.metrics import metric_specs
    from tensorflow_model_analysis.utils import config_util

    cfg = build_eval_config(SPEC, ALL, blessing=BlessingConfig.from_dict(EXAMPLE))
    first = config_util.update_eval_config_with_defaults(cfg, has_baseline=False, rubber_stamp=True)
    config_util.verify_eval_config(first)
    assert [m.name for m in first.model_specs] == [""]
    assert not config_util.has_change_threshold(first)
    assert _thresholds_by_slice(_auc(_specs_by_head(first)["ctr"]))["search"] == (0.5, None)
    later = config_util.update_eval_config_with_defaults(cfg, has_baseline=True, rubber_stamp=False)
    config_util.verify_eval_config(later)
    assert [m.name for m in later.model_specs] == [CANDIDATE_NAME, BASELINE_NAME]
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(later.metrics_specs, eval_config=later)
    # TFMA lists keys of both models; its validator skips the baseline's (metrics_validator.py).
    diff_keys = [k for k in thresholds if k.is_diff and k.model_name == CANDIDATE_NAME]
    assert {(k.output_name, k.name) for k in diff_keys} == {("ctr", "auc"), ("ctcvr", "auc")}


def test_explicit_null_removes_a_threshold_and_per_scenario_false():
    b = BlessingConfig.from_dict({"scenarios": {"detail_page": {"ctr": {"max_auc_drop": None}}}})
    assert b.thresholds("ctr", "detail_page") == Thresholds(0.5, None)
    assert b.thresholds("ctr", "search") == Thresholds(0.5, 0.01)
    assert b.thresholds("xcvr") == Thresholds(0.5, 0.01)  # every head is gated by default
    assert BlessingConfig.from_dict({"gated_heads": ["ctr"]}).thresholds("xcvr") == Thresholds()
    assert BlessingConfig.from_dict(b.to_dict()) == b
    by_slice = _thresholds_by_slice(_auc(_specs_by_head(build_eval_config(SPEC, ALL, blessing=b))["ctr"]))
    assert by_slice["detail_page"] == (0.5, None) and by_slice["home_feed"] == (0.5, pytest.approx(-0.01))
    overall_only = build_eval_config(SPEC, ALL, blessing=BlessingConfig(per_scenario=False))
    assert set(_thresholds_by_slice(_auc(_specs_by_head(overall_only)["ctr"]))) == {"overall"}
    none = build_eval_config(SPEC, ALL, blessing=BlessingConfig(min_auc=None, max_auc_drop=None))
    assert not _auc(_specs_by_head(none)["ctr"]).per_slice_thresholds


def test_round_trip_and_yaml(tmp_path):
    b = BlessingConfig.from_dict(EXAMPLE)
    assert BlessingConfig.from_dict(b.to_dict()) == b
    path = tmp_path / "run.yaml"
    path.write_text("model: mmoe\nblessing:\n  min_auc: 0.52\n  gated_heads: [ctr]\n"
                    "  scenarios: {search: {ctr: {min_auc: 0.6}}}\n")
    y = BlessingConfig.from_yaml(str(path))
    assert y.min_auc == 0.52 and y.thresholds("ctr", "search").min_auc == 0.6
    bad = tmp_path / "bad.yaml"
    bad.write_text("blessing:\n  heads: {ctr: {min_auc: 2}}\n")
    with pytest.raises(BlessingConfigError, match=r"bad.yaml: blessing.heads.ctr.min_auc: must be in \[0.0, 1.0\]"):
        BlessingConfig.from_yaml(str(bad))


@pytest.mark.parametrize("raw, message", [
    ({"min_auc": "high"}, r"blessing.min_auc: must be a number"),
    ({"min_auc": True}, r"blessing.min_auc: must be a number"),
    ({"max_auc_drop": -0.1}, r"blessing.max_auc_drop: must be in \[0.0, 1.0\]"),
    ({"min_aucc": 0.5}, r"blessing.min_aucc: unknown key"),
    ({"gated_heads": ["ctr", "click rate"]}, r"blessing.gated_heads\[1\]: 'click rate' is not a head name"),
    ({"gated_heads": "ctr", "per_scenario": "yes"}, r"blessing.per_scenario: must be true or false"),
    ({"gated_heads": ["ctr"], "heads": {"ctcvr": {"min_auc": 0.55}}},
     r"blessing.heads.ctcvr: head 'ctcvr' is not in gated_heads"),
    ({"heads": {"ctr": {"min_auc": 0.55, "drop": 1}}}, r"blessing.heads.ctr.drop: unknown key"),
    ({"heads": {"ctr": 0.55}}, r"blessing.heads.ctr: must be a mapping"),
    ({"gated_heads": ["ctr"], "scenarios": {"search": {"xcvr": {"min_auc": 0.5}}}},
     r"blessing.scenarios.search.xcvr: head 'xcvr' is not in gated_heads"),
    ({"scenarios": {"search": {"ctr": {"max_auc_drop": "x"}}}},
     r"blessing.scenarios.search.ctr.max_auc_drop: must be a number"),
    ({"min_positives": -1}, r"blessing.min_positives: must be an integer >= 0"),
    ({"min_calibration": 1.2}, r"blessing.min_calibration: must be in \[0.0, 1.0\]"),
    ({"max_calibration": 0.9}, r"blessing.max_calibration: must be in \[1.0, 1000000.0\]"),
    ([0.5], r"blessing: must be a mapping"),
])
def test_validation_errors_name_the_key(raw, message):
    with pytest.raises(BlessingConfigError, match=message):
        BlessingConfig.from_dict(raw)


def test_spec_dependent_errors():
    with pytest.raises(BlessingConfigError, match=r"blessing.scenarios.shop: unknown scenario of spec 'synthetic' "
                                                  r"\(known: home_feed, search, detail_page\)"):
        build_eval_config(SPEC, ALL, blessing=BlessingConfig.from_dict({"scenarios": {"shop": {"ctr": {}}}}))
    with pytest.raises(BlessingConfigError, match=r"blessing.gated_heads\[1\]: head 'ctavr' is not evaluated"):
        build_eval_config(SPEC, ("ctr", "ctcvr"),
                          blessing=BlessingConfig.from_dict({"gated_heads": ["ctr", "ctavr"]}))
    for raw, key in [({"gated_heads": ["ctr", "clicks"]}, r"blessing.gated_heads\[1\]: head 'clicks'"),
                     ({"gated_heads": ["cvr"]}, r"blessing.gated_heads\[0\]: head 'cvr'"),  # not over impressions
                     ({"heads": {"like": {"min_auc": 0.6}}}, r"blessing.heads.like: head 'like'"),
                     ({"scenarios": {"search": {"cvr": {}}}}, r"blessing.scenarios.search.cvr: head 'cvr'")]:
        with pytest.raises(BlessingConfigError, match=key + " is not evaluated for spec 'synthetic'"):
            build_eval_config(SPEC, ALL, blessing=BlessingConfig.from_dict(raw))
    with pytest.raises(BlessingConfigError, match="source.min_auc"):
        BlessingConfig.from_dict({"min_auc": 3}, source="source")


def test_user_id_feature_of_shipped_specs():
    assert user_id_feature(SPEC) == "user_id"
    assert user_id_feature(resolve_spec("aliccp")) == "101"
    cfg = build_eval_config(SPEC, ALL, user_key="uid")
    assert json.loads(_specs_by_head(cfg)["ctr"].metrics[1].config) == {"user_key": "uid"}


def test_no_gauc_without_a_user_id():
    spec = resolve_spec("aliexpress")  # no id feature: GAUC is left out, everything else stays
    assert user_id_feature(spec) is None
    names = [m.class_name for m in _specs_by_head(build_eval_config(spec, ALL))["ctr"].metrics]
    assert names == ["AUC", "BinaryCrossentropy", "Calibration", "ExampleCount", "CalibrationPlot",
                     "ConfusionMatrixPlot"]
