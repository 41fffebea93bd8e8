"""SharedBottom: builds from config, learns on a fixed batch, config and SavedModel round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.config import ConfigError
from models.registry import build_model, describe_models
from models.shared_bottom import SharedBottom
from models.testing import tiny_batch, tiny_dims

CONFIG = {"embedding_dim": 4, "bottom_units": [16], "tower_units": [8]}


def _model(with_action=True):
    return build_model("shared_bottom", tiny_dims().to_dict(), CONFIG, with_action=with_action)


def test_builds_from_config_and_outputs_heads():
    model = _model()
    out = model(tiny_batch(8))
    assert set(out) == {"ctr", "cvr", "ctcvr", "xcvr", "ctavr"}
    for v in out.values():
        assert v.shape == (8, 1)
        assert np.all((v.numpy() >= 0) & (v.numpy() <= 1))
    assert np.all(out["ctcvr"].numpy() <= out["ctr"].numpy() + 1e-7)


def test_without_action_label_omits_ctavr():
    out = _model(with_action=False)(tiny_batch(4, with_action=False))
    assert "ctavr" not in out


def test_training_lowers_loss_on_fixed_batch():
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    batch = tiny_batch(128)
    ds = tf.data.Dataset.from_tensors(batch)
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(30), verbose=0)
    after = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    assert after < 0.7 * before, (before, after)


def test_get_config_round_trip():
    model = _model()
    cfg = model.get_config()
    again = SharedBottom.from_config(cfg)
    assert again.get_config() == cfg
    assert again.config.bottom_units == (16,)


def test_savedmodel_round_trip_identical_predictions(tmp_path):
    model = _model()
    batch = {k: tf.constant(v) for k, v in tiny_batch(16).items()}
    expected = {k: v.numpy() for k, v in model(batch).items()}

    @tf.function(input_signature=[{k: tf.TensorSpec([None] + list(v.shape[1:]), v.dtype) for k, v in batch.items()}])
    def predict(features):
        return model(features, training=False)

    model.predict_features = predict
    model.save(str(tmp_path / "sm"), save_format="tf")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    got = loaded.predict_features(batch)
    for k, v in expected.items():
        np.testing.assert_allclose(got[k].numpy(), v, rtol=1e-6, atol=1e-7)


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="unknown key 'bottom'"):
        build_model("shared_bottom", tiny_dims().to_dict(), {"bottom": [3]})
    with pytest.raises(ConfigError, match="bottom_units must be a list"):
        build_model("shared_bottom", tiny_dims().to_dict(), {"bottom_units": 3})
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope", tiny_dims().to_dict())


def test_registry_lists_reference():
    rows = dict((n, r) for n, _, r in describe_models())
    assert "Caruana" in rows["shared_bottom"]
