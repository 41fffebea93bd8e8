r"""AITM transfer primitives: the Adaptive Information Transfer (AIT) module and the behavioural-expectation
calibrator (Xi, Chen, Liu, Wang, Ma, Wu, Liu, Yu, "Modeling the Sequential Dependence among Audience
Multi-step Conversions with Multi-task Learning in Targeted Display Advertising", KDD 2021, arXiv:2105.08489).

Tasks t = 1..T follow the conversion funnel (impression -> click -> ... -> conversion). Task t's tower gives
:math:`q_t`; the AIT output of the first task is its tower, :math:`z_1 = q_1`. For t >= 2 the previous task's
AIT output is turned into the transferred information and mixed with :math:`q_t` by self-attention over the
two vectors:

.. math::

   p_{t-1} = g_{t-1}(z_{t-1}), \qquad
   z_t = \sum_{u \in \{p_{t-1},\, q_t\}} w_u\, h_1(u), \qquad
   w_u = \frac{\exp(\hat w_u)}{\sum_{u'} \exp(\hat w_{u'})}, \quad
   \hat w_u = \frac{\langle h_2(u), h_3(u) \rangle}{\sqrt{k}}

with :math:`g_{t-1}` an MLP (one ReLU layer to the width d of :math:`q_t`, as in the authors' code),
:math:`h_1, h_2, h_3` bias-free linear maps :math:`R^d \to R^k` and k the attention width (default d). The
task's probability is :math:`\hat y_t = \sigma(W_t z_t + b_t)`.

:class:`AttentionTransfer` is one AIT module (its own :math:`g_{t-1}, h_1, h_2, h_3`); the authors' TF code
shares :math:`h_{1..3}` between all modules, which only matters with three or more tasks. The layer is
agnostic of what ``previous`` is: AITM passes :math:`z_{t-1}` (the paper's Eq.; for the second task
:math:`z_1 = q_1`).

Behavioural expectation calibrator (paper Eq. for :math:`L_{lc}`): an end-to-end probability cannot exceed the
one of the step before it,

.. math::

   L_{lc} = \alpha \sum_{t=2}^{T} \frac{1}{B} \sum_b \max(\hat y_t^{(b)} - \hat y_{t-1}^{(b)}, 0)

(:func:`calibrator_loss` is one term; the batch mean, as in the authors' code; :math:`\alpha` = 0.6 in their
Ali-CCP run).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras as keras

from models.blocks.mlp import MLP


@keras.utils.register_keras_serializable(package="msmt")
class AttentionTransfer(keras.layers.Layer):
    r"""One AIT module: ``call([previous, current]) -> z_t [B, k]``.

    Args:
      units: attention width k (default: the last dimension of ``current``).
      dropout: dropout after the transfer MLP :math:`g_{t-1}`.
      l2: L2 on the transfer MLP and :math:`h_{1..3}`.

    ``call(..., return_attention=True)`` also returns the weights ``[B, 2]`` over
    ``(p_{t-1}, q_t)``, which sum to 1 per sample. :math:`g_{t-1}` maps ``previous`` to the width d of
    ``current`` (so :math:`h_{1..3}: R^d \to R^k` apply to both vectors).
    """

    def __init__(self, units: Optional[int] = None, dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units) if units else None
        self.dropout = float(dropout)
        self.l2 = float(l2)

    def build(self, input_shape):
        # input_shape: [shape(previous), shape(current)]
        d = int(tf.TensorShape(input_shape[1])[-1])
        k = self.units or d
        self.k = k
        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        self.transfer = MLP([d], dropout=self.dropout, l2=self.l2, name="transfer")  # g_{t-1}: -> R^d
        self.h1 = keras.layers.Dense(k, use_bias=False, kernel_regularizer=reg, name="h1_value")
        self.h2 = keras.layers.Dense(k, use_bias=False, kernel_regularizer=reg, name="h2_query")
        self.h3 = keras.layers.Dense(k, use_bias=False, kernel_regularizer=reg, name="h3_key")
        super().build(input_shape)

    def call(self, inputs, training=None, return_attention: bool = False):
        previous, current = inputs
        p = tf.cast(self.transfer(previous, training=training), current.dtype)  # p_{t-1} = g_{t-1}(z_{t-1})
        u = tf.stack([p, current], axis=1)  # [B, 2, d]: u in {p_{t-1}, q_t}
        scores = tf.reduce_sum(self.h2(u) * self.h3(u), axis=-1) / tf.sqrt(tf.cast(self.k, u.dtype))  # [B, 2]
        weights = tf.nn.softmax(scores, axis=-1)
        z = tf.reduce_sum(weights[..., None] * self.h1(u), axis=1)  # [B, k]
        return (z, weights) if return_attention else z

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, dropout=self.dropout, l2=self.l2)
        return cfg


def calibrator_loss(p_t: tf.Tensor, p_prev: tf.Tensor) -> tf.Tensor:
    r"""AITM behavioural-expectation calibrator term :math:`\frac{1}{B}\sum_b \max(p_t - p_{t-1}, 0)`.

    Both arguments are end-to-end probabilities ``[B, 1]`` (e.g. P(click & conv | imp) and P(click | imp)).
    Gradients flow into both, as in the paper. Returns a float32 scalar.
    """
    diff = tf.cast(p_t, tf.float32) - tf.cast(p_prev, tf.float32)
    return tf.reduce_mean(tf.nn.relu(diff))
