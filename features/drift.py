"""Drift thresholds of a spec: how far a feature's distribution may move between the last accepted span and a
new one, in two levels (docs/spec.md, measured defaults in docs/defaults.md).

The ExampleValidator compares each feature of a new span with the last accepted span through TFDV's drift
comparators:

* a string feature (ids, categories, the scenario, multivalent and sequence columns) by the **L-infinity
  distance** of its value shares, ``max_v |p_new(v) - p_accepted(v)|`` (TFDV ``infinity_norm``);
* a numeric feature (int64 or float32) by the **Jensen-Shannon divergence** of its histograms (TFDV
  ``jensen_shannon_divergence``).

Above ``warn`` the shift is reported (CLI, run summary, report); above ``block`` it stops the run before
Transform, as any other anomaly does. In the spec::

    drift:
      categorical: {warn: 0.05, block: 0.2}   # L-infinity, string features
      numeric: {warn: 0.05, block: 0.2}       # Jensen-Shannon, numeric features
      features:                               # per feature, overrides its kind's levels
        user_age: {warn: 0.02, block: 0.1}

The scenario's ``block`` is ``msmt run --max-scenario-shift`` unless the spec sets it per feature.

Every statistic these comparisons read (the pipeline's StatisticsGen, ``msmt skew``) is computed with
:func:`statistics_options`, so that both sides of a comparison count the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional

L_INFINITY, JENSEN_SHANNON = "L-infinity", "Jensen-Shannon"
KINDS = ("categorical", "numeric")
LEVELS = ("warn", "block")
# Measured on consecutive daily spans (docs/defaults.md): normal days stay far below ``warn``.
DEFAULT_WARN = 0.05
DEFAULT_BLOCK = 0.2
DRIFT_FILE = "drift.json"  # in the ExampleValidator's anomalies artifact


class DriftConfigError(ValueError):
    """A bad ``drift`` section; the message names the key."""


def statistics_options():
    """TFDV ``StatsOptions`` of every statistics computation (StatisticsGen, ``msmt skew``).

    Top values and unique counts come from TFDV's sketches (``use_sketch_based_topk_uniques``: Misra-Gries
    top-k and a KMV distinct count) instead of an exact count per value. Measured on 700,708 rows of a
    synthetic span (docs/benchmarks.md, StatisticsGen): 17.9 s instead of 25.1 s, the same top-10 values and
    counts for every feature (ids of 5,000 and 16,066 values, tags, scenario, device); only the request id
    (~200k values, not a feature, never compared) got estimated counts. Histograms (the numeric drift) are
    unchanged.
    """
    import tensorflow_data_validation as tfdv

    return tfdv.StatsOptions(use_sketch_based_topk_uniques=True)


@dataclasses.dataclass(frozen=True)
class DriftLevels:
    warn: float = DEFAULT_WARN
    block: float = DEFAULT_BLOCK


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """The ``drift`` section of a spec."""

    categorical: DriftLevels = DriftLevels()
    numeric: DriftLevels = DriftLevels()
    features: Mapping[str, DriftLevels] = dataclasses.field(default_factory=dict)

    def levels(self, name: str, dtype: str) -> DriftLevels:
        """The levels of feature ``name`` (its own, else its kind's)."""
        return self.features.get(name) or (self.categorical if dtype == "string" else self.numeric)

    def to_dict(self) -> Dict[str, Any]:
        return {"categorical": dataclasses.asdict(self.categorical), "numeric": dataclasses.asdict(self.numeric),
                "features": {k: dataclasses.asdict(v) for k, v in self.features.items()}}


def measure(dtype: str) -> str:
    """The distance a feature of this dtype is compared by."""
    return L_INFINITY if dtype == "string" else JENSEN_SHANNON


def _levels(raw: Any, key: str, base: DriftLevels) -> DriftLevels:
    if not isinstance(raw, dict) or set(raw) - set(LEVELS):
        raise DriftConfigError(f"{key}: must be a mapping with 'warn' and/or 'block', got {raw!r}")
    values = dict(dataclasses.asdict(base))
    for level in LEVELS:
        if level in raw:
            v = raw[level]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
                raise DriftConfigError(f"{key}.{level}: must be a number in (0, 1], got {v!r}")
            values[level] = float(v)
    if values["warn"] > values["block"]:
        raise DriftConfigError(f"{key}: warn {values['warn']} is above block {values['block']}")
    return DriftLevels(**values)


def drift_config_from_dict(raw: Optional[Any], feature_dtypes: Mapping[str, str]) -> DriftConfig:
    """Parse the ``drift`` section (None: the defaults) of a spec whose features have ``feature_dtypes``
    (name -> dtype); a feature's own levels start from its kind's. ``DriftConfigError`` names the bad key."""
    if raw is None:
        return DriftConfig()
    if not isinstance(raw, dict):
        raise DriftConfigError(f"drift: must be a mapping with categorical, numeric and features, got {raw!r}")
    unknown = set(raw) - set(KINDS) - {"features"}
    if unknown:
        raise DriftConfigError(f"drift: unknown key(s) {sorted(unknown)}; allowed: {', '.join(KINDS)}, features")
    kinds = {k: _levels(raw[k], f"drift.{k}", DriftLevels()) if k in raw else DriftLevels() for k in KINDS}
    features_raw = raw.get("features") or {}
    if not isinstance(features_raw, dict):
        raise DriftConfigError("drift.features: must be a mapping of feature name to {warn, block}")
    features = {}
    for name, levels in features_raw.items():
        if name not in feature_dtypes:
            raise DriftConfigError(f"drift.features.{name}: not a feature of the spec")
        kind = "categorical" if feature_dtypes[name] == "string" else "numeric"
        features[name] = _levels(levels, f"drift.features.{name}", kinds[kind])
    return DriftConfig(features=features, **kinds)


def write_drift(anomalies_uri: str, split: str, baseline: Optional[str], rows: List[Dict[str, Any]]) -> str:
    """Write ``drift.json``: the compared split, the accepted statistics it was compared with (None on a
    first run) and one row per feature (``feature, measure, value, warn, block, level``)."""
    path = os.path.join(anomalies_uri, DRIFT_FILE)
    with open(path, "w") as fh:
        json.dump({"split": split, "baseline": baseline, "features": rows}, fh, indent=1)
    return path


def read_drift(anomalies_uri: str) -> Optional[Dict[str, Any]]:
    """The ``drift.json`` of an ExampleValidator's anomalies artifact (None when absent)."""
    path = os.path.join(anomalies_uri, DRIFT_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)
