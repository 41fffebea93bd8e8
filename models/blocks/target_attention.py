r"""Pooling of a behaviour sequence against the candidate item: DIN's target attention, or a masked mean.

Deep Interest Network (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018):
the user's recent behaviours :math:`e_1..e_L` (embeddings of the items they interacted with, from the same
table as the candidate item) are pooled with weights that depend on the candidate :math:`v`:

.. math::

   a_j = \mathrm{MLP}\big([\,e_j,\; v,\; e_j - v,\; e_j \odot v\,]\big) \in \mathbb{R}, \qquad
   u = \sum_{j \,:\, m_j = 1} a_j \, e_j

:math:`m_j` masks the padding of sequences shorter than :math:`L`. The activation unit's input holds the two
embeddings, their difference and their element-wise product (the paper's "out product" of behaviour and
candidate). As in the paper, the weights are not normalised by a softmax by default
(``normalization="none"``), so that :math:`\lVert u \rVert` keeps how strongly the history relates to the
candidate; ``normalization="softmax"`` normalises them over the valid positions instead. The MLP has
``hidden_units`` ReLU layers and a linear 1-unit output. A row with no valid position pools to zeros.

``pooling="mean"`` ignores the candidate: :math:`u = \frac{1}{\sum_j m_j}\sum_j m_j e_j` (zeros when empty),
the usual baseline against which target attention is measured.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

POOLINGS = ("attention", "mean")
NORMALIZATIONS = ("none", "softmax")


@keras.utils.register_keras_serializable(package="msmt")
class TargetAttentionPooling(keras.layers.Layer):
    """``call(sequence, mask, target) -> pooled``: ``sequence`` [B, L, D], ``mask`` [B, L] (bool or 0/1),
    ``target`` [B, D] -> [B, D]."""

    def __init__(self, hidden_units: Sequence[int] = (36,), pooling: str = "attention",
                 normalization: str = "none", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
        self.hidden_units = [int(u) for u in hidden_units]
        self.pooling = pooling
        self.normalization = normalization
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"attention_hidden_{i}")
                       for i, u in enumerate(self.hidden_units)]
        self.score = keras.layers.Dense(1, name="attention_score")

    def attention_weights(self, sequence, mask, target):
        """:math:`a_j` for every position ([B, L]); 0 where masked."""
        mask = tf.cast(mask, sequence.dtype)
        target = tf.broadcast_to(tf.expand_dims(target, 1), tf.shape(sequence))
        h = tf.concat([sequence, target, sequence - target, sequence * target], axis=-1)
        for layer in self.hidden:
            h = layer(h)
        scores = tf.squeeze(self.score(h), axis=-1)
        if self.normalization == "softmax":
            scores = tf.where(mask > 0, scores, tf.fill(tf.shape(scores), tf.cast(-1e9, scores.dtype)))
            return tf.nn.softmax(scores, axis=-1) * mask  # all-masked rows: uniform * 0 = 0
        return scores * mask

    def call(self, sequence, mask, target):
        if self.pooling == "mean":
            mask = tf.cast(mask, sequence.dtype)
            total = tf.reduce_sum(sequence * tf.expand_dims(mask, -1), axis=1)
            return tf.math.divide_no_nan(total, tf.reduce_sum(mask, axis=1, keepdims=True))
        weights = self.attention_weights(sequence, mask, target)
        return tf.reduce_sum(sequence * tf.expand_dims(weights, -1), axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(hidden_units=self.hidden_units, pooling=self.pooling, normalization=self.normalization)
        return cfg
