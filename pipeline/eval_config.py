"""TFMA EvalConfig generated from the feature spec and the model's output keys (DESIGN.md section 7).

One model spec whose ``serving_default`` signature returns every head, with the ``eval_labels`` signature
as a preprocessing function so that transformed label targets (``label_ctcvr`` ...) serve as labels. Slices:
overall and per scenario (raw scenario values). Metrics per evaluated head: AUC, binary cross-entropy
(logloss), calibration, mean label / prediction and example count; blessing needs the AUC of every head in
``bless_heads`` (default: ctr) above ``min_auc``.
"""

from __future__ import annotations

from typing import Sequence

from features.labels import head_label_keys
from features.spec import FeatureSpec
from serving.signatures import EVAL_LABELS_SIGNATURE

# TFMA 0.52 loads its attributes lazily (tfma.EvalConfig may raise AttributeError): use the protos.
from tensorflow_model_analysis.proto import config_pb2

# Heads evaluated over all impressions (cvr is conditional on a click and is not evaluated here).
EVALUATED_HEADS = ("ctr", "ctavr", "ctcvr", "xcvr")


def evaluated_heads(spec: FeatureSpec, output_keys: Sequence[str] = EVALUATED_HEADS) -> Sequence[str]:
    labels = head_label_keys(spec)
    return [h for h in EVALUATED_HEADS if h in output_keys and h in labels]


def _metrics(auc_threshold=None):
    auc = config_pb2.MetricConfig(class_name="AUC")
    if auc_threshold is not None:
        auc.threshold.CopyFrom(auc_threshold)
    return [auc] + [config_pb2.MetricConfig(class_name=name) for name in
                    ("BinaryCrossentropy", "Calibration", "MeanLabel", "MeanPrediction", "ExampleCount")]


def build_eval_config(spec: FeatureSpec, output_keys: Sequence[str] = ("ctr", "ctcvr", "xcvr", "ctavr"),
                      min_auc: float = 0.5, bless_heads: Sequence[str] = ("ctr",)) -> config_pb2.EvalConfig:
    """EvalConfig for the heads in ``output_keys``; ``bless_heads`` must reach AUC > ``min_auc`` overall."""
    heads = evaluated_heads(spec, output_keys)
    labels = head_label_keys(spec)
    auc_threshold = config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(lower_bound={"value": min_auc}))
    gated = [h for h in heads if h in bless_heads]
    others = [h for h in heads if h not in bless_heads]
    metrics_specs = [config_pb2.MetricsSpec(output_names=gated, metrics=_metrics(auc_threshold))]
    if others:
        metrics_specs.append(config_pb2.MetricsSpec(output_names=others, metrics=_metrics()))
    return config_pb2.EvalConfig(
        model_specs=[config_pb2.ModelSpec(
            signature_name="serving_default",
            preprocessing_function_names=[EVAL_LABELS_SIGNATURE],
            label_keys={h: labels[h] for h in heads},
        )],
        slicing_specs=[config_pb2.SlicingSpec(), config_pb2.SlicingSpec(feature_keys=[spec.scenario.name])],
        metrics_specs=metrics_specs,
        # The Keras model's own compiled metrics/losses are per-task TFRS internals: not evaluated here.
        options=config_pb2.Options(include_default_metrics={"value": False}),
    )
