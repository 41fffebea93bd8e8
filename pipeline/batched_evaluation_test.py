"""The batched Evaluator's combiners against hand-computed numbers, its slicing, and what it refuses.

``tests/evaluator_e2e_test.py`` shows the whole path equal to TFX's own on a real run; these tests pin the parts.
"""

import math

import numpy as np
import pyarrow as pa
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from features.spec import resolve_spec
from pipeline import batched_evaluation as be
from pipeline.eval_config import build_eval_config


def _config(with_baseline=False):
    config = build_eval_config(resolve_spec("synthetic"), ["ctr", "ctcvr"], with_baseline=with_baseline)
    return tfma.utils.update_eval_config_with_defaults(config, has_baseline=with_baseline, rubber_stamp=True)


def _columns(labels, preds, users=None, model=""):
    labels, preds = np.asarray(labels, float), np.asarray(preds, float)
    cols = be.EvalColumns(len(labels), {(model, h): labels for h in ("ctr", "ctcvr")},
                          {(model, h): preds for h in ("ctr", "ctcvr")})
    if users is not None:
        cols.users = np.asarray(users, np.int64)
        cols.has_user = np.ones(len(labels), bool)
    return cols


def _metrics(config, batches):
    """Combiner outputs of ``batches`` (merged across two accumulators) and TFMA's derived metrics on them."""
    computations = be.computations_of(config)
    combine = be._BatchedComputationsCombineFn(computations.non_derived_computations)
    accs = []
    for cols in batches:  # one accumulator per batch, then merged: as Beam combines across bundles
        accs.append(combine.add_input(combine.create_accumulator(), cols))
    out = combine.extract_output(combine.merge_accumulators(accs))
    for c in computations.derived_computations:
        out.update(c.result(out))
    return out


def _value(metrics, name, output="ctr", model=""):
    return metrics[metric_types.MetricKey(name=name, model_name=model, output_name=output)]


def test_histogram_buckets_are_tfmas_bucket_index_hand_computed():
    out = _metrics(_config(), [_columns([1, 0], [0.05, 0.05]), _columns([1, 0, 0], [0.5, 1.0, -0.2])])
    histogram = next(v for k, v in out.items() if k.name.startswith("_calibration_histogram") and
                     k.output_name == "ctr")
    # int(p * 10000 + 1): 0.05 -> 501, 0.5 -> 5001; 1.0 -> the overflow bucket 10001; below 0 -> bucket 0.
    assert [(b.bucket_id, b.weighted_labels, b.weighted_predictions, b.weighted_examples) for b in histogram] == [
        (0, 0.0, -0.2, 1.0), (501, 1.0, 0.1, 2.0), (5001, 1.0, 0.5, 1.0), (10001, 0.0, 1.0, 1.0)]


def test_auc_calibration_count_and_logloss_hand_computed():
    labels, preds = [1, 0, 1, 0], [0.05, 0.05, 0.5, 0.9]
    out = _metrics(_config(), [_columns(labels[:3], preds[:3]), _columns(labels[3:], preds[3:])])
    # Pairs (positive, negative): (.05, .05) tie 1/2, (.05, .9) 0, (.5, .05) 1, (.5, .9) 0 -> 1.5 / 4.
    assert _value(out, "auc") == pytest.approx(0.375, abs=1e-6)
    assert _value(out, "calibration") == pytest.approx((0.05 + 0.05 + 0.5 + 0.9) / 2)
    assert _value(out, "example_count") == 4.0
    logloss = -(math.log(0.05) + math.log(0.95) + math.log(0.5) + math.log(0.1)) / 4
    assert _value(out, "binary_crossentropy") == pytest.approx(logloss, rel=1e-6)


def test_gauc_per_user_hand_computed():
    # user 1: positive 0.9 over negative 0.1 -> AUC 1 (2 rows); user 2: positive 0.2 under negative 0.6 -> 0
    # (2 rows); user 3: one class only, left out. GAUC = (2 * 1 + 2 * 0) / 4.
    cols = _columns([1, 0, 1, 0, 1], [0.9, 0.1, 0.2, 0.6, 0.5], users=[1, 1, 2, 2, 3])
    out = _metrics(_config(), [cols.take(np.arange(3)), cols.take(np.arange(3, 5))])
    assert _value(out, "gauc") == pytest.approx(0.5)
    assert _value(out, "gauc_users") == 2.0


def test_take_keeps_rows_of_every_column():
    cols = _columns([1, 0, 1], [0.1, 0.2, 0.3], users=[7, 8, 9]).take(np.array([2, 0]))
    assert cols.rows == 2 and cols.users.tolist() == [9, 7]
    assert cols.label_prediction("", "ctr")[1].tolist() == [0.3, 0.1]
    with pytest.raises(KeyError, match="no output 'xcvr'"):
        cols.label_prediction("", "xcvr")


def test_rows_grouped_by_value_missing_included():
    values = np.array([b"b", None, b"a", b"b", None], dtype=object)
    groups = {v: idx.tolist() for v, idx in be._group_rows(values)}
    assert groups == {b"b": [0, 3], None: [1, 4], b"a": [2]}


def test_single_values_of_a_list_column_and_multi_values_refused():
    column = pa.array([[b"x"], None, [], [b"y"]], pa.large_list(pa.large_binary()))
    assert be._single_values(column, "scenario").tolist() == [b"x", None, None, b"y"]
    with pytest.raises(be.UnsupportedEvalConfig, match="'scenario' holds 2 values in row 1"):
        be._single_values(pa.array([[b"x"], [b"y", b"z"]], pa.large_list(pa.large_binary())), "scenario")


def test_raw_records_one_per_row():
    column = pa.array([[b"r1"], [b"r2"]], pa.large_list(pa.large_binary()))
    assert be._raw_records(column).tolist() == [b"r1", b"r2"]
    with pytest.raises(ValueError, match="one serialized example per row"):
        be._raw_records(pa.array([[b"r1", b"r2"]], pa.large_list(pa.large_binary())))


def test_the_pipelines_eval_config_is_supported_with_and_without_baseline():
    for with_baseline in (False, True):
        config = _config(with_baseline)
        be.check_supported(config, be.computations_of(config).non_derived_computations)
    assert be.gauc_user_key(_config()) == "user_id"
    assert be.slicing_features(_config()) == ["scenario"]


@pytest.mark.parametrize("edit, reason", [
    (lambda c: c.options.compute_confidence_intervals.SetInParent() or
     setattr(c.options.compute_confidence_intervals, "value", True), "compute_confidence_intervals"),
    (lambda c: setattr(c.options.min_slice_size, "value", 10), "min_slice_size"),
    (lambda c: c.model_specs[0].example_weight_keys.update({"ctr": "w"}), "example weights"),
    (lambda c: c.model_specs[0].prediction_keys.update({"ctr": "p"}), "prediction keys"),
    (lambda c: c.metrics_specs[0].metrics.add(class_name="MeanSquaredError"), "MeanSquaredError|combiner"),
    (lambda c: setattr(c.metrics_specs[0], "query_key", "user_id"), "query_key"),
])
def test_what_the_batched_evaluator_does_not_compute_is_refused_with_the_reason(edit, reason):
    config = config_pb2.EvalConfig()
    config.CopyFrom(_config())
    edit(config)
    with pytest.raises(be.UnsupportedEvalConfig, match=f"({reason}).*evaluate_from='models'"):
        be.check_supported(config, be.computations_of(config).non_derived_computations)


def test_tfma_version_guard():
    assert be.check_tfma_version().startswith(be.SUPPORTED_TFMA)
    with pytest.raises(RuntimeError, match="written for TFMA 0.52"):
        be.check_tfma_version("0.53.0")
