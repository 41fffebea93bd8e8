"""AITM blocks: AIT attention against a hand computation, weights sum to 1, calibrator hand-computed."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.blocks.transfer import AttentionTransfer, calibrator_loss


def _inputs(b=6, d_prev=5, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.standard_normal((b, d_prev)), tf.float32),
            tf.constant(rng.standard_normal((b, d)), tf.float32))


def test_attention_weights_sum_to_one_and_shapes():
    prev, cur = _inputs()
    layer = AttentionTransfer()
    z, w = layer([prev, cur], return_attention=True)
    assert z.shape == (6, 4) and w.shape == (6, 2)
    np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(w.numpy() > 0)
    z8 = AttentionTransfer(units=8)([prev, cur])
    assert z8.shape == (6, 8)


def test_ait_matches_hand_computation():
    prev, cur = _inputs(b=3)
    layer = AttentionTransfer(units=3)
    z, w = layer([prev, cur], return_attention=True)
    g_w, g_b = layer.transfer.hidden[0].get_weights()
    p = np.maximum(prev.numpy() @ g_w + g_b, 0.0)  # p_{t-1} = ReLU(W z_{t-1} + b)
    h1, h2, h3 = (l.get_weights()[0] for l in (layer.h1, layer.h2, layer.h3))
    for b in range(3):
        u = np.stack([p[b], cur.numpy()[b]])  # (p_{t-1}, q_t)
        scores = np.sum((u @ h2) * (u @ h3), axis=1) / np.sqrt(3.0)
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(w.numpy()[b], weights, rtol=1e-5)
        np.testing.assert_allclose(z.numpy()[b], weights @ (u @ h1), rtol=1e-5, atol=1e-6)


def test_calibrator_hand_computed_and_gradients():
    p_t = tf.Variable([[0.3], [0.1], [0.5], [0.9]])
    p_prev = tf.Variable([[0.2], [0.4], [0.5], [0.6]])
    with tf.GradientTape() as tape:
        loss = calibrator_loss(p_t, p_prev)
    # max(0.1, 0) + 0 + 0 + max(0.3, 0) = 0.4, mean over 4 samples = 0.1
    assert float(loss) == pytest.approx(0.1, abs=1e-7)
    g_t, g_prev = tape.gradient(loss, [p_t, p_prev])
    np.testing.assert_allclose(g_t.numpy().ravel(), [0.25, 0, 0, 0.25])
    np.testing.assert_allclose(g_prev.numpy().ravel(), [-0.25, 0, 0, -0.25])
    assert float(calibrator_loss(p_prev * 0.5, p_prev)) == 0.0


def test_get_config_round_trip():
    layer = AttentionTransfer(units=7, dropout=0.1, name="ait")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, AttentionTransfer)
    assert (again.units, again.dropout, again.name) == (7, 0.1, "ait")
