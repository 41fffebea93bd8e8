r"""Edge towers: one MLP tower with a 1-unit logit per edge of the behaviour graph.

.. math:: \mathrm{logit}_e = \mathrm{MLP}_e(h_e), \quad e \in \text{edges}

``call`` takes one shared input ``h`` (every tower reads it) or a dict ``{edge: h_e}``.
"""

from __future__ import annotations

from typing import Dict, Sequence, Union

import tensorflow as tf
import tf_keras as keras

from models.blocks.mlp import MLP


@keras.utils.register_keras_serializable(package="msmt")
class EdgeTowers(keras.layers.Layer):
    def __init__(self, edges: Sequence[str], units: Sequence[int], dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.edges = [str(e) for e in edges]
        self.units = [int(u) for u in units]
        self.dropout, self.l2 = dropout, l2
        self.towers = {e: MLP(self.units, dropout=dropout, output_units=1, l2=l2, name=f"tower_{e}")
                       for e in self.edges}

    def call(self, h: Union[tf.Tensor, Dict[str, tf.Tensor]], training=None) -> Dict[str, tf.Tensor]:
        return {e: self.towers[e](h[e] if isinstance(h, dict) else h, training=training) for e in self.edges}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(edges=self.edges, units=self.units, dropout=self.dropout, l2=self.l2)
        return cfg
