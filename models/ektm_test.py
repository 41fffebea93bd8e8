"""EKTM: builds on the PLE and AEM2TL backbones, over the funnel and over declared tasks, gate closed = backbone,
ablations, losses, round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.config import ConfigError
from models.ektm import EKTM
from models.testing import gradnorm_weight_sum, savedmodel_round_trip, tiny_batch, tiny_dims

# Every module on (the enhancer is off by default: docs/models.md), so the tests see the full design.
CONFIG = {"embedding_dim": 4, "tower_units": [8], "expert_units": [16], "scenario_expert_units": [16],
          "scenario_shared_experts": 2, "key_dim": 8, "transmitter_units": [8], "enhance": True}


def _model(with_action=True, **overrides):
    return EKTM(tiny_dims().to_dict(), dict(CONFIG, **overrides), with_action=with_action)


def _names(model_or_layer):
    """Variable names without the model instance's prefix (ektm_3/...)."""
    return {v.name.split("/", 1)[1] for v in model_or_layer.trainable_variables}


def _fit_lowers_loss(model, steps=25):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensors(tiny_batch(128))
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(steps), verbose=0)
    after = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("backbone", ["ple", "aem2tl"])
def test_builds_outputs_probabilities_and_trains(backbone):
    model = _model(backbone=backbone)
    out = {k: v.numpy() for k, v in model(tiny_batch(32)).items()}
    assert set(out) == {"ctr", "cvr", "ctcvr", "xcvr", "ctavr"}
    for v in out.values():
        assert v.shape == (32, 1) and np.all((v >= 0) & (v <= 1))
    assert np.all(out["ctcvr"] <= out["ctr"] + 1e-7) and np.all(out["ctcvr"] <= out["xcvr"] + 1e-7)
    assert model.targets == ["conv_click", "conv_unclick", "conv_action"]
    _fit_lowers_loss(model)


def test_default_dependency_graph_and_router_mask():
    model = _model()
    seq, par = model.dependencies
    assert model.edges == ["click", "conv_click", "conv_unclick", "action", "conv_action"]
    assert seq["conv_unclick"] == ("click", "action") and par["conv_unclick"] == ("conv_click", "conv_action")
    _, w = model.router([tf.random.normal([4, 16]) for _ in model.edges], return_weights=True)
    w = w.numpy()  # [B, targets, heads, edges]
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert np.all(w > 0)  # every conversion edge may read every edge by default (click, action, siblings)
    custom = _model(sequential_sources={"conv_click": ["click"]}, parallel_sources={})
    _, w = custom.router([tf.random.normal([4, 16]) for _ in custom.edges], return_weights=True)
    w = w.numpy()[:, 0]  # target conv_click: allowed {click, conv_click}
    assert np.all(w[..., [2, 3, 4]] == 0.0) and np.all(w[..., [0, 1]] > 0)
    without_action = _model(with_action=False)
    assert without_action.targets == ["conv_click", "conv_unclick"]
    assert without_action.dependencies[0] == {"conv_click": ("click",), "conv_unclick": ("click",)}


def test_gate_forced_to_zero_equals_backbone_and_towers():
    model = _model()
    batch = tiny_batch(16)
    model(batch)
    for t in model.transmitters.values():
        t.force_zero_gate = True
    got = {k: v.numpy() for k, v in model(batch).items()}
    embedded = model.embedding(batch)
    logits = model.towers(model.backbone_representations(embedded, batch))
    expected = model.heads({e: tf.sigmoid(v) for e, v in logits.items()})
    for k, v in expected.items():
        np.testing.assert_array_equal(got[k], v.numpy())


def test_enhancement_terms_and_auxiliary_loss():
    model = _model()
    batch = tiny_batch(64)
    out = model(batch, training=True)
    assert {f"aux/self/{t}" for t in model.targets} <= set(out) and "aux/edge/click" in out
    assert not any(k.startswith("aux/") for k in model(batch))  # inference and serving: the heads only
    terms = model.enhancement_terms(batch, out)
    assert set(terms) == set(model.targets)
    total = 0.0
    for hinge, self_bce in terms.values():
        assert float(hinge) >= 0.0 and float(self_bce) > 0.0
        total += 0.1 * float(hinge) + 1.0 * float(self_bce)
    assert float(model.auxiliary_loss(batch, out)) == pytest.approx(total, rel=1e-5)  # lambda_cal term is 0
    assert float(model.auxiliary_loss(batch, model(batch))) == 0.0  # no training outputs: no enhancer term
    # gate closed and self heads = main towers: p_t == p_t^self, so the hinge is exactly 0
    for t in model.targets:
        model.transmitters[t].force_zero_gate = True
        model.self_heads.towers[t].set_weights(model.towers.towers[t].get_weights())
    for hinge, _ in model.enhancement_terms(batch, model(batch, training=True)).values():
        assert float(hinge) == 0.0


def test_funnel_consistency_term():
    model = _model(enhance=False)
    assert model.funnel_pairs() == [("ctavr", "ctr"), ("ctcvr", "ctr")]
    out = model(tiny_batch(16))
    assert float(model.auxiliary_loss(None, out)) == 0.0  # holds by construction of the entire-space heads
    bad = {"ctr": tf.constant([[0.2], [0.5]]), "ctavr": tf.constant([[0.5], [0.1]]),
           "ctcvr": tf.constant([[0.3], [0.1]])}
    # 0.1 * (mean(relu([.3, -.4])) + mean(relu([.1, -.4]))) = 0.1 * (0.15 + 0.05) = 0.02
    assert float(model.auxiliary_loss(None, bad)) == pytest.approx(0.02, rel=1e-5)


@pytest.mark.parametrize("stop", [True, False])
def test_stop_gradient_keeps_conversion_out_of_click_representation(stop):
    model = _model(stop_gradient_sources=stop)
    batch = tiny_batch(16)
    click_experts = model.backbone.levels[-1].task_experts[0]  # feed h_click only
    model(batch)
    with tf.GradientTape() as tape:
        logits = model.edge_logits(model.embedding(batch), batch)
        loss = tf.reduce_sum(logits["conv_click"])
    grads = tape.gradient(loss, click_experts.trainable_variables)
    norm = sum(float(tf.norm(g)) for g in grads if g is not None)
    assert (norm == 0.0) if stop else (norm > 0.0)


def test_declared_tasks_route_along_their_after_chains_and_siblings_and_train():
    """A spec's declared tasks: one edge per task; the first declared task is a source only; like reads click
    (sequential), follow reads like and click, long_view reads click (its sibling after none); the enhancer's
    terms compare each task's own head, and the chained heads keep every task under its 'after'."""
    tasks = (("click", None), ("like", "click"), ("follow", "like"), ("long_view", None))
    model = EKTM(tiny_dims().to_dict(), CONFIG, tasks=tasks)
    assert model.edges == ["click", "like", "follow", "long_view"]
    assert model.targets == ["like", "follow", "long_view"]
    assert model.funnel_pairs() == [("follow", "click"), ("follow", "like"), ("like", "click")]
    _, w = model.router([tf.random.normal([4, 16]) for _ in model.edges], return_weights=True)
    w = w.numpy()  # [B, targets, heads, edges click, like, follow, long_view]
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    allowed = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 1]], bool)  # like, follow, long_view
    w = np.moveaxis(w, 2, 0)  # [heads, B, targets, edges]
    assert np.all(w[:, :, allowed] > 0) and np.all(w[:, :, ~allowed] == 0.0)
    batch = tiny_batch(64)
    click = batch["label_click"]
    batch.update(label_like=click * batch["label_conversion"], label_follow=np.zeros_like(click),
                 label_long_view=batch["label_conversion"])
    out = model(batch, training=True)
    terms = model.enhancement_terms(batch, out)
    assert set(terms) == {"like", "follow", "long_view"}
    assert all(np.isfinite(float(v)) for pair in terms.values() for v in pair)
    served = model(batch)
    assert np.all(served["follow"].numpy() <= served["like"].numpy() + 1e-7)
    assert float(model.auxiliary_loss(batch, served)) == 0.0  # the chained order holds by construction
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensors(batch)
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(15), verbose=0)
    assert model.evaluate(ds, return_dict=True, verbose=0)["total_loss"] < before
    single = EKTM(tiny_dims().to_dict(), CONFIG, tasks=(("click", None),))  # multi-scenario single-task
    assert single.targets == [] and set(single(batch)) == {"click"}


def test_ablations_change_variables_as_documented_and_train():
    full = _model()
    full(tiny_batch(8), training=True)  # the self heads are built by the first training call
    base = _names(full)
    assert any("router" in n for n in base) and any("transmitter" in n for n in base)
    assert any("self_heads" in n for n in base)

    no_router = _model(router=False)
    no_router(tiny_batch(8), training=True)
    assert no_router.router.trainable_variables == []  # uniform average over the allowed sources
    assert base - _names(no_router) == _names(full.router)
    assert _names(no_router) < base

    no_tx = _model(transmitter=False)
    no_tx(tiny_batch(8), training=True)
    assert not hasattr(no_tx, "transmitters")
    assert base - _names(no_tx) == set().union(*(_names(t) for t in full.transmitters.values()))
    # the receiving towers read [h_t ; r_t]: 16 + heads * key_dim = 32 inputs instead of 16
    assert no_tx.towers.towers["conv_click"].hidden[0].kernel.shape[0] == 32
    assert no_tx.towers.towers["click"].hidden[0].kernel.shape[0] == 16

    no_enh = _model(enhance=False)
    no_enh(tiny_batch(8), training=True)
    assert not hasattr(no_enh, "self_heads")
    assert base - _names(no_enh) == _names(full.self_heads)
    assert float(no_enh.auxiliary_loss(None, no_enh(tiny_batch(8)))) == 0.0

    for model in (no_router, no_tx, no_enh):
        _fit_lowers_loss(model, steps=20)


def test_defaults_leave_the_enhancer_off():
    model = EKTM(tiny_dims().to_dict(), {"embedding_dim": 4}, with_action=True)
    model(tiny_batch(8), training=True)
    assert not model.config.enhance and not hasattr(model, "self_heads") and model.config.embedding_dim == 4
    assert EKTM.config_class().embedding_dim == 32


def test_no_receiving_edges_is_the_backbone():
    model = _model(transmit_to=[])
    model(tiny_batch(8))
    assert not any(k in n for n in _names(model) for k in ("router", "transmitter", "self_heads"))


def test_gradnorm_shared_layer_aem2tl():  # the ple backbone is covered by zoo_test once registered
    model = EKTM(tiny_dims().to_dict(), dict(CONFIG, backbone="aem2tl"), with_action=True,
                 weighting={"strategy": "gradnorm"})
    assert gradnorm_weight_sum(model) == pytest.approx(4.0, rel=1e-4)


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="backbone must be"):
        _model(backbone="mmoe")
    with pytest.raises(ConfigError, match="unknown edge 'purchase'"):
        _model(transmit_to=["purchase"])
    with pytest.raises(ConfigError, match="both a sequential and a parallel source"):
        _model(sequential_sources={"conv_click": ["click"]}, parallel_sources={"conv_click": ["click"]})
    with pytest.raises(ConfigError, match="lists the target itself"):
        _model(parallel_sources={"conv_click": ["conv_click"]})


def test_savedmodel_round_trip_aem2tl_backbone(tmp_path):  # the ple backbone is in zoo_test
    expected, got = savedmodel_round_trip(_model(backbone="aem2tl"), tiny_batch(16), tmp_path / "sm")
    assert set(got) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-6, atol=1e-7)
