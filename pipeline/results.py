"""Summaries of a finished run: TFMA metrics per head x slice, oracle AUC of synthetic data, pushed model."""

from __future__ import annotations

import glob
import json
import math
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from features.formats import iter_tfrecords_of_pattern
from features.spec import FeatureSpec
from features.synthetic import ORACLE_FOR_HEAD, oracle_auc

OVERALL = "overall"


CANDIDATE_MODEL_NAMES = ("", "candidate")  # single-model evaluations use "", with a baseline "candidate"


def slice_name(slice_key) -> str:
    """``overall`` for the unsliced key, else the value(s) of a ``SliceKey`` proto (``home_feed``, ``a/b``)."""
    values = []
    for k in slice_key.single_slice_keys:
        kind = k.WhichOneof("kind")
        raw = getattr(k, kind) if kind else ""
        values.append(raw.decode() if isinstance(raw, bytes) else str(raw))
    return "/".join(values) if values else OVERALL


def iter_tfma_metrics(eval_uri: str) -> Iterator[Tuple[str, str, str, str, bool, float]]:
    """(model_name, head, slice, metric, is_diff, value) of every scalar in the ``metrics-*`` files."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    pattern = os.path.join(eval_uri, "metrics*")
    if not glob.glob(pattern):
        raise FileNotFoundError(f"{eval_uri}: no TFMA metrics files")
    for rec in iter_tfrecords_of_pattern(pattern):
        m = metrics_for_slice_pb2.MetricsForSlice.FromString(rec)
        name = slice_name(m.slice_key)
        for kv in m.metric_keys_and_values:
            if kv.key.sub_key.ByteSize() or not kv.value.HasField("double_value"):
                continue
            yield (kv.key.model_name, kv.key.output_name or "_", name, kv.key.name, kv.key.is_diff,
                   kv.value.double_value.value)


def read_tfma_metrics(eval_uri: str, model_name: Optional[str] = None,
                      diff: bool = False) -> Dict[Tuple[str, str], Dict[str, float]]:
    """(head, slice) -> {metric: value} from the Evaluator's ``metrics-*`` TFRecord files.

    ``model_name``: None = the candidate (``""`` or ``candidate`` when a baseline was evaluated), else that
    model (e.g. ``baseline``). ``diff``: the candidate - baseline differences instead of the values.
    """
    out: Dict[Tuple[str, str], Dict[str, float]] = {}
    for model, head, name, metric, is_diff, value in iter_tfma_metrics(eval_uri):
        wanted = model in CANDIDATE_MODEL_NAMES if model_name is None else model == model_name
        if wanted and is_diff == diff:
            out.setdefault((head, name), {})[metric] = value
    return out


def read_examples(patterns: Union[str, Sequence[str]], columns: List[str]) -> Dict[str, np.ndarray]:
    """Selected columns of gzipped tf.Example TFRecords (single-valued; missing -> NaN / b'')."""
    import tensorflow as tf

    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted({f for p in patterns for f in glob.glob(p)})
    cols: Dict[str, list] = {c: [] for c in columns}
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    for batch in ds:
        for rec in batch.numpy():
            ex = tf.train.Example.FromString(rec)
            feats = ex.features.feature
            for c in columns:
                f = feats.get(c)
                if f is None:
                    cols[c].append(None)
                    continue
                kind = f.WhichOneof("kind")
                vals = getattr(f, kind).value if kind else []
                cols[c].append(vals[0] if len(vals) else None)
    return {c: np.array(v, dtype=object) for c, v in cols.items()}


def oracle_aucs(spec: FeatureSpec, examples_uri: str, splits: Sequence[str] = ("eval",)) -> Dict[Tuple[str, str], float]:
    """(head, slice) -> AUC of the true probabilities on the evaluated ``splits``, when the data carries them."""
    needed = {o for o, _ in ORACLE_FOR_HEAD.values()}
    label_cols = dict(spec.label_columns)
    cols = read_examples(split_files(examples_uri, splits), [spec.scenario.name] + list(label_cols.values()) + sorted(needed))
    if not len(cols[spec.scenario.name]) or all(v is None for v in cols["p_click"] if "p_click" in cols):
        return {}
    scen = np.array([(v.decode() if isinstance(v, bytes) else str(v)) for v in cols[spec.scenario.name]])
    out = {}
    for head, (oracle_col, roles) in ORACLE_FOR_HEAD.items():
        if any(r not in label_cols for r in roles) or all(v is None for v in cols[oracle_col]):
            continue
        target = np.ones(len(scen), dtype=bool)
        for r in roles:
            target &= np.array([bool(v) for v in cols[label_cols[r]]])
        prob = np.array([np.nan if v is None else float(v) for v in cols[oracle_col]])
        for slice_name in [OVERALL] + sorted(set(scen)):
            mask = np.ones(len(scen), bool) if slice_name == OVERALL else scen == slice_name
            out[(head, slice_name)] = oracle_auc(target[mask], prob[mask])
    return out


def format_table(metrics, oracle, heads) -> str:
    """A plain-text table: head, slice, AUC, GAUC, logloss, calibration, oracle AUC, oracle gap."""
    lines = [f"{'head':6} {'slice':14} {'examples':>9} {'AUC':>7} {'GAUC':>7} {'logloss':>8} {'calib':>6} "
             f"{'oracle':>7} {'gap':>6}"]
    slices = sorted({s for (_, s) in metrics}, key=lambda s: (s != OVERALL, s))
    for head in heads:
        for s in slices:
            m = metrics.get((head, s))
            if not m:
                continue
            auc = m.get("auc", float("nan"))
            orc = oracle.get((head, s)) if oracle else None
            gap = (auc - 0.5) / (orc - 0.5) if orc is not None and not math.isnan(orc) and orc > 0.5 else None
            lines.append(
                f"{head:6} {s:14} {int(m.get('example_count', 0)):>9} {auc:7.4f} {m.get('gauc', float('nan')):7.4f} "
                f"{m.get('binary_crossentropy', float('nan')):8.4f} {m.get('calibration', float('nan')):6.3f} "
                f"{'' if orc is None else f'{orc:.4f}':>7} {'' if gap is None else f'{gap:.3f}':>6}")
    return "\n".join(lines)


def read_json_object(path: str) -> Optional[Dict]:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object (a run's
    summaries are optional to whoever reads them: the report and the model card say what they lack)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def first_uri(artifacts) -> Optional[str]:
    return artifacts[0].uri if artifacts else None


def split_patterns(artifact_dir: str, split: str) -> List[str]:
    """File patterns of one split of an Examples artifact directory: ``<dir>/Split-<split>/*``, and
    ``<dir>/<n>/Split-<split>/*`` for an output that holds one artifact per input (Transform's transformed
    examples of several training spans)."""
    return [os.path.join(artifact_dir, f"Split-{split}", "*"), os.path.join(artifact_dir, "*", f"Split-{split}", "*")]


def split_files(artifact_dir: str, splits: Sequence[str]) -> List[str]:
    """The files of ``splits`` of an Examples artifact directory (:func:`split_patterns`), sorted."""
    return sorted({f for split in splits for p in split_patterns(artifact_dir, split) for f in glob.glob(p)})


def newest_artifact(run_dir: str, component: str, output: str) -> Optional[str]:
    """Newest ``<run_dir>/pipeline_root/<component>/<output>/<execution id>`` directory (largest id), or None."""
    dirs = [d for d in glob.glob(os.path.join(run_dir, "pipeline_root", component, output, "*"))
            if os.path.basename(d).isdigit()]
    return max(dirs, key=lambda d: int(os.path.basename(d))) if dirs else None
