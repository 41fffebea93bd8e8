r"""Customized Gate Control (CGC) and Progressive Layered Extraction (PLE) (Tang et al., RecSys 2020).

CGC with T tasks, :math:`m` shared experts :math:`E^{sh}` and :math:`n` experts :math:`E^{t}` per task; task
t's gate mixes the shared experts and its own:

.. math::

   g^t(x) = \mathrm{softmax}(W^t x [+ b^t]) \in R^{m+n}, \qquad
   T^t = g^t(x) \cdot [E^{sh}_1(x), .., E^{sh}_m(x), E^t_1(x), .., E^t_n(x)]

A CGC layer may also output a shared representation for the next level, gated over *all* experts:
:math:`S = g^{sh}(x) \cdot [E^{sh}(x), E^1(x), .., E^T(x)]`. Inputs can differ per task (PLE's upper
levels take each task's previous output and the shared one). PLE stacks L CGC levels; the last level
outputs only task representations.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import tensorflow as tf
import tf_keras as keras

from models.blocks.experts import ExpertSet, SoftmaxGate


@keras.utils.register_keras_serializable(package="msmt")
class CGC(keras.layers.Layer):
    """One CGC level. ``call(x)`` with one tensor, or ``call([x_1..x_T, x_shared])`` with per-task inputs.

    Returns a list of T task representations, plus the shared one when ``output_shared``.
    """

    def __init__(self, num_tasks: int, num_shared: int, num_specific: int, expert_units: Sequence[int],
                 output_shared: bool = False, gate_bias: bool = True, dropout: float = 0.0, l2: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = int(num_tasks)
        self.num_shared = int(num_shared)
        self.num_specific = int(num_specific)
        self.expert_units = [int(u) for u in expert_units]
        self.output_shared = bool(output_shared)
        self.gate_bias = bool(gate_bias)
        self.dropout = dropout
        self.l2 = l2
        self.shared_experts = ExpertSet(self.num_shared, self.expert_units, dropout, l2, name="shared_experts")
        self.task_experts = [ExpertSet(self.num_specific, self.expert_units, dropout, l2, name=f"task_{t}_experts")
                             for t in range(self.num_tasks)]
        self.task_gates = [SoftmaxGate(self.num_shared + self.num_specific, self.gate_bias, name=f"task_{t}_gate")
                           for t in range(self.num_tasks)]
        if self.output_shared:
            self.shared_gate = SoftmaxGate(self.num_shared + self.num_tasks * self.num_specific, self.gate_bias,
                                           name="shared_gate")

    def call(self, inputs: Union[tf.Tensor, Sequence[tf.Tensor]], training=None) -> List[tf.Tensor]:
        if isinstance(inputs, (list, tuple)):
            task_inputs, shared_input = list(inputs[:-1]), inputs[-1]
        else:
            task_inputs, shared_input = [inputs] * self.num_tasks, inputs
        shared = self.shared_experts(shared_input, training=training)
        specific = [self.task_experts[t](task_inputs[t], training=training) for t in range(self.num_tasks)]
        outputs = [self.task_gates[t](task_inputs[t], tf.concat([shared, specific[t]], axis=1))
                   for t in range(self.num_tasks)]
        if self.output_shared:
            outputs.append(self.shared_gate(shared_input, tf.concat([shared] + specific, axis=1)))
        return outputs

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_tasks=self.num_tasks, num_shared=self.num_shared, num_specific=self.num_specific,
                   expert_units=self.expert_units, output_shared=self.output_shared, gate_bias=self.gate_bias,
                   dropout=self.dropout, l2=self.l2)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class PLE(keras.layers.Layer):
    """``num_levels`` stacked CGC levels; ``call(x) -> [T_1..T_T]``."""

    def __init__(self, num_tasks: int, num_levels: int, num_shared: int, num_specific: int,
                 expert_units: Sequence[int], dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_tasks, self.num_levels = int(num_tasks), int(num_levels)
        self.num_shared, self.num_specific = int(num_shared), int(num_specific)
        self.expert_units = [int(u) for u in expert_units]
        self.dropout, self.l2 = dropout, l2
        self.levels = [CGC(self.num_tasks, self.num_shared, self.num_specific, self.expert_units,
                           output_shared=level < self.num_levels - 1, dropout=dropout, l2=l2, name=f"cgc_{level}")
                       for level in range(self.num_levels)]

    def call(self, x, training=None):
        out = x
        for level in self.levels:
            out = level(out, training=training)
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_tasks=self.num_tasks, num_levels=self.num_levels, num_shared=self.num_shared,
                   num_specific=self.num_specific, expert_units=self.expert_units, dropout=self.dropout, l2=self.l2)
        return cfg
