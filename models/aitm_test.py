"""AITM: end-to-end outputs, AIT attention, calibrator, projection, training, config and SavedModel round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.aitm import AITM
from models.config import ConfigError
from models.testing import gradnorm_weight_sum, tiny_batch, tiny_dims

CONFIG = {"embedding_dim": 4, "tower_units": [16, 8]}


def _model(with_action=True, view_through=False, **overrides):
    return AITM(tiny_dims().to_dict(), dict(CONFIG, **overrides), with_action=with_action,
                view_through=view_through)


def _np(d):
    return {k: v.numpy() for k, v in d.items()}


def test_outputs_are_end_to_end_probabilities_in_funnel_order():
    model = _model()
    out = _np(model(tiny_batch(32)))
    assert set(out) == {"ctr", "ctavr", "ctcvr", "xcvr"} == set(model.output_keys)  # no cvr
    for v in out.values():
        assert v.shape == (32, 1) and np.all((v >= 0) & (v <= 1))
    assert np.all(out["ctavr"] <= out["ctr"]) and np.all(out["ctcvr"] <= out["ctr"])
    np.testing.assert_array_equal(out["xcvr"], out["ctcvr"])  # no view-through path
    assert model.funnel == ["click", "action", "conversion"]
    assert model.supervised_heads == ("ctr", "ctavr", "ctcvr")


def test_no_xcvr_when_conversions_can_happen_without_a_click():
    model = _model(view_through=True)
    assert set(model(tiny_batch(8))) == {"ctr", "ctavr", "ctcvr"} == set(model.output_keys)


def test_without_action_two_task_funnel():
    model = _model(with_action=False)
    out = model(tiny_batch(8, with_action=False))
    assert set(out) == {"ctr", "ctcvr", "xcvr"} and model.funnel == ["click", "conversion"]
    assert set(model.transfers) == {"conversion"}


def test_projection_only_at_inference_and_switch():
    batch = tiny_batch(64)
    model = _model()
    raw = _np(model(batch, training=True))  # no dropout: same weights, raw predictions
    served = _np(model(batch, training=False))
    np.testing.assert_array_equal(served["ctr"], raw["ctr"])
    np.testing.assert_allclose(served["ctavr"], np.minimum(raw["ctavr"], raw["ctr"]))
    np.testing.assert_allclose(served["ctcvr"], np.minimum(raw["ctcvr"], raw["ctr"]))
    plain = _model(funnel_projection=False)
    plain(batch)
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(_np(plain(batch, training=False))["ctcvr"], raw["ctcvr"])


@pytest.mark.parametrize("upstream", ["previous", "click"])
def test_calibrator_hand_computed(upstream):
    keras.utils.set_random_seed(0)
    model = _model(calibrator_upstream=upstream)
    batch = tiny_batch(64)
    out = model(batch, training=True)
    y = _np(out)
    if upstream == "previous":  # ctavr <= ctr, ctcvr <= ctavr
        expected = np.maximum(y["ctavr"] - y["ctr"], 0).mean() + np.maximum(y["ctcvr"] - y["ctavr"], 0).mean()
    else:  # ctavr <= ctr, ctcvr <= ctr
        expected = np.maximum(y["ctavr"] - y["ctr"], 0).mean() + np.maximum(y["ctcvr"] - y["ctr"], 0).mean()
    got = float(model.auxiliary_loss(batch, out, training=True))
    assert got == pytest.approx(0.6 * expected, rel=1e-5, abs=1e-7)
    # rows that violate the funnel by known amounts, averaged over the batch
    rows = {"ctr": [[0.5], [0.2]], "ctavr": [[0.7], [0.5]], "ctcvr": [[0.6], [0.4]]}
    two = {k: tf.constant(v) for k, v in rows.items()}
    # previous: (.2 + .3) / 2 + (0 + 0) / 2 = .25 ; click: (.2 + .3) / 2 + (.1 + .2) / 2 = .4
    hand_two = 0.6 * (0.25 if upstream == "previous" else 0.4)
    assert float(model.auxiliary_loss(None, two)) == pytest.approx(hand_two, rel=1e-5)
    # a fixed hand case: ctr = .5, ctavr = .7, ctcvr = .6 -> previous: .2 + 0 ; click: .2 + .1
    fixed = {"ctr": tf.constant([[0.5]]), "ctavr": tf.constant([[0.7]]), "ctcvr": tf.constant([[0.6]])}
    hand = 0.6 * (0.2 if upstream == "previous" else 0.3)
    assert float(model.auxiliary_loss(None, fixed)) == pytest.approx(hand, rel=1e-5)


def test_attention_weights_sum_to_one():
    model = _model()
    embedded = model.embedding(tiny_batch(16))
    z, attention = model.task_representations(embedded, return_attention=True)
    assert set(attention) == {"action", "conversion"}
    for w in attention.values():
        assert w.shape == (16, 2)
        np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert z["click"].shape == (16, 8)


@pytest.mark.parametrize("upstream", ["previous", "click"])
def test_training_lowers_loss(upstream):
    keras.utils.set_random_seed(0)
    model = _model(calibrator_upstream=upstream)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    batch = tiny_batch(128)
    ds = tf.data.Dataset.from_tensors(batch)
    calib_before = float(model.auxiliary_loss(batch, model(batch, training=True)))
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(30), verbose=0)
    after = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    assert after < 0.7 * before, (before, after)
    calib_after = float(model.auxiliary_loss(batch, model(batch, training=True)))
    if upstream == "click":  # ctavr <= ctr and ctcvr <= ctr are implied by the labels: the calibrator shrinks
        assert calib_after < calib_before, (calib_before, calib_after)
    else:  # ctcvr <= ctavr is not (conversions without action): the term grows (documented caveat)
        assert calib_after > calib_before, (calib_before, calib_after)


def test_gradnorm_shared_layer_reached_by_every_task():
    model = AITM(tiny_dims().to_dict(), CONFIG, with_action=True, weighting={"strategy": "gradnorm"})
    assert gradnorm_weight_sum(model) == pytest.approx(3.0, rel=1e-4)


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="calibrator_upstream"):
        _model(calibrator_upstream="action")
    with pytest.raises(ConfigError, match="calibrator_weight"):
        _model(calibrator_weight=-1.0)

