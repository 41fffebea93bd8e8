"""PEPNet: gate range, EPNet/PPNet wiring, builds, learns, round-trips, ablations."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models.blocks.personalized_gate import PersonalizedGate
from models.config import ConfigError
from models.pepnet import PEPNet
from models.testing import tiny_batch, tiny_dims

CONFIG = {"embedding_dim": 4, "tower_units": [16, 8]}


def _model(with_action=True, dims=None, **overrides):
    dims = dims or tiny_dims()
    return PEPNet(input_dims=dims.to_dict(), config={**CONFIG, **overrides}, with_action=with_action)


def _names(model):
    return [v.name for v in model.variables]


@pytest.mark.parametrize("gamma", [2.0, 3.0])
def test_personalized_gate_range_is_open_zero_gamma(gamma):
    gate = PersonalizedGate(6, gamma=gamma, hidden_units=8)
    prior = tf.random.normal([256, 3], stddev=3.0, seed=1)
    backbone = tf.random.normal([256, 6], stddev=3.0, seed=2)
    delta = gate(prior, backbone).numpy()
    assert delta.shape == (256, 6)
    assert np.all(delta > 0) and np.all(delta < gamma)
    # Small output kernel, zero bias: gates start near the neutral value gamma / 2 (1 at gamma = 2).
    np.testing.assert_allclose(delta.mean(), gamma / 2, atol=0.05 * gamma)
    # Push the logits hard: still inside (0, gamma), both ends reachable.
    gate.out.kernel.assign(gate.out.kernel * 300.0)
    delta = gate(prior, backbone).numpy()
    assert np.all(delta >= 0) and np.all(delta <= gamma)
    assert delta.min() < 0.05 * gamma and delta.max() > 0.95 * gamma


def test_epnet_gate_reads_scenario_prior_and_stops_backbone_gradient():
    model = _model()
    batch = tiny_batch(8)
    embedded = model.embedding(batch)
    x = model.embedding.concat(embedded)
    assert model.epnet.units == x.shape[-1]
    prior = model.embedding.prior_vector(embedded, ("scenario",))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, prior])
        delta = model.epnet(prior, x)
    assert tape.gradient(delta, x) is None  # sg(x)
    assert tape.gradient(delta, prior) is not None
    assert np.all((delta.numpy() > 0) & (delta.numpy() < 2.0))


def test_empty_prior_group_is_a_zero_column():
    dims = dataclasses.replace(tiny_dims(), priors={"scenario": ("scenario",)}, prior_only=())
    model = _model(dims=dims)
    batch = tiny_batch(5)
    embedded = model.embedding(batch)
    np.testing.assert_array_equal(model.embedding.prior_vector(embedded, ("user",)).numpy(), np.zeros((5, 1)))
    out = model(batch)
    assert out["ctr"].shape == (5, 1)


def test_builds_from_config_and_outputs_heads():
    model = _model()
    assert set(model(tiny_batch(8))) == {"ctr", "cvr", "ctcvr", "xcvr", "ctavr"}  # ranges: zoo_test
    assert "Chang" in PEPNet.reference


def test_without_action_label_omits_ctavr():
    out = _model(with_action=False)(tiny_batch(4, with_action=False))
    assert "ctavr" not in out


def test_ablations_change_the_layer_set():
    batch = tiny_batch(8)
    full = _model()
    full(batch)
    assert any("epnet_gate" in n for n in _names(full))
    assert any("ppnet_tower_click/gate_0" in n for n in _names(full))
    assert full.shared_layer_variables() == full.epnet.out.trainable_variables

    no_ep = _model(epnet=False)
    no_ep(batch)
    assert no_ep.epnet is None and not any("epnet_gate" in n for n in _names(no_ep))
    assert no_ep.shared_layer_variables() == no_ep.towers["click"].layers_[0].trainable_variables

    no_pp = _model(ppnet=False)
    no_pp(batch)
    assert not any("/gate_" in n for n in _names(no_pp) if "ppnet_tower" in n)
    assert any("epnet_gate" in n for n in _names(no_pp))
    # Each edge tower without PPNet is a plain MLP: dense_0, dense_1, logit (kernel + bias each).
    assert all(len(t.trainable_variables) == 6 for t in no_pp.towers.values())


@pytest.mark.parametrize("epnet", [True, False])
def test_every_supervised_head_reaches_the_gradnorm_shared_layer(epnet):
    model = _model(epnet=epnet)
    batch = tiny_batch(32)
    with tf.GradientTape(persistent=True) as tape:
        losses = model.head_losses(batch, model(batch, training=True))
    shared = model.shared_layer_variables()
    assert shared
    for h in model.supervised_heads:
        grads = tape.gradient(losses[h], shared)
        assert all(g is not None for g in grads), h
        assert float(tf.linalg.global_norm(grads)) > 0.0, h


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="gamma must be > 0"):
        _model(gamma=0.0)
    with pytest.raises(ConfigError, match="epnet must be true or false"):
        _model(epnet="yes")
