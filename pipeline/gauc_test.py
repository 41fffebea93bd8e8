"""GAUC: the per-user AUC functions against hand-computed values, then the TFMA metric in Beam and via EvalConfig.

Hand-made example (label, prediction) per user:

  user A: (1, 0.9) (0, 0.3) (1, 0.3) (0, 0.1)   positives {0.9, 0.3}, negatives {0.3, 0.1}
          pairs: 0.9>0.3: 1, 0.9>0.1: 1, 0.3=0.3: 1/2 (tie), 0.3>0.1: 1  ->  AUC_A = 3.5 / 4 = 0.875, n_A = 4
  user B: (0, 0.8) (1, 0.4) (0, 0.2)             positive 0.4 vs negatives {0.8, 0.2}: 0 + 1  ->  AUC_B = 1/2, n_B = 3
  user C: (0, 0.6) (0, 0.5)                      one class only: excluded
  GAUC = (4 * 0.875 + 3 * 0.5) / (4 + 3) = 5 / 7

Slices by column ``scen`` (x: A's first two rows, B's first two, C's first; y: the rest):
  x: A: (1, .9) (0, .3) -> 1, n=2;  B: (0, .8) (1, .4) -> 0, n=2  -> GAUC_x = 2 / 4 = 0.5
  y: A: (1, .3) (0, .1) -> 1, n=2;  B: one row -> excluded         -> GAUC_y = 1
A second output predicts 1 - p, which turns every AUC_u into 1 - AUC_u: GAUC = (4 * 0.125 + 3 * 0.5) / 7 = 2 / 7.
"""

import math
import os

import numpy as np
import pytest

from pipeline import gauc as G

ROWS = [  # user, label, prediction, scen
    ("A", 1, 0.9, "x"), ("A", 0, 0.3, "x"), ("A", 1, 0.3, "y"), ("A", 0, 0.1, "y"),
    ("B", 0, 0.8, "x"), ("B", 1, 0.4, "x"), ("B", 0, 0.2, "y"),
    ("C", 0, 0.6, "x"), ("C", 0, 0.5, "y"),
]
USERS = [r[0] for r in ROWS]
LABELS = [r[1] for r in ROWS]
PREDS = [r[2] for r in ROWS]


# ------------------------------------------------------------------------------------ pure functions
def test_auc_with_ties_hand_values():
    assert G.auc_with_ties([1, 0, 1, 0], [0.9, 0.3, 0.3, 0.1]) == pytest.approx(0.875)
    assert G.auc_with_ties([0, 1, 0], [0.8, 0.4, 0.2]) == pytest.approx(0.5)
    assert G.auc_with_ties([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # all tied
    assert G.auc_with_ties([1, 1, 0], [0.2, 0.9, 0.1]) == pytest.approx(1.0)
    assert G.auc_with_ties([0, 1], [0.9, 0.1]) == pytest.approx(0.0)
    assert math.isnan(G.auc_with_ties([0, 0], [0.6, 0.5]))
    assert math.isnan(G.auc_with_ties([], []))


def test_weights_equal_duplicated_rows():
    # Weight 2 on user A's tied positive == that row twice: positives {0.9, 0.3, 0.3}: (2 + 2*1.5) / 6.
    w = G.auc_with_ties([1, 0, 1, 0], [0.9, 0.3, 0.3, 0.1], weights=[1, 1, 2, 1])
    dup = G.auc_with_ties([1, 0, 1, 1, 0], [0.9, 0.3, 0.3, 0.3, 0.1])
    assert w == pytest.approx(dup) == pytest.approx(5.0 / 6.0)


def test_per_user_auc_and_gauc_hand_values():
    codes, auc, n_u = G.per_user_auc(USERS, LABELS, PREDS)
    assert list(codes) == [0, 1, 2]  # A, B, C
    assert auc[0] == pytest.approx(0.875) and auc[1] == pytest.approx(0.5) and math.isnan(auc[2])
    assert list(n_u) == [4, 3, 2]
    assert G.gauc(USERS, LABELS, PREDS) == pytest.approx(5.0 / 7.0)
    assert G.gauc_and_users(USERS, LABELS, PREDS) == (pytest.approx(5.0 / 7.0), 2)
    assert G.gauc(USERS, LABELS, [1 - p for p in PREDS]) == pytest.approx(2.0 / 7.0)
    # Row order and id type do not matter.
    perm = np.random.default_rng(0).permutation(len(ROWS))
    hashed = [G.user_hash(u.encode()) for u in USERS]
    assert G.gauc(np.array(hashed)[perm], np.array(LABELS)[perm], np.array(PREDS)[perm]) == pytest.approx(5 / 7)
    assert math.isnan(G.gauc(["C", "C"], [0, 0], [0.6, 0.5]))
    assert math.isnan(G.gauc([], [], []))


def test_vectorised_matches_per_user_loop_on_random_data():
    rng = np.random.default_rng(1)
    n = 3000
    users = rng.integers(0, 200, n)
    labels = (rng.random(n) < 0.2).astype(int)
    preds = np.round(rng.random(n) * 0.5 + 0.3 * labels, 2)  # rounding makes many ties
    weights = rng.integers(1, 4, n).astype(float)
    num = den = 0.0
    for u in np.unique(users):
        m = users == u
        a = G.auc_with_ties(labels[m], preds[m], weights[m])
        if not math.isnan(a):
            num += weights[m].sum() * a
            den += weights[m].sum()
    assert G.gauc(users, labels, preds, weights) == pytest.approx(num / den, rel=1e-12)


def test_user_hash_is_stable_and_handles_missing():
    assert G.user_hash(np.array([b"A"])) == G.user_hash(b"A") == G.user_hash([b"A"])
    assert G.user_hash(b"A") != G.user_hash(b"B")
    assert G.user_hash(np.array([7])) == G.user_hash(7)
    assert G.user_hash(None) is None and G.user_hash(np.array([], dtype=object)) is None
    # Fixed values (blake2b-64 of the bytes, little-endian, signed; computed once and pinned): the hash must
    # not depend on the process (PYTHONHASHSEED) nor change between releases, or stored results would not join.
    assert G.user_hash(b"A") == 5066686790394677530
    assert G.user_hash(7) == -9038873097560174361


# ------------------------------------------------------------------------------------ TFMA
def _extract(user, label, pred, scen):
    return {"labels": np.array([float(label)]), "predictions": np.array([pred]),
            "example_weights": np.array([1.0]),
            "features": {"user_id": np.array([user.encode()], dtype=object),
                         "scen": np.array([scen.encode()], dtype=object)}}


def test_gauc_combiner_in_beam_test_pipeline():
    """As TFMA tests its own metrics: computations -> StandardMetricInputs -> CombinePerKey(combiner)."""
    import apache_beam as beam
    from apache_beam.testing import util as beam_util
    from apache_beam.testing.test_pipeline import TestPipeline
    from tensorflow_model_analysis.metrics import metric_types, metric_util

    computations = G.GAUC(user_key="user_id").computations()
    assert len(computations) == 1
    computation = computations[0]
    assert computation.preprocessors[0].include_filter["features"] == {"user_id": {}}
    key, users = metric_types.MetricKey(name="gauc"), metric_types.MetricKey(name="gauc_users")

    def check(got):
        got = dict(got)
        assert set(got) == {(), (("scen", "x"),), (("scen", "y"),)}
        assert got[()] == {key: pytest.approx(5.0 / 7.0), users: 2}
        assert got[(("scen", "x"),)] == {key: pytest.approx(0.5), users: 2}
        assert got[(("scen", "y"),)] == {key: pytest.approx(1.0), users: 1}

    def slices(inputs):
        scen = inputs["features"]["scen"][0].decode()
        return [((), inputs), ((("scen", scen),), inputs)]

    with TestPipeline() as p:
        result = (p
                  | "Create" >> beam.Create([_extract(*r) for r in ROWS])
                  | "Standard" >> beam.Map(metric_util.to_standard_metric_inputs, include_features=True)
                  | "Slices" >> beam.FlatMap(slices)
                  | "Combine" >> beam.CombinePerKey(computation.combiner))
        beam_util.assert_that(result, check)


def test_gauc_combiner_merge_and_missing_user():
    from tensorflow_model_analysis.metrics import metric_types, metric_util

    combiner = G.GAUC().computations()[0].combiner
    inputs = [metric_util.to_standard_metric_inputs(_extract(*r), include_features=True) for r in ROWS]
    halves = []
    for part in (inputs[::2], inputs[1::2]):
        acc = combiner.create_accumulator()
        for x in part:
            acc = combiner.add_input(acc, x)
        halves.append(combiner.compact(acc))
    no_user = metric_util.to_standard_metric_inputs(
        {"labels": np.array([1.0]), "predictions": np.array([0.0]), "example_weights": np.array([1.0]),
         "features": {"user_id": np.array([], dtype=object)}}, include_features=True)
    halves[1] = combiner.add_input(halves[1], no_user)
    merged = combiner.merge_accumulators(halves)
    assert merged.missing_user == 1
    assert combiner.extract_output(merged)[metric_types.MetricKey(name="gauc")] == pytest.approx(5.0 / 7.0)


def test_gauc_through_eval_config_and_run_model_analysis(tmp_path):
    """End to end: MetricConfig(class_name='GAUC', module='pipeline.gauc'), two outputs, sliced."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.proto import config_pb2

    data = os.path.join(tmp_path, "examples.tfrecord")
    with tf.io.TFRecordWriter(data) as w:
        for user, label, pred, scen in ROWS:
            ex = tf.train.Example()
            f = ex.features.feature
            f["uid"].bytes_list.value.append(user.encode())
            f["scen"].bytes_list.value.append(scen.encode())
            f["click"].float_list.value.append(label)
            f["p_ctr"].float_list.value.append(pred)
            f["p_inv"].float_list.value.append(1.0 - pred)
            w.write(ex.SerializeToString())
    cfg = config_pb2.EvalConfig(
        model_specs=[config_pb2.ModelSpec(label_keys={"ctr": "click", "inv": "click"},
                                          prediction_keys={"ctr": "p_ctr", "inv": "p_inv"})],
        slicing_specs=[config_pb2.SlicingSpec(), config_pb2.SlicingSpec(feature_keys=["scen"])],
        metrics_specs=[config_pb2.MetricsSpec(output_names=["ctr", "inv"], metrics=[
            config_pb2.MetricConfig(class_name="GAUC", module="pipeline.gauc", config='{"user_key": "uid"}'),
            config_pb2.MetricConfig(class_name="ExampleCount")])])
    result = tfma.run_model_analysis(eval_config=cfg, data_location=data, output_path=str(tmp_path / "out"))
    got = {}
    for slice_key, metrics in result.slicing_metrics:
        name = slice_key[0][1] if slice_key else "overall"
        name = name.decode() if isinstance(name, bytes) else name
        for output, values in metrics.items():
            got[(name, output)] = values[""]["gauc"]["doubleValue"]
            got[(name, output, "users")] = values[""]["gauc_users"]["doubleValue"]
    assert got[("overall", "ctr")] == pytest.approx(5.0 / 7.0)
    assert got[("overall", "inv")] == pytest.approx(2.0 / 7.0)
    assert got[("x", "ctr")] == pytest.approx(0.5) and got[("x", "inv")] == pytest.approx(0.5)
    assert got[("y", "ctr")] == pytest.approx(1.0) and got[("y", "inv")] == pytest.approx(0.0)
    assert got[("overall", "ctr", "users")] == 2 and got[("y", "inv", "users")] == 1


def test_example_weighted_goes_through_tfma_generic_path_and_matches_pure_function():
    from tensorflow_model_analysis.metrics import metric_types, metric_util

    weights = [1.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0, 1.0]
    combiner = G.GAUC().computations(example_weighted=True)[0].combiner
    acc = combiner.create_accumulator()
    for r, w in zip(ROWS, weights):
        ex = _extract(*r)
        ex["example_weights"] = np.array([w])
        acc = combiner.add_input(acc, metric_util.to_standard_metric_inputs(ex, include_features=True))
    got = combiner.extract_output(acc)[metric_types.MetricKey(name="gauc", example_weighted=True)]
    # A: weights 1,2,1,3 -> positives {0.9: 1, 0.3: 1}, negatives {0.3: 2, 0.1: 3}:
    #    (1*(2+3) + 1*(0.5*2 + 3)) / (2 * 5) = 9/10, n_A = 7;
    # B: weights 1,1,2 -> positive 0.4 beats the negative 0.2 (weight 2) of 3: AUC 2/3, n_B = 4.
    assert got == pytest.approx((7 * 0.9 + 4 * 2 / 3) / 11)
    assert got == pytest.approx(G.gauc(USERS, LABELS, PREDS, weights))


def test_fast_path_equals_generic_path_on_multi_output_extracts(monkeypatch):
    from tensorflow_model_analysis.metrics import metric_types, metric_util

    def extracts():
        for user, label, pred, scen in ROWS:
            yield metric_util.to_standard_metric_inputs({
                "labels": {"ctr": np.array([label]), "inv": np.array([label])},
                "predictions": {"ctr": np.array([pred], np.float32), "inv": np.array([1 - pred], np.float32)},
                "example_weights": {"ctr": np.array([1.0]), "inv": np.array([1.0])},
                "features": {"user_id": np.array([user.encode()], dtype=object)}}, include_features=True)

    def run():
        out = {}
        for comp in G.GAUC().computations(output_names=["ctr", "inv"]):
            acc = comp.combiner.create_accumulator()
            for x in extracts():
                acc = comp.combiner.add_input(acc, x)
            out.update(comp.combiner.extract_output(acc))
        return out

    fast = run()
    monkeypatch.setattr(G._GAUCCombiner, "_single_label_prediction", lambda self, element: None)
    generic = run()
    assert fast == pytest.approx(generic)
    assert fast[metric_types.MetricKey(name="gauc", output_name="ctr")] == pytest.approx(5 / 7)
    assert fast[metric_types.MetricKey(name="gauc", output_name="inv")] == pytest.approx(2 / 7, rel=1e-6)
