"""Loss weighting strategies against hand-computed numbers, and GradNorm inside a real fit."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.config import ConfigError, parse_config
from models.losses.weighting import (DWA, GradNorm, LossWeighting, UncertaintyWeighting, WeightingConfig,
                                     make_weighting)
from models.registry import build_model
from models.testing import tiny_batch, tiny_dims


def _cfg(**raw):
    return parse_config(WeightingConfig, raw, source="test weighting")


def _losses(**values):
    return {k: tf.constant(v, tf.float32) for k, v in values.items()}


def test_fixed_weights_combine():
    w = make_weighting(["ctr", "ctcvr", "xcvr"], _cfg(weights={"ctr": 2.0, "xcvr": 0.5}))
    assert type(w) is LossWeighting and not w.needs_shared_gradients and w.trainable == []
    total = w.combine(_losses(ctr=0.5, ctcvr=0.25, xcvr=0.4))
    assert float(total) == pytest.approx(2.0 * 0.5 + 1.0 * 0.25 + 0.5 * 0.4)  # 1.45
    report = w.report(_losses(ctr=0.5, ctcvr=0.25, xcvr=0.4))
    assert float(report["weight_ctr"]) == 2.0 and float(report["weight_ctcvr"]) == 1.0
    assert float(report["loss_xcvr"]) == pytest.approx(0.4)


def test_fixed_weights_are_not_differentiated():
    w = make_weighting(["a"], _cfg(weights={"a": 3.0}))
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        total = w.combine({"a": x * x})
    assert float(tape.gradient(total, x)) == pytest.approx(3.0 * 2 * 2.0)


def test_uncertainty_combine_hand_values():
    w = make_weighting(["a", "b"], _cfg(strategy="uncertainty"))
    assert isinstance(w, UncertaintyWeighting) and w.trainable == [w.log_vars]
    w.log_vars.assign([0.5, -1.0])
    with tf.GradientTape() as tape:
        total = w.combine(_losses(a=0.3, b=0.7))
    expected = math.exp(-0.5) * 0.3 + 0.5 + math.exp(1.0) * 0.7 - 1.0  # 0.18196 + 0.5 + 1.90280 - 1
    assert float(total) == pytest.approx(expected, rel=1e-6)
    # dL/ds_i = 1 - exp(-s_i) L_i
    np.testing.assert_allclose(tape.gradient(total, w.log_vars).numpy(),
                               [1 - math.exp(-0.5) * 0.3, 1 - math.exp(1.0) * 0.7], rtol=1e-6)
    np.testing.assert_allclose(w.effective_weights().numpy(), [math.exp(-0.5), math.exp(1.0)], rtol=1e-6)


def _adam(grads, lr, beta1=0.9, beta2=0.999, eps=1e-7):
    """Hand Adam (Keras form) over a sequence of gradients: the total displacement of the variable."""
    m = v = 0.0
    delta = 0.0
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        alpha = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        delta = delta - alpha * m / (np.sqrt(v) + eps)
    return delta


def _renormalise(w, eps=1e-3):
    """GradNorm's renormalisation: eps + n (1 - eps) relu(w) / sum(relu(w))."""
    w = np.maximum(np.asarray(w, float), 0.0)
    return eps + len(w) * (1 - eps) * w / w.sum()


def test_gradnorm_step_hand_computed():
    w = make_weighting(["a", "b"], _cfg(strategy="gradnorm", learning_rate=0.1, alpha=1.5))
    assert isinstance(w, GradNorm) and w.needs_shared_gradients

    # Step 1, equal losses: r = (1, 1). G = w * ||grad|| = (2, 1), target = mean(G) * r^alpha = 1.5.
    # L_grad = |2 - 1.5| + |1 - 1.5| = 1; dL_grad/dw = (sign(0.5) * 2, sign(-0.5) * 1) = (2, -1):
    # the task with the larger gradient norm (a) gets the smaller weight.
    l_grad = w.gradnorm_step(tf.constant([0.7, 0.7]), tf.constant([2.0, 1.0]))
    assert float(l_grad) == pytest.approx(1.0)
    grads1 = np.array([2.0, -1.0])
    raw = 1.0 + _adam([grads1], 0.1)  # Adam's first step is lr * sign(g): (0.9, 1.1)
    np.testing.assert_allclose(raw, [0.9, 1.1], rtol=1e-6)
    expected = _renormalise(raw)  # 1e-3 + 2 * 0.999 * (0.45, 0.55) = (0.9001, 1.0999)
    np.testing.assert_allclose(expected, [0.9001, 1.0999], rtol=1e-6)
    np.testing.assert_allclose(w.weights.numpy(), expected, rtol=1e-5)
    assert w.weights.numpy()[0] < w.weights.numpy()[1]
    assert float(tf.reduce_sum(w.weights)) == pytest.approx(2.0)

    # Step 2: task a's loss halved: L~ = (0.5, 1), r = L~ / mean(L~) = (2/3, 4/3).
    # G = w * (2, 1) ~ (1.8, 1.1), mean ~1.45, target = mean(G) * r^1.5 ~ (0.789, 2.232).
    # dL_grad/dw = (+2, -1) again.
    l_grad = w.gradnorm_step(tf.constant([0.35, 0.7]), tf.constant([2.0, 1.0]))
    r = np.array([2 / 3, 4 / 3])
    g = expected * np.array([2.0, 1.0])  # (1.8002, 1.0999), mean ~1.45
    target = g.mean() * r ** 1.5
    assert float(l_grad) == pytest.approx(np.abs(g - target).sum(), rel=1e-5)
    step2 = _adam([grads1, grads1], 0.1) - _adam([grads1], 0.1)  # Adam's second move (state-only)
    np.testing.assert_allclose(w.weights.numpy(), _renormalise(expected + step2), rtol=1e-5)
    np.testing.assert_allclose(w.initial_losses.numpy(), [0.7, 0.7])  # L(0) is kept from the first step


def test_gradnorm_weights_sum_to_n_and_stay_positive():
    w = make_weighting(["a", "b", "c"], _cfg(strategy="gradnorm", learning_rate=0.05))
    rng = np.random.default_rng(0)
    for _ in range(20):
        w.gradnorm_step(tf.constant(rng.uniform(0.1, 1.0, 3), tf.float32),
                        tf.constant(rng.uniform(0.1, 5.0, 3), tf.float32))
        weights = w.weights.numpy()
        assert weights.sum() == pytest.approx(3.0, rel=1e-5)
        assert np.all(weights >= 1e-3)


def test_gradnorm_clamp_holds_after_renormalisation():
    # lr 1.5: Adam's first step moves w by 1.5 * sign(g): (1, 1) -> (-0.5, 2.5).
    # relu -> (0, 2.5); w = 1e-3 + 2 (1 - 1e-3) (0, 1) = (0.001, 1.999): the floor holds after renormalising.
    w = make_weighting(["a", "b"], _cfg(strategy="gradnorm", learning_rate=1.5))
    w.gradnorm_step(tf.constant([0.7, 0.7]), tf.constant([2.0, 1.0]))
    weights = w.weights.numpy()
    assert weights.sum() == pytest.approx(2.0, rel=1e-5)
    assert np.all(weights >= 1e-3), weights


def test_dwa_weights_after_two_windows():
    w = make_weighting(["a", "b"], _cfg(strategy="dwa", window=2, temperature=2.0))
    assert isinstance(w, DWA)
    # Window 1: a = (1.0, 1.0), b = (2.0, 2.0) -> means (1, 2). Window 2: a = (0.5, 0.5), b = (2.0, 1.0)
    # -> means (0.5, 1.5). r = (0.5 / 1, 1.5 / 2) = (0.5, 0.75).
    steps = [(1.0, 2.0), (1.0, 2.0), (0.5, 2.0), (0.5, 1.0)]
    for i, (a, b) in enumerate(steps):
        w.after_step(_losses(a=a, b=b))
        if i < 3:  # weights stay 1 until two windows are complete
            np.testing.assert_allclose(w.weights.numpy(), [1.0, 1.0])
    r = np.array([0.5, 0.75])
    e = np.exp(r / 2.0)
    expected = 2 * e / e.sum()  # 2 * softmax((0.25, 0.375)) = (0.93758, 1.06242)
    np.testing.assert_allclose(w.weights.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(expected, [0.937581, 1.062419], rtol=1e-5)
    total = w.combine(_losses(a=1.0, b=1.0))
    assert float(total) == pytest.approx(2.0, rel=1e-6)


def test_unknown_strategy_rejected():
    with pytest.raises(ConfigError, match="strategy must be one of fixed, uncertainty, gradnorm, dwa"):
        parse_config(WeightingConfig, {"strategy": "pcgrad"}, source="run")
    with pytest.raises(ConfigError, match="unknown key 'alpah'"):
        parse_config(WeightingConfig, {"strategy": "gradnorm", "alpah": 1.0}, source="run")
    with pytest.raises(ConfigError, match="window"):
        parse_config(WeightingConfig, {"strategy": "dwa", "window": 0}, source="run")


def test_shared_bottom_fit_with_gradnorm_reports_weights_summing_to_heads():
    keras.utils.set_random_seed(0)
    model = build_model("shared_bottom", tiny_dims().to_dict(),
                        {"embedding_dim": 4, "bottom_units": [16], "tower_units": [8]},
                        with_action=True, weighting={"strategy": "gradnorm", "learning_rate": 0.01})
    assert model.supervised_heads == ("ctr", "ctavr", "ctcvr", "xcvr")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(tf.data.Dataset.from_tensors(tiny_batch(64)).repeat(4), verbose=0).history
    weights = np.array([history[f"weight_{h}"][-1] for h in model.supervised_heads])
    np.testing.assert_allclose(weights.sum(), 4.0, rtol=1e-5)
    assert np.all(weights >= 1e-3)
    assert not np.allclose(weights, 1.0, atol=1e-4)  # GradNorm did update the weights
    np.testing.assert_allclose(model.weighting.weights.numpy(), weights, rtol=1e-6)
    assert all(f"loss_{h}" in history for h in model.supervised_heads)


def test_uncertainty_log_variances_get_one_update_per_step():
    model = build_model("shared_bottom", tiny_dims().to_dict(),
                        {"embedding_dim": 4, "bottom_units": [16], "tower_units": [8]},
                        with_action=True, weighting={"strategy": "uncertainty"})
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    batch = {k: tf.constant(v) for k, v in tiny_batch(64).items()}
    model.train_step(batch)
    # Every head's BCE is < 1 at initialisation, so dL/ds = 1 - L > 0 and Adam's first step is exactly -lr.
    np.testing.assert_allclose(model.weighting.log_vars.numpy(), [-0.01] * 4, atol=1e-5)
