r"""MLP tower: a stack of fully connected layers.

.. math::

   h_0 = x, \qquad h_l = \mathrm{Dropout}(\phi(W_l h_{l-1} + b_l)), \quad l = 1..L

with :math:`\phi` = ReLU (configurable). With ``output_units`` set, a final linear layer
:math:`o = W_o h_L + b_o` (no activation) gives logits. Used as shared bottoms, experts and task towers
(Caruana 1997; Ma et al. KDD 2018).
"""

from __future__ import annotations

from typing import Optional, Sequence

import tf_keras as keras


@keras.utils.register_keras_serializable(package="msmt")
class MLP(keras.layers.Layer):
    """Dense stack ``units`` with ``activation`` and ``dropout``; optional linear ``output_units`` layer."""

    def __init__(self, units: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 output_units: Optional[int] = None, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = [int(u) for u in units]
        self.activation = activation
        self.dropout = float(dropout)
        self.output_units = output_units
        self.l2 = l2
        reg = keras.regularizers.l2(l2) if l2 else None
        self.hidden = [keras.layers.Dense(u, activation=activation, kernel_regularizer=reg, name=f"dense_{i}")
                       for i, u in enumerate(self.units)]
        self.drops = [keras.layers.Dropout(self.dropout) for _ in self.units] if self.dropout else []
        self.out = keras.layers.Dense(output_units, name="logit") if output_units else None

    def call(self, x, training=None):
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.drops:
                x = self.drops[i](x, training=training)
        return self.out(x) if self.out is not None else x

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, dropout=self.dropout,
                   output_units=self.output_units, l2=self.l2)
        return cfg
