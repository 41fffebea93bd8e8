"""TFMA EvalConfig generated from the feature spec, the model's output keys and the blessing thresholds.

docs/evaluation.md. The candidate model spec (name ``candidate``) evaluates the ``serving_default``
signature, which returns every head, with the ``eval_labels`` signature as a preprocessing function so that
transformed label targets (``label_click``, ``label_ctcvr`` ...) serve as labels. With ``with_baseline`` a
second, identical model spec ``baseline`` (``is_baseline=True``) evaluates the last blessed model.

Slices: overall and per scenario (raw scenario values). Metrics per evaluated head: AUC, GAUC (per-user AUC,
``pipeline.gauc``), binary cross-entropy (logloss), calibration (mean prediction / mean label), example
count, and two plots for the report: CalibrationPlot and ConfusionMatrixPlot (ROC curves). Both plots and
AUC are derived from the same 10,000-bucket calibration histogram per head, so the plots add no per-example
work; GAUC adds one light combiner per head (about 25 us per example, head and slice). Measured on 8,000 eval
rows of the demo model: the same wall time as the former config (AUC, logloss, calibration, mean label and
prediction, count), within the run-to-run noise. With a baseline, TFMA computes every metric for both models:
about twice the work (its per-example metric combiners, not the model calls, dominate: docs/evaluation.md);
``pipeline.batched_evaluation`` computes the same metrics per record batch.

Blessing (:class:`BlessingConfig`). By default every head the model serves (among ctr, ctavr, ctcvr, xcvr) is
gated; downstream ranking multiplies heads, so one broken head is a broken model:

* on the overall slice: AUC >= ``min_auc`` (TFMA ``value_threshold.lower_bound``) and no regression,
  AUC(candidate) - AUC(baseline) >= -``max_auc_drop`` (TFMA ``change_threshold``, HIGHER_IS_BETTER,
  ``absolute = -max_auc_drop``);
* the same on every known scenario slice (``per_scenario``), where the slice has at least ``min_positives``
  positives of the head in the evaluation data;
* calibration (mean prediction / mean label) within [``min_calibration``, ``max_calibration``] on the overall
  slice, where the head has at least ``min_positives`` positives.

AUC thresholds have per-head and per-(scenario, head) overrides. They are written as ``per_slice_thresholds`` of
the head's metric, one per slice value, so that an override can loosen as well as tighten the default. The
positive counts are only known when the evaluation data is: :class:`pipeline.evaluator.GatedEvaluator` counts
them and drops the thresholds of slices below ``min_positives`` before TFMA runs, and records them as not gated
(``gating.json`` beside the evaluation). A gated slice with no example in the evaluation data fails the blessing
(TFMA reports it under ``missing_slices``).

Baseline handling in TFX 1.21 (``tfx/components/evaluator/executor.py``, ``Executor.Do``): the executor calls
``tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=bool(baseline_model input),
rubber_stamp=True)``. When no baseline model was resolved (the first run, or no model blessed yet) it drops
the ``is_baseline`` model spec and clears every ``change_threshold`` (``maybe_remove_baseline``), and the
single remaining model spec is renamed to ``""``; the absolute thresholds still apply. So the same EvalConfig
serves the first run and later runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from features.labels import head_label_keys, impression_heads
from features.spec import FeatureSpec
from serving.interface import EVAL_LABELS_SIGNATURE

# TFMA 0.52 loads its attributes lazily (tfma.EvalConfig may raise AttributeError): use the protos.
from tensorflow_model_analysis.proto import config_pb2

AUC_METRIC, CALIBRATION_METRIC = "AUC", "Calibration"
CANDIDATE_NAME = "candidate"
BASELINE_NAME = "baseline"
GAUC_MODULE = "pipeline.gauc"
# ROC points: thresholds 0, 1/n, ..., 1 (TFMA's default); derived from the shared histogram.
CONFUSION_MATRIX_THRESHOLDS = 1000
CALIBRATION_PLOT_BUCKETS = 1000


class BlessingConfigError(ValueError):
    """A blessing option is invalid; the message names the key."""


# ------------------------------------------------------------------------------------ blessing config
_THRESHOLD_KEYS = ("min_auc", "max_auc_drop")


def _number(value: Any, key: str, lo: float, hi: float) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BlessingConfigError(f"{key}: must be a number (or null for no threshold), got {value!r}")
    value = float(value)
    if math.isnan(value) or not lo <= value <= hi:
        raise BlessingConfigError(f"{key}: must be in [{lo}, {hi}], got {value}")
    return value


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BlessingConfigError(f"{key}: must be a mapping, got {type(value).__name__}")
    return value


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """AUC thresholds of one head (or one head in one scenario); None = no threshold / inherit."""

    min_auc: Optional[float] = None
    max_auc_drop: Optional[float] = None

    def __post_init__(self):
        _number(self.min_auc, "min_auc", 0.0, 1.0)
        _number(self.max_auc_drop, "max_auc_drop", 0.0, 1.0)

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> "Thresholds":
        raw = _mapping(raw, source)
        for k in raw:
            if k not in _THRESHOLD_KEYS:
                raise BlessingConfigError(f"{source}.{k}: unknown key (expected {', '.join(_THRESHOLD_KEYS)})")
        return cls(min_auc=_number(raw.get("min_auc"), f"{source}.min_auc", 0.0, 1.0),
                   max_auc_drop=_number(raw.get("max_auc_drop"), f"{source}.max_auc_drop", 0.0, 1.0))

    def over(self, base: "Thresholds", explicit: Sequence[str] = ()) -> "Thresholds":
        """These thresholds where set (or named in ``explicit``, e.g. an explicit null), else ``base``."""
        return Thresholds(
            min_auc=self.min_auc if self.min_auc is not None or "min_auc" in explicit else base.min_auc,
            max_auc_drop=(self.max_auc_drop if self.max_auc_drop is not None or "max_auc_drop" in explicit
                          else base.max_auc_drop))

    def to_dict(self) -> Dict[str, Optional[float]]:
        return {"min_auc": self.min_auc, "max_auc_drop": self.max_auc_drop}


@dataclasses.dataclass(frozen=True)
class BlessingConfig:
    """When the Evaluator blesses a model: thresholds on every served head, and no regression vs the last blessed.

    YAML (a ``blessing:`` section of a run config) or dict form; every key is optional::

        min_auc: 0.5            # AUC >= min_auc on every gated head, overall and per scenario (null: none)
        max_auc_drop: 0.01      # AUC(candidate) >= AUC(last blessed) - max_auc_drop (null: no check)
        gated_heads: null       # null: every head the model serves; or a list, e.g. [ctr, ctcvr]
        per_scenario: true      # also gate every known scenario slice with >= min_positives positives
        min_positives: 200      # scenario slices (and calibration) with fewer positives are not gated
        min_calibration: 0.8    # mean prediction / mean label of every gated head, overall (null: no bound)
        max_calibration: 1.25
        heads:                  # per-head overrides of min_auc / max_auc_drop
          ctcvr: {min_auc: 0.55}
        scenarios:              # per (scenario, head) overrides
          search: {ctr: {max_auc_drop: 0.02}}

    Precedence: scenarios.<scenario>.<head> > heads.<head> > the defaults. An explicit ``null`` in an
    override removes the threshold there. Overrides may only name gated heads. Scenario names are checked
    against the feature spec by :func:`build_eval_config`. Where the defaults come from:
    ``docs/evaluation.md``.
    """

    min_auc: Optional[float] = 0.5
    max_auc_drop: Optional[float] = 0.01
    gated_heads: Optional[Tuple[str, ...]] = None
    per_scenario: bool = True
    min_positives: int = 200
    min_calibration: Optional[float] = 0.8
    max_calibration: Optional[float] = 1.25
    heads: Mapping[str, Thresholds] = dataclasses.field(default_factory=dict)
    scenarios: Mapping[str, Mapping[str, Thresholds]] = dataclasses.field(default_factory=dict)
    # Keys set to an explicit null in an override: {(scenario or "", head): ("min_auc", ...)}.
    explicit_nulls: Mapping[Tuple[str, str], Tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.gated_heads is not None:
            object.__setattr__(self, "gated_heads", tuple(self.gated_heads))
        _number(self.min_auc, "blessing.min_auc", 0.0, 1.0)
        _number(self.max_auc_drop, "blessing.max_auc_drop", 0.0, 1.0)
        _number(self.min_calibration, "blessing.min_calibration", 0.0, 1.0)
        _number(self.max_calibration, "blessing.max_calibration", 1.0, 1e6)
        if not isinstance(self.per_scenario, bool):
            raise BlessingConfigError(f"blessing.per_scenario: must be true or false, got {self.per_scenario!r}")
        if isinstance(self.min_positives, bool) or not isinstance(self.min_positives, int) or self.min_positives < 0:
            raise BlessingConfigError(f"blessing.min_positives: must be an integer >= 0, got {self.min_positives!r}")
        for i, h in enumerate(self.gated_heads or ()):
            if not isinstance(h, str) or not h.isidentifier():
                raise BlessingConfigError(f"blessing.gated_heads[{i}]: {h!r} is not a head name")
        for h in self.heads:
            self._check_gated(h, f"blessing.heads.{h}")
        for scen, per_head in self.scenarios.items():
            for h in per_head:
                self._check_gated(h, f"blessing.scenarios.{scen}.{h}")

    def gated(self, heads: Sequence[str]) -> Tuple[str, ...]:
        """The gated heads among the evaluated ``heads`` (all of them unless ``gated_heads`` names some)."""
        return tuple(h for h in heads if self.gated_heads is None or h in self.gated_heads)

    def _check_gated(self, head: str, key: str) -> None:
        if self.gated_heads is not None and head not in self.gated_heads:
            raise BlessingConfigError(f"{key}: head {head!r} is not in gated_heads {list(self.gated_heads)}; "
                                      f"add it to gated_heads to gate it")

    # -------------------------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, raw: Any, source: str = "blessing") -> "BlessingConfig":
        """Validated config from a dict (e.g. a YAML section); errors name ``source.key``."""
        raw = _mapping(raw, source)
        known = ("min_auc", "max_auc_drop", "gated_heads", "per_scenario", "min_positives", "min_calibration",
                 "max_calibration", "heads", "scenarios")
        for k in raw:
            if k not in known:
                raise BlessingConfigError(f"{source}.{k}: unknown key (expected one of {', '.join(known)})")
        kwargs: Dict[str, Any] = {}
        for k, hi in (("min_auc", 1.0), ("max_auc_drop", 1.0), ("min_calibration", 1.0), ("max_calibration", 1e6)):
            if k in raw:
                kwargs[k] = _number(raw[k], f"{source}.{k}", 0.0 if k != "max_calibration" else 1.0, hi)
        if "min_positives" in raw:
            kwargs["min_positives"] = raw["min_positives"]
        if raw.get("gated_heads") is not None:
            g = raw["gated_heads"]
            if isinstance(g, str):
                g = [g]
            if not isinstance(g, (list, tuple)) or not all(isinstance(h, str) for h in g):
                raise BlessingConfigError(f"{source}.gated_heads: must be a list of head keys, got {g!r}")
            kwargs["gated_heads"] = tuple(g)
        if "per_scenario" in raw:
            if not isinstance(raw["per_scenario"], bool):
                raise BlessingConfigError(f"{source}.per_scenario: must be true or false, "
                                          f"got {raw['per_scenario']!r}")
            kwargs["per_scenario"] = raw["per_scenario"]
        nulls: Dict[Tuple[str, str], Tuple[str, ...]] = {}
        heads = {}
        for h, t in _mapping(raw.get("heads"), f"{source}.heads").items():
            heads[str(h)] = Thresholds.from_dict(t, f"{source}.heads.{h}")
            nulls[("", str(h))] = tuple(k for k in _THRESHOLD_KEYS if k in (t or {}) and t[k] is None)
        scenarios: Dict[str, Dict[str, Thresholds]] = {}
        for s, per_head in _mapping(raw.get("scenarios"), f"{source}.scenarios").items():
            s = str(s)
            scenarios[s] = {}
            for h, t in _mapping(per_head, f"{source}.scenarios.{s}").items():
                scenarios[s][str(h)] = Thresholds.from_dict(t, f"{source}.scenarios.{s}.{h}")
                nulls[(s, str(h))] = tuple(k for k in _THRESHOLD_KEYS if k in (t or {}) and t[k] is None)
        try:
            return cls(heads=heads, scenarios=scenarios,
                       explicit_nulls={k: v for k, v in nulls.items() if v}, **kwargs)
        except BlessingConfigError as e:
            msg = str(e)
            raise BlessingConfigError(source + msg[len("blessing"):] if msg.startswith("blessing") else msg) \
                from None

    @classmethod
    def from_yaml(cls, path: str, section: Optional[str] = "blessing") -> "BlessingConfig":
        """From a YAML file: its ``section`` (when the file has one) or the whole document."""
        import yaml

        with open(path) as fh:
            doc = yaml.safe_load(fh) or {}
        if section and isinstance(doc, Mapping) and section in doc:
            return cls.from_dict(doc[section], source=f"{path}: {section}")
        return cls.from_dict(doc, source=path)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict that :meth:`from_dict` reads back."""
        def thr(t: Thresholds, scope: Tuple[str, str]) -> Dict[str, Optional[float]]:
            nulls = self.explicit_nulls.get(scope, ())
            return {k: v for k, v in t.to_dict().items() if v is not None or k in nulls}

        return {
            "min_auc": self.min_auc, "max_auc_drop": self.max_auc_drop,
            "gated_heads": None if self.gated_heads is None else list(self.gated_heads),
            "per_scenario": self.per_scenario, "min_positives": self.min_positives,
            "min_calibration": self.min_calibration, "max_calibration": self.max_calibration,
            "heads": {h: thr(t, ("", h)) for h, t in self.heads.items()},
            "scenarios": {s: {h: thr(t, (s, h)) for h, t in ph.items()} for s, ph in self.scenarios.items()},
        }

    # -------------------------------------------------------------------------------- resolution
    def thresholds(self, head: str, scenario: Optional[str] = None) -> Thresholds:
        """Resolved AUC thresholds of ``head`` on the overall slice (``scenario=None``) or one scenario."""
        if self.gated_heads is not None and head not in self.gated_heads:
            return Thresholds()
        t = Thresholds(self.min_auc, self.max_auc_drop)
        if head in self.heads:
            t = self.heads[head].over(t, self.explicit_nulls.get(("", head), ()))
        if scenario is not None and head in self.scenarios.get(scenario, {}):
            t = self.scenarios[scenario][head].over(t, self.explicit_nulls.get((scenario, head), ()))
        return t

    def validate_for(self, spec: FeatureSpec, heads: Sequence[str]) -> None:
        """Checks the gated heads, the per-head and the scenario overrides against the spec and the evaluated
        heads (the funnel's ctr, ctavr, ctcvr, xcvr that the model serves, or the spec's declared tasks)."""
        overridden = [(f"blessing.gated_heads[{i}]", h) for i, h in enumerate(self.gated_heads or ())]
        overridden += [(f"blessing.heads.{h}", h) for h in self.heads]
        overridden += [(f"blessing.scenarios.{s}.{h}", h) for s, per_head in self.scenarios.items() for h in per_head]
        for key, h in overridden:
            if h not in heads:
                raise BlessingConfigError(f"{key}: head {h!r} is not evaluated for spec {spec.name!r} and these "
                                          f"model outputs (evaluated: {list(heads)})")
        known = [str(v) for v in spec.scenario.values]
        for s in self.scenarios:
            if s not in known:
                raise BlessingConfigError(f"blessing.scenarios.{s}: unknown scenario of spec {spec.name!r} "
                                          f"(known: {', '.join(known)})")
        if self.scenarios and not self.per_scenario:
            raise BlessingConfigError("blessing.scenarios: scenario overrides need per_scenario: true")


# ------------------------------------------------------------------------------------ eval config
def evaluated_heads(spec: FeatureSpec, output_keys: Optional[Sequence[str]] = None) -> Sequence[str]:
    """The served heads with a label over all impressions: the funnel's ctr, ctavr, ctcvr, xcvr, or every
    declared task (``features.labels.impression_heads``)."""
    labels = head_label_keys(spec)
    return [h for h in impression_heads(spec) if (output_keys is None or h in output_keys) and h in labels]


def user_id_feature(spec: FeatureSpec) -> Optional[str]:
    """The raw user id column: the first ``id`` feature of the user prior group, else one named user_id."""
    ids = [f.name for f in spec.by_role("id")]
    for name in spec.priors.get("user", ()):
        if name in ids:
            return name
    return "user_id" if "user_id" in ids else None


def _metric_configs(user_key: Optional[str]) -> list:
    out = [config_pb2.MetricConfig(class_name=AUC_METRIC)]
    if user_key:
        out.append(config_pb2.MetricConfig(class_name="GAUC", module=GAUC_MODULE,
                                           config=json.dumps({"user_key": user_key})))
    out += [config_pb2.MetricConfig(class_name=name) for name in ("BinaryCrossentropy", CALIBRATION_METRIC,
                                                                  "ExampleCount")]
    out.append(config_pb2.MetricConfig(class_name="CalibrationPlot",
                                       config=json.dumps({"num_buckets": CALIBRATION_PLOT_BUCKETS})))
    out.append(config_pb2.MetricConfig(class_name="ConfusionMatrixPlot",
                                       config=json.dumps({"num_thresholds": CONFUSION_MATRIX_THRESHOLDS})))
    return out


def _metric_threshold(t: Thresholds, with_change: bool) -> Optional[config_pb2.MetricThreshold]:
    out = config_pb2.MetricThreshold()
    if t.min_auc is not None:
        out.value_threshold.lower_bound.value = t.min_auc
    if with_change and t.max_auc_drop is not None:
        out.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
        out.change_threshold.absolute.value = -t.max_auc_drop
    return out if out.ByteSize() else None


def calibration_threshold(blessing: BlessingConfig) -> Optional[config_pb2.MetricThreshold]:
    """Mean prediction / mean label within [min_calibration, max_calibration] (None when both are null)."""
    out = config_pb2.MetricThreshold()
    if blessing.min_calibration is not None:
        out.value_threshold.lower_bound.value = blessing.min_calibration
    if blessing.max_calibration is not None:
        out.value_threshold.upper_bound.value = blessing.max_calibration
    return out if out.ByteSize() else None


def auc_slice_thresholds(spec: FeatureSpec, head: str, blessing: BlessingConfig,
                         with_change: bool = True) -> list:
    """``PerSliceMetricThreshold``s of one head's AUC: the overall slice and every known scenario slice."""
    scen = spec.scenario.name
    slices = [(None, config_pb2.SlicingSpec())]
    if blessing.per_scenario:
        slices += [(str(v), config_pb2.SlicingSpec(feature_values={scen: str(v)})) for v in spec.scenario.values]
    grouped: list = []  # [(threshold, [slicing specs])], slices with equal thresholds share one entry
    for scenario, slicing in slices:
        thr = _metric_threshold(blessing.thresholds(head, scenario), with_change)
        if thr is None:
            continue
        for existing, specs in grouped:
            if existing == thr:
                specs.append(slicing)
                break
        else:
            grouped.append((thr, [slicing]))
    return [config_pb2.PerSliceMetricThreshold(slicing_specs=specs, threshold=thr) for thr, specs in grouped]


def build_eval_config(spec: FeatureSpec, output_keys: Sequence[str], blessing: Optional[BlessingConfig] = None,
                      with_baseline: bool = True, user_key: Optional[str] = None) -> config_pb2.EvalConfig:
    """EvalConfig for the heads of ``output_keys`` the spec has labels for.

    Args:
      spec: the feature spec (labels, scenario column, user id column).
      output_keys: the heads the model serves (``models.registry.model_outputs``); exactly those are evaluated.
      blessing: thresholds (default ``BlessingConfig()``).
      with_baseline: add the ``baseline`` model spec and the no-regression (change) thresholds. Without
        it, only the absolute thresholds are written and the candidate spec is unnamed.
      user_key: raw user id feature for GAUC (default :func:`user_id_feature`; no GAUC when there is none).
    """
    blessing = blessing or BlessingConfig()
    heads = evaluated_heads(spec, output_keys)
    blessing.validate_for(spec, heads)
    labels = head_label_keys(spec)
    user_key = user_key or user_id_feature(spec)
    gated = blessing.gated(heads)

    metrics_specs = []
    for h in heads:
        metrics = _metric_configs(user_key)
        if h in gated:
            by_name = {m.class_name: m for m in metrics}
            by_name[AUC_METRIC].per_slice_thresholds.extend(auc_slice_thresholds(spec, h, blessing, with_baseline))
            calibration = calibration_threshold(blessing)
            if calibration is not None:
                by_name[CALIBRATION_METRIC].per_slice_thresholds.append(config_pb2.PerSliceMetricThreshold(
                    slicing_specs=[config_pb2.SlicingSpec()], threshold=calibration))
        metrics_specs.append(config_pb2.MetricsSpec(output_names=[h], metrics=metrics))

    def model_spec(name: str, is_baseline: bool = False) -> config_pb2.ModelSpec:
        return config_pb2.ModelSpec(name=name, is_baseline=is_baseline, signature_name="serving_default",
                                    preprocessing_function_names=[EVAL_LABELS_SIGNATURE],
                                    label_keys={h: labels[h] for h in heads})

    model_specs = ([model_spec(CANDIDATE_NAME), model_spec(BASELINE_NAME, is_baseline=True)] if with_baseline
                   else [model_spec("")])
    return config_pb2.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[config_pb2.SlicingSpec(), config_pb2.SlicingSpec(feature_keys=[spec.scenario.name])],
        metrics_specs=metrics_specs,
        # The Keras model's own compiled metrics/losses are per-task TFRS internals: not evaluated here.
        options=config_pb2.Options(include_default_metrics={"value": False}),
    )
