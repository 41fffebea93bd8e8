"""The ExampleValidator's checks on real TFDV statistics: drift of every feature at warning and blocking level,
and the first-run resolver that finds nothing without failing."""

import numpy as np
import pandas as pd
import pytest

from features.drift import JENSEN_SHANNON, L_INFINITY
from features.spec import spec_from_dict
from pipeline.data_validator import check_span, drift_levels_of, describe_anomalies

SPEC = {"name": "t", "features": [{"name": "user_id", "role": "id"},
                                  {"name": "scenario", "role": "scenario", "values": ["feed", "search"]},
                                  {"name": "device", "role": "categorical"},
                                  {"name": "price", "role": "numeric", "dtype": "float32"}],
        "labels": {"click": "click", "conversion": "conversion"}}
ROWS = 6000
DEVICES = ["ios", "android", "web"]


def _span(seed, moved=0.0):
    """One day's rows; ``moved`` of the ``ios`` rows become ``web``."""
    rng = np.random.default_rng(seed)
    device = rng.choice(DEVICES, ROWS, p=[0.4, 0.35, 0.25])
    device[(device == "ios") & (rng.random(ROWS) < moved)] = "web"
    return pd.DataFrame({"user_id": [f"u{i}" for i in rng.integers(0, 2000, ROWS)],
                         "scenario": rng.choice(["feed", "search"], ROWS, p=[0.7, 0.3]),
                         "device": device, "price": rng.lognormal(3.0, 0.5, ROWS).astype(np.float32)})


def _check(previous, current, spec_extra=None, max_scenario_shift=0.1):
    import tensorflow_data_validation as tfdv

    spec = spec_from_dict(dict(SPEC, **(spec_extra or {})))
    levels = drift_levels_of(spec, max_scenario_shift)
    before, now = (tfdv.generate_statistics_from_dataframe(d) for d in (previous, current))
    found, rows = check_span(now, before, None, levels, open_vocabulary=["user_id", "device"])
    return found, {r["feature"]: r for r in rows}


def test_levels_per_feature_measure_and_scenario_limit():
    levels = drift_levels_of(spec_from_dict(SPEC), max_scenario_shift=0.1)
    assert levels["device"] == {"measure": L_INFINITY, "warn": 0.05, "block": 0.2}
    assert levels["price"] == {"measure": JENSEN_SHANNON, "warn": 0.05, "block": 0.2}
    assert levels["scenario"] == {"measure": L_INFINITY, "warn": 0.05, "block": 0.1}  # --max-scenario-shift
    own = drift_levels_of(spec_from_dict(dict(SPEC, drift={"features": {"scenario": {"block": 0.3}}})), 0.1)
    assert own["scenario"]["block"] == 0.3
    assert drift_levels_of(spec_from_dict(SPEC), max_scenario_shift=0.02)["scenario"]["warn"] == 0.02


def test_a_normal_next_day_is_ok_on_every_feature():
    found, rows = _check(_span(1), _span(2))
    assert set(rows) == {"user_id", "scenario", "device", "price"}
    assert all(r["level"] == "ok" for r in rows.values()), rows
    assert not found.anomaly_info


def test_injected_shifts_warn_then_block_with_the_features_named():
    before, after = _span(1), _span(2, moved=0.3)
    after["price"] = after["price"] * 1.6
    found, rows = _check(before, after)
    # L-infinity, computed by hand: the largest change of a device's share
    by_hand = (after["device"].value_counts(normalize=True)
               .sub(before["device"].value_counts(normalize=True), fill_value=0).abs().max())
    assert rows["device"]["value"] == pytest.approx(by_hand, abs=1e-6)
    assert 0.05 < by_hand < 0.2 and 0.05 < rows["price"]["value"] < 0.2, rows
    assert rows["device"]["level"] == rows["price"]["level"] == "warn"
    assert rows["scenario"]["level"] == rows["user_id"]["level"] == "ok"
    assert not found.anomaly_info  # warnings do not stop the run

    strict = {"drift": {"categorical": {"warn": 0.02, "block": 0.05}, "numeric": {"warn": 0.02, "block": 0.05}}}
    found, rows = _check(before, after, strict)
    assert rows["device"]["level"] == rows["price"]["level"] == "block"
    text = describe_anomalies(found)
    assert set(found.anomaly_info) == {"device", "price"}, text
    assert "  device: " in text and "Linfty" in text and "  price: " in text and "Jensen-Shannon" in text, text
    assert "That is above its block level 0.05 (warn 0.02" in text, text
