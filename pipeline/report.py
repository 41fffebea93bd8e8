"""Human-readable evaluation report of a run: ``report.md`` + PNG plots (docs/evaluation.md).

``write_report(run_dir)`` reads the latest Evaluator output of the run (through ML Metadata in
``run_dir/metadata.sqlite``; without it, the newest ``pipeline_root/Evaluator/evaluation/<n>``) and writes
to ``<run_dir>/report/``:

* ``report.md``: the blessing verdict with the failed thresholds (and the thresholds that were checked);
  per head, a table over the slices (overall, then each scenario) of examples, AUC, GAUC, logloss and
  calibration; when a baseline was evaluated, its AUC, the AUC difference and
  RelaImpr = ((AUC - 0.5) / (AUC_baseline - 0.5) - 1) x 100%.
* ``roc_<slice>.png``: ROC curves of every head on one slice (from TFMA's ConfusionMatrixPlot).
* ``calibration_<head>.png``: mean label vs mean prediction per prediction bin, one curve per slice (from
  TFMA's CalibrationPlot, re-binned to bins of equal weight).
* ``report.json``: the same in machine-readable form: the evaluation, the verdict, the candidate's metrics per
  ``head/slice``, and the reproducibility record.

Both record what reproduces the run (section "Reproducibility", :func:`reproducibility`): the training seed
(from the Trainer's ``train_summary.json``, else its ``custom_config``, else the run config in ``logs/``), the
sha256 of the repository's ``requirements.lock`` (the pinned environment; also the one the Trainer recorded),
and the data fingerprint: the ExampleGen Examples artifact's ``input_fingerprint`` (files, bytes and mtimes of
the input), span and version, from ML Metadata.

The baseline is the last blessed model when the Evaluator evaluated one (model spec ``baseline``), or the
candidate of another run given as ``baseline_run_dir`` (which then takes precedence).

``msmt evaluate RUN_DIR [--output DIR] [--baseline-run DIR]`` regenerates the report (``add_evaluate_parser``).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from features.drift import L_INFINITY, read_drift
from features.fingerprint import LOCK_FILE, file_sha256
from features.formats import iter_tfrecords_of_pattern
from features.labels import ordered_heads
from models.config import TRAIN_SUMMARY_FILE
from pipeline.results import OVERALL, first_uri, newest_artifact, read_json_object, slice_name

REPORT_DIR = "report"
REPORT_JSON = "report.json"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATE = "candidate"
BASELINE = "baseline"
CALIBRATION_BINS = 15


class ReportError(RuntimeError):
    """The run directory has no evaluation to report on; the message says what is missing."""


# ------------------------------------------------------------------------------------ numbers
def rela_impr(auc: float, auc_baseline: float) -> float:
    """RelaImpr in percent: ((AUC - 0.5) / (AUC_baseline - 0.5) - 1) x 100; NaN when AUC_baseline <= 0.5."""
    if auc is None or auc_baseline is None or math.isnan(auc) or math.isnan(auc_baseline) or auc_baseline <= 0.5:
        return float("nan")
    return ((auc - 0.5) / (auc_baseline - 0.5) - 1.0) * 100.0


def roc_points(matrices) -> Tuple[List[float], List[float]]:
    """(FPR, TPR) from ``ConfusionMatrixAtThresholds.matrices``, sorted by FPR, with (0,0) and (1,1)."""
    pts = {(0.0, 0.0), (1.0, 1.0)}
    for m in matrices:
        pos = m.true_positives + m.false_negatives
        neg = m.false_positives + m.true_negatives
        if pos > 0 and neg > 0:
            pts.add((m.false_positives / neg, m.true_positives / pos))
    pts = sorted(pts)
    return [p[0] for p in pts], [p[1] for p in pts]


def calibration_points(buckets, bins: int = CALIBRATION_BINS) -> Tuple[List[float], List[float], List[float]]:
    """(mean prediction, mean label, weight) per bin of about equal weight, from calibration buckets."""
    rows = [(b.num_weighted_examples.value, b.total_weighted_label.value, b.total_weighted_refined_prediction.value)
            for b in buckets if b.num_weighted_examples.value > 0]
    total = sum(r[0] for r in rows)
    xs, ys, ws = [], [], []
    if total <= 0:
        return xs, ys, ws
    target = total / bins
    w = lab = pred = 0.0
    for n, label, p in rows:
        w, lab, pred = w + n, lab + label, pred + p
        if w >= target:
            xs.append(pred / w), ys.append(lab / w), ws.append(w)
            w = lab = pred = 0.0
    if w > 0:
        xs.append(pred / w), ys.append(lab / w), ws.append(w)
    return xs, ys, ws


# ------------------------------------------------------------------------------------ locating the evaluation
@dataclasses.dataclass
class EvaluationRef:
    """Where one Evaluator output lives and what the run's metadata says about it."""

    eval_uri: str
    blessing_uri: Optional[str] = None
    blessed: Optional[bool] = None  # None: the Evaluator did not validate (no thresholds) or unknown
    model_uri: Optional[str] = None
    baseline_model_uri: Optional[str] = None
    source: str = "directory"
    state: Optional[str] = None


def _has_metrics(uri: Optional[str]) -> bool:
    return bool(uri) and bool(glob.glob(os.path.join(uri, "metrics*")))


def _pipeline_name(run_dir: str, store) -> Optional[str]:
    summary = os.path.join(run_dir, "run_summary.json")
    if os.path.exists(summary):
        try:
            with open(summary) as fh:
                name = json.load(fh).get("config", {}).get("pipeline_name")
            if name:
                return name
        except (OSError, ValueError):
            pass
    names = [c.name for c in store.get_contexts_by_type("pipeline")]
    return names[0] if len(names) == 1 else None


def _open_latest_run(run_dir: str):
    """(MLMD store, component -> execution of the latest run) of ``run_dir``, or None without metadata."""
    path = os.path.join(run_dir, "metadata.sqlite")
    if not os.path.exists(path):
        return None
    from pipeline import mlmd

    store = mlmd.open_store(path)
    name = _pipeline_name(run_dir, store)
    return (store, mlmd.latest_run(store, name)) if name else None


def _from_mlmd(run_dir: str) -> Optional[EvaluationRef]:
    opened = _open_latest_run(run_dir)
    if opened is None:
        return None
    from pipeline import mlmd

    _, runs = opened
    evaluator = next((r for k, r in runs.items() if k.endswith("Evaluator")), None)
    if evaluator is None:
        return None
    evaluation = evaluator.outputs.get("evaluation") or []
    if not evaluation or not _has_metrics(evaluation[0].uri):
        return None
    ref = EvaluationRef(eval_uri=evaluation[0].uri, source="ML Metadata", state=evaluator.state)
    blessing = evaluator.outputs.get("blessing") or []
    if blessing:
        b = blessing[0]
        ref.blessing_uri = b.uri
        value = mlmd.custom_property(b, "blessed")
        ref.blessed = None if value is None else bool(value)
        ref.model_uri = mlmd.custom_property(b, "current_model")
        ref.baseline_model_uri = mlmd.custom_property(b, "baseline_model")
        if ref.blessed is None:
            ref.blessed = _blessed_from_files(b.uri)
    return ref


def _blessed_from_files(blessing_uri: Optional[str]) -> Optional[bool]:
    if not blessing_uri:
        return None
    if os.path.exists(os.path.join(blessing_uri, "BLESSED")):
        return True
    if os.path.exists(os.path.join(blessing_uri, "NOT_BLESSED")):
        return False
    return None


def _from_directory(run_dir: str) -> Optional[EvaluationRef]:
    root = os.path.join(run_dir, "pipeline_root", "Evaluator")
    candidates = []
    for d in glob.glob(os.path.join(root, "evaluation", "*")):
        base = os.path.basename(d)
        if base.isdigit() and _has_metrics(d):
            candidates.append((int(base), d))
    if not candidates:
        return None
    n, uri = max(candidates)
    blessing_uri = os.path.join(root, "blessing", str(n))
    blessing_uri = blessing_uri if os.path.isdir(blessing_uri) else None
    return EvaluationRef(eval_uri=uri, blessing_uri=blessing_uri, blessed=_blessed_from_files(blessing_uri))


def find_evaluation(run_dir: str) -> EvaluationRef:
    """The latest Evaluator output of ``run_dir`` (MLMD first, then the newest evaluation directory).

    ``run_dir`` may also be an evaluation directory itself (holding ``metrics-*`` files).
    """
    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ReportError(f"{run_dir}: no such directory")
    if _has_metrics(run_dir):
        parent = os.path.dirname(os.path.dirname(run_dir))  # .../Evaluator/evaluation/<n> -> .../Evaluator
        blessing = os.path.join(parent, "blessing", os.path.basename(run_dir))
        blessing = blessing if os.path.isdir(blessing) else None
        return EvaluationRef(eval_uri=run_dir, blessing_uri=blessing, blessed=_blessed_from_files(blessing))
    try:
        ref = _from_mlmd(run_dir)
    except Exception:  # an unreadable or foreign MLMD store: fall back to the directory layout
        ref = None
    ref = ref or _from_directory(run_dir)
    if ref is None:
        raise ReportError(f"{run_dir}: no evaluation found (no Evaluator output with TFMA metrics in "
                          f"metadata.sqlite or pipeline_root/Evaluator/evaluation/<n>/); run `msmt run` first")
    return ref


# ------------------------------------------------------------------------------------ reading TFMA output
@dataclasses.dataclass
class Evaluation:
    """TFMA output of one evaluation, keyed by (model, head, slice)."""

    ref: EvaluationRef
    metrics: Dict[Tuple[str, str, str], Dict[str, float]]
    diffs: Dict[Tuple[str, str, str], Dict[str, float]]
    plots: Dict[Tuple[str, str, str], Any]  # PlotData protos
    validation: Any  # ValidationResult proto or None
    eval_config: Any  # EvalConfig proto or None
    model_locations: Dict[str, str]

    @property
    def models(self) -> List[str]:
        return sorted({m for m, _, _ in self.metrics})

    @property
    def candidate(self) -> str:
        return CANDIDATE if CANDIDATE in self.models else (self.models[0] if self.models else "")

    @property
    def has_baseline(self) -> bool:
        return BASELINE in self.models

    @property
    def heads(self) -> List[str]:
        found = {h for _, h, _ in self.metrics}
        return list(ordered_heads(found))

    @property
    def slices(self) -> List[str]:
        found = {s for _, _, s in self.metrics}
        return ([OVERALL] if OVERALL in found else []) + sorted(found - {OVERALL})

    def value(self, head: str, slice_: str, metric: str, model: Optional[str] = None) -> float:
        m = self.metrics.get((self.candidate if model is None else model, head, slice_), {})
        return m.get(metric, float("nan"))

    def positives(self, head: str, slice_: str, model: Optional[str] = None) -> Optional[float]:
        """Weighted positive labels of a slice, from the calibration histogram (None without plots)."""
        pd = self.plots.get((self.candidate if model is None else model, head, slice_))
        if pd is None or not len(pd.calibration_histogram_buckets.buckets):
            return None
        return sum(b.total_weighted_label.value for b in pd.calibration_histogram_buckets.buckets)

    def auc(self, head: str, slice_: str, model: Optional[str] = None) -> float:
        """TFMA's AUC, NaN when the slice has a single class (TFMA then reports 0 or 1)."""
        value = self.value(head, slice_, "auc", model)
        pos, n = self.positives(head, slice_, model), self.value(head, slice_, "example_count", model)
        if pos is not None and (pos <= 0 or (not math.isnan(n) and pos >= n)):
            return float("nan")
        return value


def read_evaluation(ref: EvaluationRef) -> Evaluation:
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2, validation_result_pb2

    metrics: Dict[Tuple[str, str, str], Dict[str, float]] = {}
    diffs: Dict[Tuple[str, str, str], Dict[str, float]] = {}
    for rec in iter_tfrecords_of_pattern(os.path.join(ref.eval_uri, "metrics*")):
        m = metrics_for_slice_pb2.MetricsForSlice.FromString(rec)
        if m.HasField("cross_slice_key"):
            continue
        name = slice_name(m.slice_key)
        for kv in m.metric_keys_and_values:
            if kv.key.sub_key.ByteSize() or not kv.value.HasField("double_value"):
                continue
            target = diffs if kv.key.is_diff else metrics
            target.setdefault((kv.key.model_name, kv.key.output_name, name), {})[kv.key.name] = \
                kv.value.double_value.value
    plots: Dict[Tuple[str, str, str], Any] = {}
    for rec in iter_tfrecords_of_pattern(os.path.join(ref.eval_uri, "plots*")):
        p = metrics_for_slice_pb2.PlotsForSlice.FromString(rec)
        if p.HasField("cross_slice_key"):
            continue
        name = slice_name(p.slice_key)
        for kv in p.plot_keys_and_values:
            if kv.key.sub_key.ByteSize():
                continue
            key = (kv.key.model_name, kv.key.output_name, name)
            if key in plots:
                plots[key].MergeFrom(kv.value)
            else:
                plots[key] = kv.value
    validation = None
    for rec in iter_tfrecords_of_pattern(os.path.join(ref.eval_uri, "validations*")):
        validation = validation_result_pb2.ValidationResult.FromString(rec)
    eval_config, locations = None, {}
    cfg_path = os.path.join(ref.eval_uri, "eval_config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as fh:
            raw = json.load(fh)
        eval_config = json_format.ParseDict(raw.get("evalConfig", {}), config_pb2.EvalConfig(),
                                            ignore_unknown_fields=True)
        locations = dict(raw.get("modelLocations") or {})
    return Evaluation(ref, metrics, diffs, plots, validation, eval_config, locations)


# ------------------------------------------------------------------------------------ reproducibility
@dataclasses.dataclass
class Reproducibility:
    """What reproduces a run: the training seed, the pinned environment and the input data.

    ``*_source`` fields say where a value was read. ``trainer_lock_sha256``: the lock-file hash the Trainer
    recorded in ``train_summary.json`` (None when it did not); it differs from ``lock_sha256`` (the repository's
    ``requirements.lock`` when the report is written) when the environment changed since training.
    """

    seed: Optional[int] = None
    seed_source: Optional[str] = None
    lock_file: str = LOCK_FILE
    lock_sha256: Optional[str] = None
    trainer_lock_sha256: Optional[str] = None
    data_fingerprint: Optional[str] = None
    span: Optional[int] = None
    version: Optional[int] = None
    examples_uri: Optional[str] = None
    data_source: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _seed_of_train_dict(train: Any) -> Optional[int]:
    """The seed a Trainer uses for a ``TrainConfig`` dict (its ``seed`` key, else the TrainConfig default)."""
    from models.config import TrainConfig

    if not isinstance(train, dict):
        return None
    seed = train.get("seed", TrainConfig.seed)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _apply_train_summary(rep: Reproducibility, model_run_uri: Optional[str]) -> None:
    summary = read_json_object(os.path.join(model_run_uri, TRAIN_SUMMARY_FILE)) if model_run_uri else None
    if not summary:
        return
    if rep.seed is None and isinstance(summary.get("seed"), int):
        rep.seed, rep.seed_source = summary["seed"], f"Trainer {os.path.join(model_run_uri, TRAIN_SUMMARY_FILE)}"
    rep.trainer_lock_sha256 = rep.trainer_lock_sha256 or summary.get("lock_sha256")


def _apply_mlmd(rep: Reproducibility, run_dir: str) -> bool:
    """Data fingerprint, span and version of the latest run's ExampleGen output; the Trainer's seed.
    Returns whether ML Metadata knew the latest run's Trainer."""
    opened = _open_latest_run(run_dir)
    if opened is None:
        return False
    from pipeline import mlmd

    store, runs = opened
    example_gen = next((r for k, r in sorted(runs.items()) if k.endswith("ExampleGen")), None)
    examples = (example_gen.outputs.get("examples") or []) if example_gen else []
    if examples:
        a = examples[0]
        rep.examples_uri = a.uri
        rep.data_fingerprint = mlmd.custom_property(a, "input_fingerprint")
        span, version = mlmd.custom_property(a, "span"), mlmd.custom_property(a, "version")
        rep.span = None if span is None else int(span)
        rep.version = None if version is None else int(version)
        rep.data_source = f"ML Metadata: {example_gen.component} Examples artifact {a.id}"
    trainer = next((r for k, r in runs.items() if k.endswith("Trainer")), None)
    if trainer is None:
        return False
    _apply_train_summary(rep, first_uri(trainer.outputs.get("model_run")))
    if rep.seed is None:  # an older Trainer: the seed it was configured with
        executions = store.get_executions_by_id([trainer.execution_id])
        raw = mlmd.custom_property(executions[0], "custom_config") if executions else None
        try:
            cc = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            cc = None
        seed = _seed_of_train_dict((cc or {}).get("train", {})) if isinstance(cc, dict) else None
        if seed is not None:
            rep.seed, rep.seed_source = seed, f"Trainer custom_config (execution {trainer.execution_id})"
    return True


def reproducibility(run_dir: str) -> Reproducibility:
    """The seed, lock-file hash and data fingerprint of the run in ``run_dir`` (fields None when unknown).

    ML Metadata first; without it, the newest ``pipeline_root/Trainer/model_run/<n>/train_summary.json``; the
    seed last from the newest ``logs/pipeline-config-*.json`` that ``msmt run`` wrote.
    """
    run_dir = os.path.abspath(run_dir)
    rep = Reproducibility(lock_sha256=file_sha256(LOCK_FILE))
    try:
        trainer_known = _apply_mlmd(rep, run_dir)
    except Exception:  # an unreadable or foreign MLMD store: fall back to the files
        trainer_known = False
    if not trainer_known:
        _apply_train_summary(rep, newest_artifact(run_dir, "Trainer", "model_run"))
    if rep.seed is None:
        configs = sorted(glob.glob(os.path.join(run_dir, "logs", "pipeline-config-*.json")))
        cfg = read_json_object(configs[-1]) if configs else None
        seed = _seed_of_train_dict(cfg.get("train", {})) if cfg else None
        if seed is not None:
            rep.seed, rep.seed_source = seed, f"run config {configs[-1]}"
    return rep


def _reproducibility_section(rep: Reproducibility) -> List[str]:
    def code(v) -> str:
        return f"`{v}`" if v not in (None, "") else "unknown"

    lock = code(rep.lock_sha256) if rep.lock_sha256 else f"unknown (no {rep.lock_file})"
    data = code(rep.data_fingerprint)
    if rep.span is not None or rep.version is not None:
        data += f", span {rep.span if rep.span is not None else '-'}"
        data += f", version {rep.version}" if rep.version is not None else ""
    lines = ["## Reproducibility", "",
             "With the run config (`logs/pipeline-config-*.json`), these identify what a rerun needs to reproduce "
             "the metrics above (to 1e-6 on CPU): the input data, the training seed (the Trainer seeds Python, "
             "NumPy and TensorFlow and runs with TensorFlow op determinism) and the pinned environment.", "",
             "| what | value | from |", "|---|---|---|",
             f"| training seed | {code(rep.seed)} | {rep.seed_source or '-'} |",
             f"| lock-file sha256 | {lock} | `{os.path.basename(rep.lock_file)}` of `{os.path.dirname(rep.lock_file)}` |",
             f"| data fingerprint | {data} | {rep.data_source or '-'} (ExampleGen `input_fingerprint`) |"]
    if rep.examples_uri:
        lines.append(f"| examples | `{rep.examples_uri}` | |")
    lines.append("")
    if rep.trainer_lock_sha256 and rep.lock_sha256 and rep.trainer_lock_sha256 != rep.lock_sha256:
        lines += [f"Warning: the Trainer ran with a different lock file (sha256 `{rep.trainer_lock_sha256}`): "
                  "the environment changed since training.", ""]
    return lines


def _json_number(v: Any) -> Any:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


# ------------------------------------------------------------------------------------ formatting
def _f(v: Optional[float], fmt: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def _signed(v: Optional[float], fmt: str = "+.4f") -> str:
    return _f(v, fmt)


def _slicing_spec_label(spec) -> str:
    if spec.feature_values:
        return ", ".join(f"{k}={v}" for k, v in sorted(spec.feature_values.items()))
    if spec.feature_keys:
        return "every " + ", ".join(spec.feature_keys)
    return OVERALL


def _display_name(metric_name: str) -> str:
    return {"auc": "AUC", "gauc": "GAUC"}.get(metric_name, metric_name)


def _threshold_text(name: str, threshold) -> str:
    """``AUC >= 0.5 and AUC - baseline AUC >= -0.01`` for a ``MetricThreshold`` proto."""
    from tensorflow_model_analysis.proto import config_pb2

    parts = []
    if threshold.HasField("value_threshold"):
        vt = threshold.value_threshold
        if vt.HasField("lower_bound"):
            parts.append(f"{name} >= {vt.lower_bound.value:g}")
        if vt.HasField("upper_bound"):
            parts.append(f"{name} <= {vt.upper_bound.value:g}")
    if threshold.HasField("change_threshold"):
        ct = threshold.change_threshold
        op = ">=" if ct.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER else "<="
        if ct.HasField("absolute"):
            parts.append(f"{name} - baseline {name} {op} {ct.absolute.value:+g}")
        if ct.HasField("relative"):
            parts.append(f"({name} - baseline) / baseline {op} {ct.relative.value:+g}")
    return " and ".join(parts) or "?"


def _configured_thresholds(ev: Evaluation) -> List[Tuple[str, str, str]]:
    """(head, slices, condition) of every AUC-style threshold in the evaluated EvalConfig."""
    out = []
    if ev.eval_config is None:
        return out
    for ms in ev.eval_config.metrics_specs:
        heads = ", ".join(ms.output_names) or "(all)"
        for mc in ms.metrics:
            if mc.threshold.ByteSize():
                out.append((heads, "every slice", _threshold_text(mc.class_name, mc.threshold)))
            for pst in mc.per_slice_thresholds:
                slices = "; ".join(_slicing_spec_label(s) for s in pst.slicing_specs)
                out.append((heads, slices, _threshold_text(mc.class_name, pst.threshold)))
    return out


def blessing_failures(val) -> List[Tuple[str, str, str, str, str]]:
    """(head, slice, threshold, value, note) of every failed threshold in a TFMA ``ValidationResult``."""
    failures = []
    for mv in (val.metric_validations_per_slice if val is not None else []):
        where = slice_name(mv.slice_key) if mv.HasField("slice_key") else "cross-slice"
        for f in mv.failures:
            value = f.metric_value.double_value.value if f.HasField("metric_value") else float("nan")
            condition = _threshold_text(_display_name(f.metric_key.name), f.metric_threshold)
            shown = ("diff " if f.metric_key.is_diff else "") + _f(value)
            failures.append((f.metric_key.output_name or "-", where, condition, shown, f.message.strip()))
    return failures


def _blessing_section(ev: Evaluation) -> List[str]:
    from pipeline.evaluator import read_gating

    ref, val = ev.ref, ev.validation
    if ref.blessed is True:
        verdict = "**BLESSED**"
    elif ref.blessed is False:
        verdict = "**NOT BLESSED**"
    elif val is not None and val.missing_thresholds:
        verdict = "**not validated** (no thresholds configured)"
    elif val is not None:
        verdict = "**validation passed**" if val.validation_ok else "**validation failed**"
    else:
        verdict = "**unknown** (no blessing or validation result found)"
    lines = ["## Blessing", "", f"Verdict: {verdict}", ""]
    if val is not None and val.rubber_stamp:
        lines += ["No baseline model was evaluated (no blessed model yet): only the absolute thresholds were "
                  "checked, the no-regression thresholds were skipped.", ""]
    elif ev.has_baseline:
        lines += [f"Baseline (last blessed model): `{ref.baseline_model_uri or ev.model_locations.get(BASELINE, '?')}`",
                  ""]
    failures = blessing_failures(val)
    if failures:
        lines += ["Failed thresholds:", "", "| head | slice | threshold | value | note |", "|---|---|---|---|---|"]
        lines += [f"| {h} | {s} | {t} | {v} | {n} |" for h, s, t, v, n in failures] + [""]
    elif val is not None and not val.validation_ok and not val.missing_slices:
        lines += ["The validation failed without a per-metric failure (see validations.tfrecord).", ""]
    if val is not None and val.missing_slices:
        lines += ["Gated slices with no examples in the evaluation data (a missing slice fails the blessing): "
                  + ", ".join(_slicing_spec_label(s) for s in val.missing_slices), ""]
    gating = read_gating(ref.eval_uri)
    if gating.get("not_gated"):
        lines += [f"Not gated: slices with fewer than {gating['min_positives']} positives of the head in the evaluation "
                  f"data (their AUC or calibration cannot be judged; the overall AUC is always gated):", "",
                  "| head | slice | metric | positives |", "|---|---|---|---:|"]
        lines += [f"| {r['head']} | {r['slice']} | {r['metric']} | {r['positives']} |" for r in gating["not_gated"]]
        lines += [""]
    configured = _configured_thresholds(ev)
    if configured:
        lines += ["Thresholds checked:", "", "| head | slices | condition |", "|---|---|---|"]
        lines += [f"| {h} | {s} | {c} |" for h, s, c in configured] + [""]
    return lines


def _metrics_section(ev: Evaluation, baseline: Optional[Evaluation], baseline_label: str) -> List[str]:
    lines = ["## Metrics per head and slice", ""]
    if baseline is not None or ev.has_baseline:
        lines += [f"Baseline: {baseline_label}. RelaImpr = ((AUC - 0.5) / (AUC_baseline - 0.5) - 1) x 100%.", ""]
    for head in ev.heads:
        lines += [f"### {head}", ""]
        cols = ["slice", "examples", "positives", "AUC", "GAUC", "GAUC users", "logloss", "calibration"]
        with_base = baseline is not None or ev.has_baseline
        if with_base:
            cols += ["baseline AUC", "AUC diff", "RelaImpr", "baseline GAUC"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for s in ev.slices:
            if (ev.candidate, head, s) not in ev.metrics:
                continue
            auc = ev.auc(head, s)
            row = [s, _f(ev.value(head, s, "example_count"), ".0f"), _f(ev.positives(head, s), ".0f"), _f(auc),
                   _f(ev.value(head, s, "gauc")), _f(ev.value(head, s, "gauc_users"), ".0f"),
                   _f(ev.value(head, s, "binary_crossentropy")), _f(ev.value(head, s, "calibration"), ".3f")]
            if with_base:
                if baseline is not None:
                    b_auc, b_gauc = baseline.auc(head, s), baseline.value(head, s, "gauc")
                else:
                    b_auc, b_gauc = ev.auc(head, s, BASELINE), ev.value(head, s, "gauc", BASELINE)
                ri = rela_impr(auc, b_auc)
                row += [_f(b_auc), _signed(auc - b_auc), _f(ri, "+.2f") + ("%" if not math.isnan(ri) else ""),
                        _f(b_gauc)]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["AUC: TFMA (10,000-bucket histogram). GAUC: impression-weighted mean of per-user AUC over the "
              "\"GAUC users\" who have both labels in the slice (`pipeline.gauc`). logloss: binary cross-entropy. "
              "calibration: mean prediction / mean label. A dash: undefined (e.g. no positive in the slice) or not "
              "computed by this evaluation.", ""]
    return lines


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_square_plot(fig, ax, top: float, legend_loc: str, out_dir: str, name: str) -> str:
    """Draws the y = x diagonal up to ``top``, the legend, and writes ``out_dir/name``; returns ``name``."""
    ax.plot([0, top], [0, top], ":", color="grey", lw=0.8)
    ax.legend(loc=legend_loc, fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=90)
    _pyplot().close(fig)
    return name


DRIFT_PLOT_FEATURES = 12


def read_run_drift(run_dir: str) -> Optional[Dict[str, Any]]:
    """The drift measurements of the latest run's ExampleValidator (``features.drift.read_drift``)."""
    opened = _open_latest_run(run_dir)
    if opened is None:
        return None
    validator = next((r for k, r in opened[1].items() if k.endswith("ExampleValidator")), None)
    anomalies = (validator.outputs.get("anomalies") or []) if validator else []
    return read_drift(anomalies[0].uri) if anomalies else None


def _drift_section(drift: Optional[Dict[str, Any]], out_dir: str) -> List[str]:
    """A table of every feature's shift against the last accepted span, and a plot of the largest ones."""
    if drift is None:
        return []
    lines = ["## Data drift against the last accepted span", ""]
    rows = drift.get("features") or []
    if not rows:
        return lines + ["First run: no accepted span to compare with yet.", ""]
    warned = [r for r in rows if r["level"] != "ok"]
    lines += [f"Split `{drift['split']}` compared with `{drift['baseline']}`: "
              f"{len(warned)} of {len(rows)} features above their warning level. L-infinity: the largest change "
              f"of a value's share (string features); Jensen-Shannon: divergence of the histograms (numeric "
              f"features). Levels from the spec's `drift` section.", "",
              "| feature | measure | shift | warn | block | level |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['feature']} | {r['measure']} | {r['value']:.4f} | {r['warn']:g} | {r['block']:g} | "
              f"{r['level'].upper() if r['level'] != 'ok' else 'ok'} |" for r in rows]
    lines.append("")
    plt = _pyplot()
    top = rows[:DRIFT_PLOT_FEATURES][::-1]  # largest relative to its block level at the top
    fig, ax = plt.subplots(figsize=(6.0, 0.35 * len(top) + 1.2))
    y = list(range(len(top)))
    ax.barh(y, [r["value"] for r in top], color=["#c0392b" if r["level"] == "block" else "#e67e22"
                                                 if r["level"] == "warn" else "#5b8db8" for r in top])
    ax.scatter([r["warn"] for r in top], y, marker="|", s=200, color="black", label="warn")
    ax.scatter([r["block"] for r in top], y, marker="|", s=200, color="red", label="block")
    ax.set_yticks(y, [f"{r['feature']} ({'L∞' if r['measure'] == L_INFINITY else 'JS'})" for r in top], fontsize=8)
    ax.set_xlabel("shift against the last accepted span")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "drift.png"), dpi=90)
    plt.close(fig)
    return lines + ["![largest shifts](drift.png)", ""]


def _plot_roc(ev: Evaluation, out_dir: str) -> List[Tuple[str, str]]:
    plt = _pyplot()
    written = []
    for s in ev.slices:
        curves = []
        for head in ev.heads:
            for model, style in ((ev.candidate, "-"), (BASELINE, "--")):
                if model == BASELINE and (not ev.has_baseline or model == ev.candidate):
                    continue
                pd = ev.plots.get((model, head, s))
                if pd is None or not len(pd.confusion_matrix_at_thresholds.matrices):
                    continue
                curves.append((head, model, style, roc_points(pd.confusion_matrix_at_thresholds.matrices)))
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(5, 5))
        colors = {h: f"C{i}" for i, h in enumerate(ev.heads)}
        for head, model, style, (fpr, tpr) in curves:
            auc = ev.value(head, s, "auc", model)
            label = f"{head} (AUC {_f(auc, '.3f')})" + (" baseline" if model == BASELINE else "")
            ax.plot(fpr, tpr, style, color=colors[head], label=label, lw=1.5 if model != BASELINE else 1.0)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate", ylabel="true positive rate",
               title=f"ROC, slice {s}")
        written.append((s, _save_square_plot(fig, ax, 1.0, "lower right", out_dir, f"roc_{_safe(s)}.png")))
    return written


def _plot_calibration(ev: Evaluation, out_dir: str) -> List[Tuple[str, str]]:
    plt = _pyplot()
    written = []
    for head in ev.heads:
        curves = []
        for s in ev.slices:
            pd = ev.plots.get((ev.candidate, head, s))
            if pd is None or not len(pd.calibration_histogram_buckets.buckets):
                continue
            buckets = pd.calibration_histogram_buckets.buckets
            pos = sum(b.total_weighted_label.value for b in buckets)
            # About 20 positives per bin or more, between 3 and CALIBRATION_BINS bins.
            xs, ys, _ = calibration_points(buckets, bins=int(min(CALIBRATION_BINS, max(3, pos // 20))))
            if xs:
                curves.append((s, xs, ys))
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(5, 5))
        top = max(max(xs + ys) for _, xs, ys in curves) * 1.05 or 1.0
        for i, (s, xs, ys) in enumerate(curves):
            ax.plot(xs, ys, "o-", ms=3, lw=1.2, color=f"C{i}",
                    label=f"{s} (calibration {_f(ev.value(head, s, 'calibration'), '.3f')})")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean prediction", ylabel="mean label (observed rate)",
               title=f"Calibration, {head} (bins of equal weight)")
        written.append((head, _save_square_plot(fig, ax, top, "upper left", out_dir,
                                                f"calibration_{_safe(head)}.png")))
    return written


# ------------------------------------------------------------------------------------ entry points
def write_report(run_dir: str, output_dir: Optional[str] = None, baseline_run_dir: Optional[str] = None) -> str:
    """Writes ``report.md``, ``report.json`` and the PNG plots of the run's latest evaluation; returns the path
    of report.md.

    Raises :class:`ReportError` when ``run_dir`` (or ``baseline_run_dir``) holds no evaluation.
    """
    ref = find_evaluation(run_dir)
    ev = read_evaluation(ref)
    if not ev.metrics:
        raise ReportError(f"{ref.eval_uri}: the TFMA metrics files hold no metric")
    baseline, baseline_label = None, "the last blessed model, evaluated on the same data"
    if baseline_run_dir:
        bref = find_evaluation(baseline_run_dir)
        baseline = read_evaluation(bref)
        baseline_label = (f"the candidate of run `{os.path.abspath(baseline_run_dir)}` "
                          f"(evaluation `{bref.eval_uri}`; its own evaluation data)")
    out_dir = os.path.abspath(output_dir or os.path.join(run_dir, REPORT_DIR))
    os.makedirs(out_dir, exist_ok=True)

    lines = ["# Evaluation report", "",
             f"* run: `{os.path.abspath(run_dir)}`",
             f"* evaluation: `{ref.eval_uri}` (found via {ref.source}"
             + (f", Evaluator {ref.state}" if ref.state else "") + ")"]
    model = ref.model_uri or ev.model_locations.get(ev.candidate) or next(iter(ev.model_locations.values()), None)
    if model:
        lines.append(f"* candidate model: `{model}`")
    if ev.has_baseline:
        lines.append(f"* baseline model: `{ref.baseline_model_uri or ev.model_locations.get(BASELINE, '?')}`")
    lines.append("")
    lines += _blessing_section(ev)
    lines += _metrics_section(ev, baseline, baseline_label)
    lines += _drift_section(read_run_drift(run_dir), out_dir)
    rep = reproducibility(run_dir)
    lines += _reproducibility_section(rep)
    roc = _plot_roc(ev, out_dir)
    if roc:
        lines += ["## ROC curves per slice", ""]
        if ev.has_baseline:
            lines += ["Solid: candidate; dashed: baseline.", ""]
        lines += [f"![ROC {s}]({name})" for s, name in roc] + [""]
    cal = _plot_calibration(ev, out_dir)
    if cal:
        lines += ["## Calibration curves per head", ""]
        lines += [f"![calibration {h}]({name})" for h, name in cal] + [""]
    if not roc and not cal:
        lines += ["(No plots in this evaluation: it was run without CalibrationPlot / ConfusionMatrixPlot.)", ""]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    with open(os.path.join(out_dir, REPORT_JSON), "w") as fh:
        json.dump(_report_record(run_dir, ev, model, rep), fh, indent=2, sort_keys=True)
    return path


def _report_record(run_dir: str, ev: Evaluation, model: Optional[str], rep: Reproducibility) -> Dict[str, Any]:
    """``report.json``: the evaluation, verdict, candidate metrics per ``head/slice`` and reproducibility."""
    metrics = {f"{h}/{s}": {k: _json_number(v) for k, v in sorted(m.items())}
               for (mod, h, s), m in sorted(ev.metrics.items()) if mod == ev.candidate}
    return {
        "run_dir": os.path.abspath(run_dir),
        "evaluation": ev.ref.eval_uri,
        "evaluation_source": ev.ref.source,
        "blessed": ev.ref.blessed,
        "candidate_model": model,
        "baseline_model": (ev.ref.baseline_model_uri or ev.model_locations.get(BASELINE)) if ev.has_baseline
        else None,
        "metrics": metrics,
        "reproducibility": rep.to_dict(),
    }


def cmd_evaluate(args) -> int:
    import sys

    try:
        path = write_report(args.run_dir, output_dir=args.output, baseline_run_dir=args.baseline_run)
    except ReportError as e:
        print(f"msmt evaluate: {e}", file=sys.stderr)
        return 2
    print(f"msmt evaluate: report written to {path}")
    return 0


def add_evaluate_parser(subparsers) -> Any:
    """Registers ``evaluate RUN_DIR [--output DIR] [--baseline-run DIR]`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="write the evaluation report (Markdown + ROC / calibration PNGs) of a run",
        description="Reads the latest Evaluator output of RUN_DIR (TFMA metrics, plots, blessing) and writes "
                    "report.md with a metric table per head x slice, the blessing verdict with the failed "
                    "thresholds, ROC curves per scenario and calibration curves.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `msmt run`")
    p.add_argument("--output", metavar="DIR", default=None, help="report directory (default: RUN_DIR/report)")
    p.add_argument("--baseline-run", metavar="DIR", default=None,
                   help="another run directory whose candidate is the baseline for the AUC diff and RelaImpr "
                        "(default: the last blessed model, when the Evaluator evaluated one)")
    p.set_defaults(func=cmd_evaluate)
    return p
