r"""Edge logits that start at their base rates.

Every edge e of a model (an edge of the behaviour graph, a funnel task, or a direct head) predicts a
probability :math:`P(\text{event}_e \mid \text{condition}_e)` through a logit :math:`z_e`. A freshly initialised
tower outputs :math:`z_e \approx 0`, i.e. a probability of 0.5, where a conversion edge's base rate is a few per
cent or less; the optimizer then spends its first thousands of steps moving biases (Adam moves a bias by about
the learning rate per step: from 0 to :math:`\mathrm{logit}(0.002) \approx -6.2` at 2e-3 takes some 3,000
steps, more than one epoch of a million impressions), and a short training ends with probabilities off by a
factor (``docs/calibration.md``). This layer adds a trainable bias per edge,

.. math::

   z'_e = z_e + \beta_e, \qquad \beta_e^{(0)} = \mathrm{logit}\big(\hat P(\text{event}_e \mid
   \text{condition}_e)\big)

with the base rate :math:`\hat P` counted on the training labels before training
(:meth:`models.base.MultiTaskRanker.initialize_edge_priors`), so the model starts at the base rates and
learns only the deviations from them (the usual practice for rare-event output layers, e.g. Karpathy's
"init well" recipe and the focal-loss prior bias of Lin et al., ICCV 2017).
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Sequence

import tensorflow as tf
import tf_keras as keras


def logit(p: float, eps: float = 1e-6) -> float:
    p = min(max(float(p), eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


@keras.utils.register_keras_serializable(package="msmt")
class EdgePrior(keras.layers.Layer):
    """``call({edge: [B, 1] logit}) -> {edge: logit + beta_edge}``; ``beta`` starts at 0 until
    :meth:`set_base_rates`."""

    def __init__(self, edges: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        self.edges = [str(e) for e in edges]

    def build(self, input_shape=None):
        self.beta = self.add_weight("beta", [len(self.edges)], initializer="zeros", dtype=tf.float32,
                                    experimental_autocast=False)
        super().build(input_shape)

    def set_base_rates(self, rates: Mapping[str, float]) -> Dict[str, float]:
        r"""Set :math:`\beta_e = \mathrm{logit}(rate_e)` for the edges in ``rates``; returns the biases set."""
        if not self.built:
            self.build()
        beta = self.beta.numpy()
        for i, e in enumerate(self.edges):
            if e in rates:
                beta[i] = logit(rates[e])
        self.beta.assign(beta)
        return {e: float(b) for e, b in zip(self.edges, beta)}

    def call(self, logits: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {e: tf.cast(logits[e], tf.float32) + self.beta[i] for i, e in enumerate(self.edges)}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(edges=list(self.edges))
        return cfg
