"""Target attention and mean pooling against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.blocks.target_attention import TargetAttentionPooling

# Row 0: candidate v = [1, 2], behaviours e1 = [1, 0], e2 = [0, 1] and e3 = [3, 3] as padding (masked).
# Row 1: every position masked.
SEQUENCE = tf.constant([[[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]], [[5.0, 5.0], [1.0, 1.0], [2.0, 2.0]]])
MASK = tf.constant([[True, True, False], [False, False, False]])
TARGET = tf.constant([[1.0, 2.0], [1.0, 1.0]])


def _layer(**kwargs):
    """No hidden layer; score = w . [e, v, e - v, e * v] + b with w picking e[0] and (e * v)[1], b = 0.5:
    a_j = e_j[0] + e_j[1] * v[1] + 0.5."""
    layer = TargetAttentionPooling(hidden_units=(), **kwargs)
    layer(SEQUENCE, MASK, TARGET)
    kernel = np.zeros((8, 1), np.float32)
    kernel[0, 0] = 1.0  # e[0]
    kernel[7, 0] = 1.0  # (e * v)[1]
    layer.score.set_weights([kernel, np.array([0.5], np.float32)])
    return layer


def test_din_weights_are_not_normalised_and_padding_is_ignored():
    layer = _layer()
    # a1 = 1 + 0 * 2 + 0.5 = 1.5, a2 = 0 + 1 * 2 + 0.5 = 2.5, a3 masked -> 0.
    np.testing.assert_allclose(layer.attention_weights(SEQUENCE, MASK, TARGET).numpy(),
                               [[1.5, 2.5, 0.0], [0.0, 0.0, 0.0]], rtol=1e-6)
    # u = 1.5 * [1, 0] + 2.5 * [0, 1]; the all-masked row pools to zeros.
    np.testing.assert_allclose(layer(SEQUENCE, MASK, TARGET).numpy(), [[1.5, 2.5], [0.0, 0.0]], rtol=1e-6)


def test_softmax_normalisation_over_valid_positions():
    layer = _layer(normalization="softmax")
    w1 = 1 / (1 + math.e)  # softmax of (1.5, 2.5)
    np.testing.assert_allclose(layer(SEQUENCE, MASK, TARGET).numpy(), [[w1, 1 - w1], [0.0, 0.0]], rtol=1e-6)


def test_mean_pooling_ignores_the_candidate_and_the_padding():
    layer = TargetAttentionPooling(pooling="mean")
    np.testing.assert_allclose(layer(SEQUENCE, MASK, TARGET).numpy(), [[0.5, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(layer(SEQUENCE, tf.cast(MASK, tf.float32), TARGET * 7).numpy(),
                               [[0.5, 0.5], [0.0, 0.0]])


def test_the_target_changes_the_pooled_history():
    layer = _layer()
    other = layer(SEQUENCE, MASK, tf.constant([[1.0, -2.0], [1.0, 1.0]])).numpy()
    # v[1] = -2: a2 = 0 - 2 + 0.5 = -1.5.
    np.testing.assert_allclose(other[0], [1.5, -1.5], rtol=1e-6)


def test_gradients_reach_the_behaviour_embeddings_and_the_activation_unit():
    layer = TargetAttentionPooling(hidden_units=(4,))
    seq = tf.Variable(SEQUENCE)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(seq, MASK, TARGET))
    grads = tape.gradient(loss, [seq] + layer.trainable_variables)
    assert all(g is not None for g in grads)
    assert np.all(grads[0].numpy()[1] == 0)  # a fully masked row gets no gradient


def test_config_round_trip_and_saved_in_a_keras_model(tmp_path):
    layer = _layer(normalization="softmax")
    again = TargetAttentionPooling.from_config(layer.get_config())
    assert (again.hidden_units, again.pooling, again.normalization) == ([], "attention", "softmax")
    seq, mask, target = (keras.Input((3, 2)), keras.Input((3,), dtype=tf.bool), keras.Input((2,)))
    model = keras.Model([seq, mask, target], layer(seq, mask, target))
    model.save(str(tmp_path / "m"))
    loaded = keras.models.load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded([SEQUENCE, MASK, TARGET]).numpy(), model([SEQUENCE, MASK, TARGET]).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [({"pooling": "max"}, "pooling must be one of attention, mean"),
                                             ({"normalization": "l2"}, "normalization must be one of none")])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TargetAttentionPooling(**kwargs)
