"""The pipeline's Evaluator: TFX's Evaluator, with thresholds only where the evaluation data can judge them.

A threshold on a slice with a handful of positives judges noise: with 50 positives the standard error of an
AUC is about 0.04 and that of a mean label about 14 %, so a fixed 0.01 AUC tolerance or a [0.8, 1.25]
calibration band would fail or pass good and bad models alike. Before TFMA runs, :class:`GatedEvaluator`
counts the positives of every evaluated head in every slice of the evaluation data (one pass over the label
and scenario columns) and drops the thresholds of slices with fewer than ``min_positives`` positives, except
the overall AUC thresholds, which always apply. The dropped ones are recorded as *not gated* in
``<evaluation>/gating.json`` and shown in the report.

By default (``evaluate_from="batches"``) the candidate and the baseline run once per batch of eval examples
and TFMA's metrics are computed per batch and slice (``pipeline.batched_evaluation``, passed to TFMA as its
extractor and evaluator by ``pipeline.tfx_patches.evaluator_stages``); ``evaluate_from="models"`` is TFX's own
path, where TFMA runs the SavedModels and its metrics one example at a time. Everything else is TFX's
Evaluator executor unchanged: the same metrics, slices, plots and thresholds, ``ModelEvaluation`` and
``ModelBlessing`` artifacts (so TFX's ``LatestBlessedModelStrategy`` finds the blessed models), and the same
validation result.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils, json_utils, proto_utils

from features.labels import head_label_columns
from features.spec import FeatureSpec
from pipeline.eval_config import AUC_METRIC
from pipeline.results import OVERALL

GATING_KEY = "gating"
GATING_FILE = "gating.json"
EVALUATE_FROM_KEY = "evaluate_from"
FROM_BATCHES, FROM_MODELS = "batches", "models"
EVALUATE_FROM = (FROM_BATCHES, FROM_MODELS)
# Equal to TFX's own path to 1e-6 (tests/evaluator_e2e_test.py) and 16x faster with a baseline
# (docs/benchmarks.md#evaluator).
DEFAULT_EVALUATE_FROM = FROM_BATCHES


def gating_parameters(spec: FeatureSpec, heads: Sequence[str], min_positives: int) -> Dict:
    """The ``gating`` execution parameter: the scenario column, each head's label columns, the minimum."""
    columns = head_label_columns(spec)
    return {"scenario": spec.scenario.name, "heads": {h: columns[h] for h in heads if h in columns},
            "min_positives": int(min_positives)}


def _column_kinds(record: bytes, columns: Sequence[str]) -> Dict[str, str]:
    import tensorflow as tf

    feats = tf.train.Example.FromString(record).features.feature
    return {c: (feats[c].WhichOneof("kind") if c in feats else "int64_list") or "int64_list" for c in columns}


def count_positives(file_patterns: Sequence[str], scenario: str,
                    head_columns: Mapping[str, Sequence[str]]) -> Dict[Tuple[str, str], int]:
    """(head, slice) -> positives in the tf.Example TFRecords of ``file_patterns`` (gzipped or not).

    A head's positive is a row where all its label columns are 1; slices are ``overall`` and every scenario
    value (as TFMA names the slice)."""
    import tensorflow as tf

    files = sorted({f for p in file_patterns for f in tf.io.gfile.glob(p)})
    counts: Dict[Tuple[str, str], int] = {(h, OVERALL): 0 for h in head_columns}
    if not files:
        return counts
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    first = next(iter(ds.take(1)), None)
    if first is None:
        return counts
    columns = sorted({c for cols in head_columns.values() for c in cols} | {scenario})
    kinds = _column_kinds(first.numpy(), columns)
    dtypes = {"bytes_list": tf.string, "int64_list": tf.int64, "float_list": tf.float32}
    parse = {c: tf.io.VarLenFeature(dtypes[kinds[c]]) for c in columns}
    default = {c: ("" if kinds[c] == "bytes_list" else 0) for c in columns}
    for batch in ds.batch(8192):
        parsed = tf.io.parse_example(batch, parse)
        dense = {c: tf.sparse.to_dense(v, default_value=default[c])[:, :1].numpy().reshape(-1)
                 if v.dense_shape[1] > 0 else np.full(int(v.dense_shape[0]), default[c], dtype=object)
                 for c, v in parsed.items()}
        scen = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in dense[scenario]])
        for h, cols in head_columns.items():
            positive = np.ones(len(scen), dtype=bool)
            for c in cols:
                positive &= dense[c].astype(np.float64) == 1
            counts[(h, OVERALL)] += int(positive.sum())
            values, n = np.unique(scen[positive], return_counts=True)
            for v, k in zip(values, n):
                counts[(h, str(v))] = counts.get((h, str(v)), 0) + int(k)
    return counts


def _slice_label(slicing_spec) -> str:
    values = list(slicing_spec.feature_values.values())
    return values[0] if values else OVERALL


def drop_thin_slices(eval_config, positives: Mapping[Tuple[str, str], int], min_positives: int) -> List[Dict]:
    """Remove (in place) the thresholds of slices with fewer than ``min_positives`` positives of their head,
    except AUC thresholds on the overall slice; returns what was removed (head, slice, metric, positives)."""
    from tensorflow_model_analysis.proto import config_pb2

    removed = []
    for metrics_spec in eval_config.metrics_specs:
        head = metrics_spec.output_names[0] if metrics_spec.output_names else ""
        for metric in metrics_spec.metrics:
            thresholds = []
            for pst in metric.per_slice_thresholds:
                kept = []
                for s in pst.slicing_specs:
                    name = _slice_label(s)
                    n = positives.get((head, name), 0)
                    if (metric.class_name == AUC_METRIC and name == OVERALL) or n >= min_positives:
                        kept.append(s)
                    else:
                        removed.append({"head": head, "slice": name, "metric": metric.class_name, "positives": n})
                if kept:
                    thresholds.append(config_pb2.PerSliceMetricThreshold(slicing_specs=kept, threshold=pst.threshold))
            del metric.per_slice_thresholds[:]
            metric.per_slice_thresholds.extend(thresholds)
    return removed


def read_gating(evaluation_uri: str) -> Dict:
    """``gating.json`` of an evaluation ({} when absent)."""
    path = os.path.join(evaluation_uri, GATING_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


class GatedEvaluatorExecutor(evaluator_executor.Executor):
    """Counts positives per head and slice, drops thin-slice thresholds, then runs TFX's Evaluator executor."""

    def Do(self, input_dict, output_dict, exec_properties):
        from absl import logging
        from tensorflow_model_analysis.proto import config_pb2

        exec_properties = dict(exec_properties)
        gating = json.loads(exec_properties.pop(GATING_KEY))
        evaluate_from = exec_properties.pop(EVALUATE_FROM_KEY, None) or DEFAULT_EVALUATE_FROM
        if evaluate_from not in EVALUATE_FROM:
            raise ValueError(f"{EVALUATE_FROM_KEY}: {evaluate_from!r} is not one of {', '.join(EVALUATE_FROM)}")
        eval_config = config_pb2.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], eval_config)
        splits = json_utils.loads(exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY) or "null") \
            or ["eval"]
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        split_patterns = {split: [io_utils.all_files_pattern(uri)
                                  for uri in artifact_utils.get_split_uris(examples, split)] for split in splits}
        positives = count_positives([p for ps in split_patterns.values() for p in ps], gating["scenario"],
                                    gating["heads"])
        removed = drop_thin_slices(eval_config, positives, gating["min_positives"])
        for r in removed:
            logging.info("Evaluator: not gated: %s / %s %s (%d positives < %d)", r["head"], r["slice"],
                         r["metric"], r["positives"], gating["min_positives"])
        exec_properties[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(eval_config)
        if evaluate_from == FROM_BATCHES and not _batched_evaluation_covers(
                eval_config, has_baseline=bool(input_dict.get(standard_component_specs.BASELINE_MODEL_KEY))):
            evaluate_from = FROM_MODELS
        if evaluate_from == FROM_BATCHES:
            from pipeline import batched_evaluation, tfx_patches

            user_key = batched_evaluation.gauc_user_key(eval_config)
            with tfx_patches.evaluator_stages(
                    lambda shared, config: batched_evaluation.evaluation_stages(shared, config, user_key)):
                result = super().Do(input_dict, output_dict, exec_properties)
        else:
            result = super().Do(input_dict, output_dict, exec_properties)
        evaluation_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        io_utils.write_string_file(os.path.join(evaluation_uri, GATING_FILE), json.dumps({
            "min_positives": gating["min_positives"], "splits": splits,
            "positives": {f"{h}/{s}": n for (h, s), n in sorted(positives.items())},
            "not_gated": removed}, indent=2))
        return result


def _batched_evaluation_covers(eval_config, has_baseline: bool) -> bool:
    """Whether the batched Evaluator computes everything ``eval_config`` asks for (as TFX's Evaluator will
    complete it); if not, the reason is logged and TFX's own path evaluates it."""
    import tensorflow_model_analysis as tfma
    from absl import logging

    from pipeline import batched_evaluation

    final = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=has_baseline, rubber_stamp=True)
    try:
        batched_evaluation.check_supported(final, batched_evaluation.computations_of(final).non_derived_computations)
    except batched_evaluation.UnsupportedEvalConfig as e:
        logging.warning("Evaluator: %s; evaluating one example at a time instead", e)
        return False
    return True


class GatedEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    PARAMETERS = dict(standard_component_specs.EvaluatorSpec.PARAMETERS,
                      **{GATING_KEY: ExecutionParameter(type=str),
                         EVALUATE_FROM_KEY: ExecutionParameter(type=str, optional=True)})


class GatedEvaluator(base_beam_component.BaseBeamComponent):
    """TFX's Evaluator (same inputs, outputs and EvalConfig) with :class:`GatedEvaluatorExecutor`.

    Args:
      examples, model, baseline_model, eval_config, example_splits: as ``tfx.components.Evaluator``.
      gating: :func:`gating_parameters`.
      evaluate_from: ``batches`` (default): the models run once per batch and the metrics are computed per
        batch and slice (``pipeline.batched_evaluation``); ``models``: TFX's own path, TFMA runs the
        SavedModels and its metrics one example at a time. Same numbers (to 1e-6); ``models`` evaluates what
        the batched path refuses (``batched_evaluation.check_supported``).
    """

    SPEC_CLASS = GatedEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(GatedEvaluatorExecutor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, baseline_model: types.BaseChannel,
                 eval_config, gating: Dict, example_splits: Sequence[str],
                 evaluate_from: str = DEFAULT_EVALUATE_FROM):
        super().__init__(spec=GatedEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, eval_config=eval_config,
            example_splits=json_utils.dumps(list(example_splits)), gating=json.dumps(gating, sort_keys=True),
            evaluate_from=evaluate_from,
            fairness_indicator_thresholds=json_utils.dumps(None),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))


def evaluate_offline(examples_uri: str, model_uri: str, output_dir: str, spec: FeatureSpec,
                     baseline_uri: Optional[str] = None, splits: Optional[Sequence[str]] = None,
                     blessing=None, evaluate_from: str = DEFAULT_EVALUATE_FROM,
                     beam_pipeline_args: Sequence[str] = ("--direct_running_mode=in_memory",
                                                          "--direct_num_workers=1")) -> Dict:
    """The pipeline's Evaluator executor run directly on artifacts of a finished run (no MLMD).

    Evaluates the Trainer ``model_uri`` (a Model artifact directory) on ``splits`` (default: every split) of
    the ExampleGen ``examples_uri``, against ``baseline_uri`` when given, with the EvalConfig and gating the
    pipeline builds for ``spec`` and ``blessing``. Writes ``output_dir/evaluation`` and ``output_dir/blessing``
    and returns their paths, whether the model was blessed and the executor's wall seconds. Used to compare the
    Evaluator's paths (tests/evaluator_e2e_test.py) and to time them (``make bench-perf``).
    """
    import time

    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.utils import path_utils

    from pipeline.eval_config import BlessingConfig, build_eval_config, evaluated_heads
    from pipeline.tfx_patches import no_tfx_sdist_for_local_beam
    from serving.scoring import serving_heads

    def artifact(kind, uri):
        a = kind()
        a.uri = uri
        return a

    blessing = blessing or BlessingConfig()
    splits = list(splits or sorted(d[len("Split-"):] for d in os.listdir(examples_uri) if d.startswith("Split-")))
    outputs = serving_heads(path_utils.serving_model_path(model_uri))
    eval_config = build_eval_config(spec, outputs, blessing=blessing, with_baseline=baseline_uri is not None)
    examples = artifact(standard_artifacts.Examples, examples_uri)
    examples.split_names = artifact_utils.encode_split_names(splits)
    inputs = {standard_component_specs.EXAMPLES_KEY: [examples],
              standard_component_specs.MODEL_KEY: [artifact(standard_artifacts.Model, model_uri)]}
    if baseline_uri is not None:
        inputs[standard_component_specs.BASELINE_MODEL_KEY] = [artifact(standard_artifacts.Model, baseline_uri)]
    evaluation = artifact(standard_artifacts.ModelEvaluation, os.path.join(output_dir, "evaluation"))
    blessed = artifact(standard_artifacts.ModelBlessing, os.path.join(output_dir, "blessing"))
    for a in (evaluation, blessed):
        os.makedirs(a.uri, exist_ok=True)
    props = {standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(eval_config),
             standard_component_specs.EXAMPLE_SPLITS_KEY: json.dumps(splits),
             GATING_KEY: json.dumps(gating_parameters(spec, evaluated_heads(spec, outputs), blessing.min_positives)),
             EVALUATE_FROM_KEY: evaluate_from, "fairness_indicator_thresholds": "null"}
    context = BaseBeamExecutor.Context(beam_pipeline_args=list(beam_pipeline_args),
                                       tmp_dir=os.path.join(output_dir, "tmp"), unique_id=evaluate_from)
    start = time.monotonic()
    with no_tfx_sdist_for_local_beam():
        executor = GatedEvaluatorExecutor(context)
    executor.Do(inputs, {standard_component_specs.EVALUATION_KEY: [evaluation],
                         standard_component_specs.BLESSING_KEY: [blessed]}, props)
    return {"evaluation": evaluation.uri, "blessing": blessed.uri, "seconds": time.monotonic() - start,
            "blessed": blessed.get_int_custom_property("blessed"), "splits": splits}
