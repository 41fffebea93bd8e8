"""STAR: partitioned layers against hand-computed values; the model builds, learns, round-trips, ablates."""

import numpy as np
import pytest
import tensorflow as tf

from models.blocks.star import PartitionedDense, PartitionedNormalization
from models.config import ConfigError
from models.star import STAR
from models.testing import tiny_batch, tiny_dims

CONFIG = {"embedding_dim": 4, "star_units": [16, 8], "aux_units": [4], "tower_units": [8], "norm_momentum": 0.5}


def _model(with_action=True, **overrides):
    return STAR(input_dims=tiny_dims().to_dict(), config={**CONFIG, **overrides}, with_action=with_action)


# ----------------------------------------------------------------------------- PartitionedDense
def test_partitioned_dense_matches_hand_computation():
    s, d, u = 2, 3, 2
    layer = PartitionedDense(u, num_scenarios=s, activation="relu")
    x = np.array([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 1.0]], np.float32)
    idx = np.array([0, 1, 2, 2], np.int64)  # 2 == S: unknown scenario
    layer.build((None, d))
    w = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 1.0]], np.float32)
    b = np.array([0.1, -0.2], np.float32)
    wp = np.array([[[2.0, 1.0], [1.0, -1.0], [0.5, 3.0]], [[-1.0, 0.5], [2.0, 1.0], [1.0, -2.0]]], np.float32)
    bp = np.array([[0.0, 0.3], [-0.5, 0.2]], np.float32)
    layer.set_weights([w, b, wp, bp])

    def out(xi, p):
        return np.maximum(xi @ (w * wp[p]) + b + bp[p], 0.0)

    expected = np.stack([out(x[0], 0), out(x[1], 1),
                         (out(x[2], 0) + out(x[2], 1)) / 2, (out(x[3], 0) + out(x[3], 1)) / 2])
    # The unknown slot averages the activated outputs (not the pre-activations): check the case matters.
    assert not np.allclose(expected[3], np.maximum((x[3] @ (w * wp[0]) + x[3] @ (w * wp[1])) / 2 + b + bp.mean(0), 0))
    got = layer(tf.constant(x), tf.constant(idx[:, None])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # Hand values for the first two rows.
    # W * W_0 = [[2, -1], [0.5, -2], [-0.5, 3]]: x0 (W * W_0) = [2 - 1 - 0.25, -1 + 4 + 1.5]; + b + b_0.
    np.testing.assert_allclose(got[0], [0.85, 4.6], atol=1e-6)
    # W * W_1 = [[-1, -0.5], [1, 2], [-1, -2]]: x1 (W * W_1) = [-0.3 + 1 + 1, -0.15 + 2 + 2]; + b + b_1.
    np.testing.assert_allclose(got[1], [1.3, 3.85], atol=1e-6)
    # Unknown x3: relu([-1.9, 2.1]) = [0, 2.1] (scenario 0), relu([0.6, 0.5]) (scenario 1); mean.
    np.testing.assert_allclose(got[3], [0.3, 1.3], atol=1e-6)


def test_partitioned_dense_initialises_to_the_shared_layer_and_round_trips_config():
    layer = PartitionedDense(4, num_scenarios=3, activation="relu", l2=0.01, name="p")
    x = tf.random.normal([5, 6], seed=1)
    idx = tf.constant([0, 1, 2, 3, 1], tf.int64)
    y = layer(x, idx)
    np.testing.assert_allclose(y.numpy(), tf.nn.relu(x @ layer.shared_kernel + layer.shared_bias).numpy(), atol=1e-6)
    again = PartitionedDense.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert len(layer.losses) == 1  # l2 on the shared kernel only


# ----------------------------------------------------------------------------- PartitionedNormalization
def _pn_reference(x, idx, mean, var, gamma, beta, gp, bp, eps, s):
    """numpy PN: per-scenario outputs, unknown slot = mean over scenarios."""
    def z(xi, p):
        row = min(p, len(mean) - 1)  # one statistics row per scenario, or a single shared row
        return gamma * gp[p] * (xi - mean[row]) / np.sqrt(var[row] + eps) + beta + bp[p]

    rows = []
    for xi, p in zip(x, idx):
        rows.append(z(xi, p) if p < s else np.mean([z(xi, q) for q in range(s)], axis=0))
    return np.stack(rows)


def test_partitioned_normalization_training_and_inference_match_hand_computation():
    s, eps, m = 2, 1e-3, 0.9
    layer = PartitionedNormalization(s, momentum=m, epsilon=eps)
    x = np.array([[1.0, 2.0], [3.0, 6.0], [0.0, -1.0], [2.0, 1.0], [5.0, 5.0]], np.float32)
    idx = np.array([0, 0, 1, 1, 2], np.int64)  # the last sample is of the unknown scenario
    layer.build((None, 2))
    gamma, beta = np.array([1.5, 0.5], np.float32), np.array([0.1, -0.1], np.float32)
    gp, bp = np.array([[1.0, 2.0], [0.5, 1.0]], np.float32), np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    layer.scenario_gamma.assign(gp)
    layer.scenario_beta.assign(bp)

    # Scenario 0: samples (1,2), (3,6): mean (2,4), biased var (1,4). Scenario 1: (0,-1), (2,1): mean (1,0), var (1,1).
    mean = np.array([[2.0, 4.0], [1.0, 0.0]], np.float32)
    var = np.array([[1.0, 4.0], [1.0, 1.0]], np.float32)
    got = layer(tf.constant(x), tf.constant(idx), training=True).numpy()
    np.testing.assert_allclose(got, _pn_reference(x, idx, mean, var, gamma, beta, gp, bp, eps, s), rtol=1e-5)
    # Sample 0 by hand: 1.5 * 1 * (1 - 2) / sqrt(1.001) + 0.1 + 0 = -1.39925...
    np.testing.assert_allclose(got[0, 0], -1.5 / np.sqrt(1.001) + 0.1, rtol=1e-6)

    # Moving averages: m * (0, 1) + (1 - m) * batch moments.
    np.testing.assert_allclose(layer.moving_mean.numpy(), (1 - m) * mean, rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), m + (1 - m) * var, rtol=1e-6)

    # Inference uses the moving averages and does not update them.
    got = layer(tf.constant(x), tf.constant(idx), training=False).numpy()
    np.testing.assert_allclose(got, _pn_reference(x, idx, (1 - m) * mean, m + (1 - m) * var, gamma, beta, gp, bp,
                                                  eps, s), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), (1 - m) * mean, rtol=1e-6)


def test_partitioned_normalization_absent_scenario_keeps_its_moving_average():
    layer = PartitionedNormalization(3, momentum=0.5)
    x = tf.constant([[1.0], [3.0], [8.0]])
    layer(x, tf.constant([0, 0, 3], tf.int64), training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy()[:, 0], [1.0, 0.0, 0.0], rtol=1e-6)  # 0.5 * 2
    np.testing.assert_allclose(layer.moving_variance.numpy()[:, 0], [1.0, 1.0, 1.0], rtol=1e-6)  # 0.5 + 0.5 * 1


def test_partitioned_normalization_shared_statistics():
    layer = PartitionedNormalization(2, momentum=0.0, epsilon=0.0, scenario_statistics=False)
    x = np.array([[1.0], [3.0], [5.0], [7.0]], np.float32)
    idx = np.array([0, 1, 1, 2], np.int64)
    layer.build((None, 1))
    layer.scenario_gamma.assign([[2.0], [1.0]])
    layer.scenario_beta.assign([[0.0], [1.0]])
    got = layer(tf.constant(x), tf.constant(idx), training=True).numpy()[:, 0]
    x_hat = (x[:, 0] - 4.0) / np.sqrt(5.0)
    np.testing.assert_allclose(got, [2 * x_hat[0], x_hat[1] + 1, x_hat[2] + 1, 1.5 * x_hat[3] + 0.5], rtol=1e-5)
    assert layer.moving_mean.shape == (1, 1)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [[4.0]])


# ----------------------------------------------------------------------------- model
def test_builds_from_config_and_outputs_heads():
    model = _model()
    assert set(model(tiny_batch(8))) == {"ctr", "cvr", "ctcvr", "xcvr", "ctavr"}  # ranges: zoo_test
    assert [layer.units for layer in model.star_layers] == [16, 8]
    assert "Sheng" in STAR.reference


def _variable_names(model):
    return [v.name for v in model.variables]


def test_ablations_change_the_layer_set():
    batch = tiny_batch(8)
    full = _model()
    full(batch)
    names = _variable_names(full)
    assert any("auxiliary" in n for n in names) and any("partitioned_norm" in n for n in names)

    no_aux = _model(auxiliary=False)
    no_aux(batch)
    assert no_aux.aux is None and not any("auxiliary" in n for n in _variable_names(no_aux))

    no_pn = _model(partitioned_norm=False)
    no_pn(batch)
    assert no_pn.pn is None and not any("partitioned_norm" in n for n in _variable_names(no_pn))
    assert len(no_pn.trainable_variables) == len(full.trainable_variables) - 4


def test_gradnorm_shared_layer_is_the_last_star_layer():
    model = _model()
    model(tiny_batch(4))
    shared = model.shared_layer_variables()
    assert [v.shape for v in shared] == [(16, 8), (8,)]
    assert shared[0] is model.star_layers[-1].shared_kernel


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="star_units must be a list"):
        _model(star_units=3)
    with pytest.raises(ConfigError, match="norm_momentum"):
        _model(norm_momentum=1.0)


def test_estimate_statistics_gives_population_moments_per_scenario():
    rng = np.random.default_rng(0)
    layer = PartitionedNormalization(3, momentum=0.99)
    x = rng.normal(2.0, 3.0, (500, 4)).astype(np.float32)
    idx = rng.integers(0, 3, 500)
    idx[idx == 2] = 3  # scenario 2 never appears; 3 is the unknown slot (counted in no scenario)
    layer(tf.constant(x[:8]), tf.constant(idx[:8]), training=False)  # build
    before = layer.moving_mean.numpy()[2].copy()
    batches = [(tf.constant(x[i:i + 100]), tf.constant(idx[i:i + 100])) for i in range(0, 500, 100)]
    assert layer.estimate_statistics(batches) == 500
    for s in (0, 1):
        rows = x[idx == s].astype(np.float64)
        np.testing.assert_allclose(layer.moving_mean.numpy()[s], rows.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy()[s], rows.var(axis=0), rtol=1e-4)
    np.testing.assert_array_equal(layer.moving_mean.numpy()[2], before)  # no sample: unchanged


def test_star_finalize_re_estimates_statistics_from_training_batches():
    model = _model()
    batch = tiny_batch(64)
    model(batch)
    summary = model.finalize(tf.data.Dataset.from_tensors(batch).repeat(3))
    assert summary == {"partitioned_norm_statistics_rows": 192}
    h = model.embedding.concat(model.embedding(batch)).numpy()
    s0 = batch["scenario"] == 0
    np.testing.assert_allclose(model.pn.moving_mean.numpy()[0], h[s0].mean(axis=0), rtol=1e-4, atol=1e-6)
