"""The feature embedding of a behaviour sequence: the candidate item's table, pooled against the candidate."""

import numpy as np
import tensorflow as tf

from models.blocks.embedding import FeatureEmbedding
from models.testing import tiny_batch, tiny_dims


def _embedding(pooling):
    layer = FeatureEmbedding(tiny_dims(sequence_pooling=pooling).to_dict(), embedding_dim=4)
    layer(tiny_batch(2))
    return layer


def test_a_sequence_has_no_table_of_its_own_and_mean_pools_the_item_rows():
    layer = _embedding("mean")
    assert "recent_items" not in layer.tables and "item_id" in layer.tables
    table = layer.tables["item_id"].embeddings.numpy()
    batch = tiny_batch(2)
    batch["recent_items"] = np.array([[3, 7, -1, -1, -1], [-1, -1, -1, -1, -1]], np.int64)
    out = layer(batch)["recent_items"].numpy()
    np.testing.assert_allclose(out[0], (table[3] + table[7]) / 2, rtol=1e-6)  # padding left out
    np.testing.assert_allclose(out[1], np.zeros(4))  # an empty history pools to zeros
    assert "recent_items" in layer.backbone_names


def test_attention_weighs_the_history_by_the_candidate_and_trains_the_item_table():
    layer = _embedding("attention")
    batch = tiny_batch(2)
    batch["recent_items"] = np.array([[3, 7, -1, -1, -1], [3, 7, -1, -1, -1]], np.int64)
    batch["item_id"] = np.array([3, 11], np.int64)
    with tf.GradientTape() as tape:
        out = layer(batch)["recent_items"]
        loss = tf.reduce_sum(out)
    table = layer.tables["item_id"].embeddings.numpy()
    pool = layer.sequence_pools["recent_items"]
    weights = pool.attention_weights(tf.constant(table[[[3, 7], [3, 7]]]), tf.ones((2, 2), tf.bool),
                                     tf.constant(table[[3, 11]])).numpy()
    np.testing.assert_allclose(out.numpy(), np.einsum("bl,bld->bd", weights, table[[[3, 7], [3, 7]]]),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(out.numpy()[0], out.numpy()[1])  # same history, different candidates
    grad = tf.convert_to_tensor(tape.gradient(loss, layer.tables["item_id"].embeddings)).numpy()
    assert np.abs(grad[[3, 7]]).sum() > 0  # history rows of the shared table get gradients
