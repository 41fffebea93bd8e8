"""Summaries of a finished run: TFMA metrics per head x slice, oracle AUC of synthetic data, pushed model."""

from __future__ import annotations

import glob
import math
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from features.spec import FeatureSpec
from features.synthetic import ORACLE_FOR_HEAD, oracle_auc

OVERALL = "overall"


def read_tfma_metrics(eval_uri: str) -> Dict[Tuple[str, str], Dict[str, float]]:
    """(head, slice) -> {metric: value} from the Evaluator's ``metrics-*`` TFRecord files."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    files = sorted(glob.glob(os.path.join(eval_uri, "metrics*")))
    if not files:
        raise FileNotFoundError(f"{eval_uri}: no TFMA metrics files")
    out: Dict[Tuple[str, str], Dict[str, float]] = {}
    for rec in tf.data.TFRecordDataset(files):
        m = metrics_for_slice_pb2.MetricsForSlice.FromString(rec.numpy())
        keys = m.slice_key.single_slice_keys
        if keys:
            k = keys[0]
            value = k.WhichOneof("kind")
            raw = getattr(k, value) if value else ""
            slice_name = raw.decode() if isinstance(raw, bytes) else str(raw)
        else:
            slice_name = OVERALL
        for kv in m.metric_keys_and_values:
            if kv.key.sub_key.ByteSize() or not kv.value.HasField("double_value"):
                continue
            head = kv.key.output_name or "_"
            out.setdefault((head, slice_name), {})[kv.key.name] = kv.value.double_value.value
    return out


def read_examples(pattern: str, columns: List[str]) -> Dict[str, np.ndarray]:
    """Selected columns of gzipped tf.Example TFRecords (single-valued; missing -> NaN / b'')."""
    import tensorflow as tf

    files = sorted(glob.glob(pattern))
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


def oracle_aucs(spec: FeatureSpec, examples_uri: str, split: str = "eval") -> Dict[Tuple[str, str], float]:
    """(head, slice) -> AUC of the true probabilities on the eval split, when the data carries them."""
    needed = {o for o, _ in ORACLE_FOR_HEAD.values()}
    label_cols = {"click": spec.labels.click, "conversion": spec.labels.conversion}
    if spec.labels.raction:
        label_cols["raction"] = spec.labels.raction
    files = os.path.join(examples_uri, f"Split-{split}", "*")
    cols = read_examples(files, [spec.scenario.name] + list(label_cols.values()) + sorted(needed))
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
    """A plain-text table: head, slice, AUC, logloss, calibration, oracle AUC, oracle gap."""
    lines = [f"{'head':6} {'slice':14} {'examples':>9} {'AUC':>7} {'logloss':>8} {'calib':>6} "
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
                f"{head:6} {s:14} {int(m.get('example_count', 0)):>9} {auc:7.4f} "
                f"{m.get('binary_crossentropy', float('nan')):8.4f} {m.get('calibration', float('nan')):6.3f} "
                f"{'' if orc is None else f'{orc:.4f}':>7} {'' if gap is None else f'{gap:.3f}':>6}")
    return "\n".join(lines)


def first_uri(artifacts) -> Optional[str]:
    return artifacts[0].uri if artifacts else None
