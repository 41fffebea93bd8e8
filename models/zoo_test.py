"""Every registered model: builds from config, trains, round-trips config and SavedModel (shared contract)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.registry import MODELS, build_model
from models.testing import gradnorm_weight_sum, savedmodel_round_trip, tiny_batch, tiny_dims

SMALL = {
    "shared_bottom": {"bottom_units": [16]},
    "mmoe": {"num_experts": 2, "expert_units": [16]},
    "ple": {"num_levels": 2, "num_shared_experts": 1, "num_specific_experts": 1, "expert_units": [16]},
    "esmm": {},
    "esm2": {},
    "aem2tl": {"scenario_expert_units": [16], "task_expert_units": [16], "scenario_shared_experts": 2},
    "star": {"star_units": [16]},
    "pepnet": {},
    "aitm": {},
    "ektm": {"expert_units": [16], "key_dim": 8, "transmitter_units": [8]},
}


def _config(name):
    cfg = {"embedding_dim": 4, "tower_units": [8]}
    cfg.update(SMALL.get(name, {}))
    return cfg


@pytest.fixture(params=sorted(MODELS))
def name(request):
    return request.param


def _model(name, **kw):
    return build_model(name, tiny_dims().to_dict(), _config(name), with_action=True, **kw)


def test_outputs_are_probabilities_with_funnel_order(name):
    out = _model(name)(tiny_batch(16))
    assert {"ctr"} <= set(out)
    for k, v in out.items():
        v = v.numpy()
        assert v.shape == (16, 1) and np.all((v >= 0) & (v <= 1)), k
    if "ctcvr" in out:
        assert np.all(out["ctcvr"].numpy() <= out["ctr"].numpy() + 1e-6)
    if "xcvr" in out:
        assert np.all(out["ctcvr"].numpy() <= out["xcvr"].numpy() + 1e-6)


def test_one_training_step_lowers_loss(name):
    keras.utils.set_random_seed(1)
    model = _model(name)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensors(tiny_batch(128))
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(12), verbose=0)
    after = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    assert after < before, (name, before, after)


def test_gradnorm_trains_and_keeps_weights_normalised(name):
    model = _model(name, weighting={"strategy": "gradnorm", "alpha": 1.5})
    assert gradnorm_weight_sum(model, steps=3) == pytest.approx(len(model.supervised_heads), rel=1e-4)


def test_get_config_round_trip(name):
    model = _model(name)
    cfg = model.get_config()
    again = type(model).from_config(cfg)
    assert again.get_config() == cfg


def test_savedmodel_round_trip(name, tmp_path):
    expected, got = savedmodel_round_trip(_model(name), tiny_batch(8), tmp_path / "sm")
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)


def _with_sequence(name):
    keras.utils.set_random_seed(1)
    return build_model(name, tiny_dims(sequence_pooling="attention").to_dict(), _config(name), with_action=True)


def test_behaviour_sequence_pooled_against_the_item_is_read_and_trained(name):
    model = _with_sequence(name)
    batch = tiny_batch(64)
    without = dict(batch, recent_items=np.full_like(batch["recent_items"], -1))
    assert not np.allclose(model(batch)["ctr"].numpy(), model(without)["ctr"].numpy())  # the history is read
    pool = model.embedding.sequence_pools["recent_items"]
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(batch["label_click"][:, None], model(batch, training=True)["ctr"])
    grads = tape.gradient(loss, pool.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)  # the attention unit trains
    assert type(model).from_config(model.get_config()).get_config() == model.get_config()


def test_behaviour_sequence_savedmodel_round_trip(tmp_path):
    expected, got = savedmodel_round_trip(_with_sequence("shared_bottom"), tiny_batch(8), tmp_path / "sm")
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)
