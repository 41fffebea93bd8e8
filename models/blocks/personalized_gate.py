r"""Personalized gate and gated tower (PPNet / LHUC style; PEPNet, Chang et al. KDD 2023; docs/models.md).

Gate unit (two layers, output in :math:`(0, \gamma)`, neutral value 1 at :math:`\gamma = 2`):

.. math::

   h_0 = E_{prior} \oplus \mathrm{sg}(E_{ep}), \qquad h_1 = \mathrm{ReLU}(h_0 W_0 + b_0), \qquad
   \delta = \gamma \cdot \sigma(h_1 W_1 + b_1)

:math:`\mathrm{sg}` is stop-gradient: the gate does not push gradients into the backbone signal
:math:`E_{ep}`, while the prior embeddings :math:`E_{prior}` do get gradients. :math:`W_1` starts small and
:math:`b_1 = 0` so gates start near 1.

Gated tower (Eq. 13-14): every layer input is scaled by its own gate,
:math:`H^{(l+1)} = \xi((\delta^{(l)} \odot H^{(l)}) W^{(l)} + b^{(l)})`, :math:`l = 1..m`, the last layer a
1-unit logit. With ``enabled=False`` all gates are 1 (the ablation "w/o personalized gating").
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="msmt")
class PersonalizedGate(keras.layers.Layer):
    """``call(prior, backbone) -> delta in (0, gamma)^units``; ``hidden_units`` defaults to ``units``."""

    def __init__(self, units: int, gamma: float = 2.0, hidden_units: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.gamma = float(gamma)
        self.hidden_units = int(hidden_units or units)
        self.hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="gate_hidden")
        self.out = keras.layers.Dense(self.units, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                      bias_initializer="zeros", name="gate_out")

    def call(self, prior, backbone):
        h0 = tf.concat([prior, tf.stop_gradient(backbone)], axis=-1)
        return self.gamma * tf.sigmoid(self.out(self.hidden(h0)))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, gamma=self.gamma, hidden_units=self.hidden_units)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class GatedTower(keras.layers.Layer):
    """MLP ``units`` + 1-unit logit; each layer's input is scaled by a PersonalizedGate of its width.

    ``call(x, prior, backbone=None)``: ``backbone`` defaults to ``x`` (the tower input, docs/models.md).
    """

    def __init__(self, units: Sequence[int], gamma: float = 2.0, enabled: bool = True, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = [int(u) for u in units]
        self.gamma = float(gamma)
        self.enabled = bool(enabled)
        self.dropout = float(dropout)
        self.layers_ = [keras.layers.Dense(u, activation="relu", name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.logit = keras.layers.Dense(1, name="logit")
        self.gates = []
        self.drops = [keras.layers.Dropout(self.dropout) for _ in self.units] if self.dropout else []

    def build(self, input_shape):
        if self.enabled:
            widths = [int(input_shape[-1])] + self.units
            self.gates = [PersonalizedGate(w, self.gamma, name=f"gate_{i}") for i, w in enumerate(widths)]
        super().build(input_shape)

    def call(self, x, prior=None, backbone=None, training=None):
        backbone = x if backbone is None else backbone
        h = x
        for i, layer in enumerate(self.layers_ + [self.logit]):
            if self.enabled:
                h = self.gates[i](prior, backbone) * h
            h = layer(h)
            if self.drops and i < len(self.units):
                h = self.drops[i](h, training=training)
        return h

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, gamma=self.gamma, enabled=self.enabled, dropout=self.dropout)
        return cfg
