"""EKTM blocks: router mask and weights, gate forced closed, enhancement hinge hand-computed, default graph."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.blocks.ektm import (KnowledgeRouter, KnowledgeTransmitter, binary_crossentropy, enhancement_loss,
                                funnel_dependencies, task_dependencies)

# Hand-built graph over 4 tasks: target 2 <- {0} sequential; target 3 <- {0} sequential, {2} parallel.
# Allowed (self included): target 2: {0, 2}; target 3: {0, 2, 3}. Task 1 is masked for both.
TARGETS, SEQ, PAR = [2, 3], [[0], [0]], [[], [2]]
ALLOWED = np.array([[1, 0, 1, 0], [1, 0, 1, 1]], np.float32)


def _reps(b=5, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.standard_normal((b, d)), tf.float32) for _ in range(4)]


def test_router_weights_sum_to_one_and_masked_source_gets_exactly_zero():
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, num_heads=2, key_dim=3)
    out, w = router(_reps(), return_weights=True)
    w = w.numpy()
    assert len(out) == 2 and out[0].shape == (5, 6) and w.shape == (5, 2, 2, 4)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(w[:, :, :, 1] == 0.0)  # task 1 is not a source of anyone: exactly zero
    assert np.all(w[:, 0, :, 3] == 0.0)  # task 3 is not a source of target 2
    allowed = np.broadcast_to(ALLOWED[None, :, None, :], w.shape).astype(bool)
    assert np.all(w[allowed] > 0) and np.all(w[~allowed] == 0.0)


def test_router_output_is_weighted_sum_of_values():
    reps = _reps(b=2)
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, num_heads=1, key_dim=4)
    out, w = router(reps, return_weights=True)
    v = np.stack([r.numpy() for r in reps], axis=1) @ router.value.get_weights()[0]  # [B, N, dk]
    np.testing.assert_allclose(out[1].numpy(), np.einsum("bn,bnk->bk", w.numpy()[:, 1, 0], v), rtol=1e-5)


def test_type_bias_moves_weight_to_that_edge_type():
    reps = _reps()
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, num_heads=1, key_dim=3)
    router(reps)
    router.type_bias.assign([[20.0, 0.0]])  # sequential edges dominate
    _, w = router(reps, return_weights=True)
    np.testing.assert_allclose(w.numpy()[:, :, 0, 0], 1.0, atol=1e-6)


def test_uniform_router_without_attention_has_no_variables():
    reps = _reps()
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, attention=False)
    out, w = router(reps, return_weights=True)
    assert router.trainable_variables == []
    np.testing.assert_allclose(w.numpy()[0, :, 0], ALLOWED / ALLOWED.sum(1, keepdims=True))
    np.testing.assert_allclose(out[1].numpy(), (reps[0] + reps[2] + reps[3]).numpy() / 3, rtol=1e-6)


@pytest.mark.parametrize("stop", [True, False])
def test_stop_gradient_on_sources(stop):
    reps = [tf.Variable(r) for r in _reps()]
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, num_heads=2, key_dim=3, stop_gradient_sources=stop)
    with tf.GradientTape() as tape:
        out = router([tf.identity(r) for r in reps])
        loss = tf.reduce_sum(out[0])  # target 2 <- {0, 2}
    g = tape.gradient(loss, reps)
    assert g[2] is not None and np.abs(g[2].numpy()).sum() > 0  # the target's own representation
    assert g[1] is None or np.all(g[1].numpy() == 0)  # masked
    if stop:
        assert g[0] is None or np.all(g[0].numpy() == 0)
    else:
        assert np.abs(g[0].numpy()).sum() > 0


def test_router_rejects_bad_graph():
    with pytest.raises(ValueError, match="bad sequential source 2"):
        KnowledgeRouter(4, [2], [[2]], [[]])
    with pytest.raises(ValueError, match="bad parallel source 0"):
        KnowledgeRouter(4, [2], [[0]], [[0]])
    with pytest.raises(ValueError, match="out of range"):
        KnowledgeRouter(4, [5], [[]], [[]])


def test_transmitter_with_gate_forced_to_zero_returns_h_exactly():
    rng = np.random.default_rng(1)
    h = tf.constant(rng.standard_normal((5, 6)), tf.float32)
    r = tf.constant(rng.standard_normal((5, 8)), tf.float32)
    closed = KnowledgeTransmitter((4,), force_zero_gate=True)
    out, g = closed([h, r], return_gate=True)
    assert np.array_equal(out.numpy(), h.numpy()) and np.all(g.numpy() == 0)
    assert len(closed.trainable_variables) == 6  # MLP (2 Dense) + gate Dense, all kernels and biases
    open_ = KnowledgeTransmitter((4,))
    out, g = open_([h, r], return_gate=True)
    assert out.shape == h.shape and np.all((g.numpy() > 0) & (g.numpy() < 1))
    z = open_.mlp(r).numpy()
    np.testing.assert_allclose(out.numpy(), h.numpy() + g.numpy() * z, rtol=1e-6)


def test_enhancement_hinge_zero_when_transfer_helps_everywhere():
    y = tf.constant([[1.0], [0.0]])
    # transfer (p) is closer to the label than no transfer (p_self) on both samples
    assert float(enhancement_loss(y, tf.constant([[0.9], [0.1]]), tf.constant([[0.8], [0.2]]))) == 0.0


def test_enhancement_hinge_hand_computed_positive_case():
    y = tf.constant([[1.0], [0.0]])
    p = tf.Variable([[0.9], [0.2]])
    p_self = tf.Variable([[0.8], [0.1]])
    with tf.GradientTape() as tape:
        loss = enhancement_loss(y, p, p_self)
    # sample 1: BCE(1, 0.9) - BCE(1, 0.8) = ln(0.8/0.9) < 0 -> 0
    # sample 2: BCE(0, 0.2) - BCE(0, 0.1) = ln(0.9/0.8) = 0.117783 -> mean = ln(1.125) / 2 = 0.0588915
    assert float(loss) == pytest.approx(math.log(1.125) / 2, rel=1e-5)
    assert float(loss) == pytest.approx(0.0588915, abs=1e-6)
    g_p, g_self = tape.gradient(loss, [p, p_self])
    assert g_self is None  # the no-transfer prediction is a fixed reference
    np.testing.assert_allclose(g_p.numpy().ravel(), [0.0, 0.5 / 0.8], rtol=1e-5)  # d/dp -ln(1-p) / 2


def test_binary_crossentropy_per_sample():
    got = binary_crossentropy(tf.constant([1.0, 0.0, 1.0]), tf.constant([0.5, 0.25, 0.0])).numpy()
    np.testing.assert_allclose(got, [math.log(2), -math.log(0.75), -math.log(1e-7)], rtol=1e-4)


def test_funnel_dependencies_default_graph():
    seq, par = funnel_dependencies(("click", "conv_click", "conv_unclick", "action", "conv_action"))
    assert "click" not in seq and "click" not in par
    assert seq["action"] == ("click",) and "action" not in par
    assert seq["conv_click"] == ("click", "action")
    assert par["conv_click"] == ("conv_unclick", "conv_action")
    assert par["conv_action"] == ("conv_click", "conv_unclick")
    seq, par = funnel_dependencies(("click", "conv_click", "conv_unclick"))
    assert seq == {"conv_click": ("click",), "conv_unclick": ("click",)}
    assert par == {"conv_click": ("conv_unclick",), "conv_unclick": ("conv_click",)}


def test_task_dependencies_follow_the_after_chains_and_siblings():
    tasks = (("click", None), ("like", "click"), ("comment", "click"), ("follow", "like"), ("long_view", None))
    seq, par = task_dependencies(tasks)
    assert seq == {"like": ("click",), "comment": ("click",), "follow": ("like", "click")}
    assert par == {"click": ("long_view",), "long_view": ("click",), "like": ("comment",), "comment": ("like",)}
    assert task_dependencies((("click", None),)) == ({}, {})  # one task: nothing to transfer


def test_get_config_round_trips():
    router = KnowledgeRouter(4, TARGETS, SEQ, PAR, num_heads=3, key_dim=5, stop_gradient_sources=False, name="r")
    again = keras.layers.deserialize(keras.layers.serialize(router))
    assert isinstance(again, KnowledgeRouter) and again.get_config() == router.get_config()
    tx = KnowledgeTransmitter((16, 8), force_zero_gate=True, name="t")
    again = keras.layers.deserialize(keras.layers.serialize(tx))
    assert isinstance(again, KnowledgeTransmitter) and again.get_config() == tx.get_config()
