r"""Expert set and softmax gate: the mixture-of-experts primitives (MMoE, Ma et al. KDD 2018).

An :class:`ExpertSet` holds K MLP experts applied to the same input; a :class:`SoftmaxGate` mixes them:

.. math::

   E(x) = [Q^1(x), \dots, Q^K(x)] \in R^{B \times K \times d}, \qquad
   w(x) = \mathrm{softmax}(W x + b) \in R^{B \times K}, \qquad
   \mathrm{mix}(x) = \sum_{k=1}^{K} w^k(x)\, Q^k(x)

The gate's bias is optional (AEM2TL's Task-CGC gate, Eq. 8, has none).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from models.blocks.mlp import MLP


@keras.utils.register_keras_serializable(package="msmt")
class ExpertSet(keras.layers.Layer):
    """``num_experts`` MLP experts of widths ``units``; ``call(x) -> [B, K, units[-1]]``."""

    def __init__(self, num_experts: int, units: Sequence[int], dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.num_experts = int(num_experts)
        self.units = [int(u) for u in units]
        self.dropout = dropout
        self.l2 = l2
        self.experts = [MLP(self.units, dropout=dropout, l2=l2, name=f"expert_{k}") for k in range(self.num_experts)]

    def call(self, x, training=None):
        return tf.stack([e(x, training=training) for e in self.experts], axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_experts=self.num_experts, units=self.units, dropout=self.dropout, l2=self.l2)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class SoftmaxGate(keras.layers.Layer):
    """Softmax gate over ``num_experts``: ``call(x, experts=None)`` returns the weights ``[B, K]``, or the
    mixture ``[B, d]`` when ``experts`` (``[B, K, d]``) is given."""

    def __init__(self, num_experts: int, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.use_bias = bool(use_bias)
        self.dense = keras.layers.Dense(self.num_experts, use_bias=self.use_bias, name="gate_logits")

    def call(self, x, experts=None):
        weights = tf.nn.softmax(self.dense(x), axis=-1)
        if experts is None:
            return weights
        return tf.reduce_sum(weights[..., None] * experts, axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_experts=self.num_experts, use_bias=self.use_bias)
        return cfg
