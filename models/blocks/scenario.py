r"""Scenario routing and the scenario-aware CGC blocks of AEM2TL (docs/models.md, AEM2TL).

Routing. Every sample belongs to one of S known scenarios, or to the unknown slot (index S) when its
scenario value was never declared. Scenario-specific parts are computed for every scenario and combined
with routing weights :math:`\rho \in R^{B \times S}`: :math:`\rho = \mathrm{onehot}(s)` for a known scenario
(hard routing by scenario id), and the uniform :math:`1/S` for the unknown slot, so an unseen scenario gets
the average of the scenario-specific parts (documented fallback; never a crash).

Scenario-CGC (Eq. 3-6): scenario-shared experts with one global gate and scenario i's own experts and gate,

.. math::

   G = \sum_k w_{sh}^k(x) Q_{sh}^k(x), \quad S_i = \sum_k w_{sp,i}^k(x) Q_{sp,i}^k(x), \quad
   M_i = G \oplus S_i

Scenario Task-CGC (Eq. 7-8): for scenario i a CGC over the tasks with bias-free softmax gates on
:math:`M_i`; outputs are routed so that each sample gets its own scenario's task representations.
"""

from __future__ import annotations

from typing import List, Sequence

import tensorflow as tf
import tf_keras as keras

from models.blocks.cgc import CGC
from models.blocks.experts import ExpertSet, SoftmaxGate
from models.blocks.personalized_gate import GatedTower


def scenario_weights(scenario_idx: tf.Tensor, num_scenarios: int) -> tf.Tensor:
    """Routing weights ``[B, S]``: one-hot for known scenarios, uniform for the unknown slot (index S)."""
    idx = tf.reshape(tf.cast(scenario_idx, tf.int64), [-1])
    one_hot = tf.one_hot(idx, num_scenarios)  # all zeros when idx == S
    unknown = tf.cast(idx >= num_scenarios, tf.float32)[:, None]
    return one_hot + unknown * tf.fill([1, num_scenarios], 1.0 / num_scenarios)


def route(per_scenario: Sequence[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """:math:`\\sum_s \\rho_s \\cdot out_s` for per-scenario outputs ``[B, d]``."""
    stacked = tf.stack(list(per_scenario), axis=1)  # [B, S, d]
    return tf.reduce_sum(tf.cast(weights, stacked.dtype)[..., None] * stacked, axis=1)


@keras.utils.register_keras_serializable(package="msmt")
class ScenarioCGC(keras.layers.Layer):
    """``call(x, weights) -> M = G (+) S_i`` (Eq. 3-6). ``per_scenario_shared_gate`` gives each scenario its
    own gate over the shared experts instead of the single global gate printed in Eq. 3-4."""

    def __init__(self, num_scenarios: int, num_shared: int = 4, num_specific: int = 2,
                 expert_units: Sequence[int] = (256, 128), per_scenario_shared_gate: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_scenarios = int(num_scenarios)
        self.num_shared, self.num_specific = int(num_shared), int(num_specific)
        self.expert_units = [int(u) for u in expert_units]
        self.per_scenario_shared_gate = bool(per_scenario_shared_gate)
        self.dropout = dropout
        self.shared_experts = ExpertSet(self.num_shared, self.expert_units, dropout, name="scenario_shared_experts")
        n_shared_gates = self.num_scenarios if self.per_scenario_shared_gate else 1
        self.shared_gates = [SoftmaxGate(self.num_shared, name=f"shared_gate_{g}") for g in range(n_shared_gates)]
        self.specific_experts = [ExpertSet(self.num_specific, self.expert_units, dropout, name=f"scenario_{s}_experts")
                                 for s in range(self.num_scenarios)]
        self.specific_gates = [SoftmaxGate(self.num_specific, name=f"scenario_{s}_gate")
                               for s in range(self.num_scenarios)]

    def call(self, x, weights, training=None):
        shared = self.shared_experts(x, training=training)
        if self.per_scenario_shared_gate:
            g = route([gate(x, shared) for gate in self.shared_gates], weights)
        else:
            g = self.shared_gates[0](x, shared)
        specific = route([self.specific_gates[s](x, self.specific_experts[s](x, training=training))
                          for s in range(self.num_scenarios)], weights)
        return tf.concat([g, specific], axis=-1)

    def shared_layer_variables(self) -> List[tf.Variable]:
        """Last linear layer of the scenario-shared experts (GradNorm's W, docs/models.md)."""
        return [v for e in self.shared_experts.experts for v in e.hidden[-1].trainable_variables]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_scenarios=self.num_scenarios, num_shared=self.num_shared, num_specific=self.num_specific,
                   expert_units=self.expert_units, per_scenario_shared_gate=self.per_scenario_shared_gate,
                   dropout=self.dropout)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class ScenarioTaskCGC(keras.layers.Layer):
    """One bias-free CGC over ``num_tasks`` per scenario; ``call(m, weights) -> [T_1..T_T]`` routed."""

    def __init__(self, num_scenarios: int, num_tasks: int, num_shared: int = 2, num_specific: int = 1,
                 expert_units: Sequence[int] = (128, 64), dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_scenarios, self.num_tasks = int(num_scenarios), int(num_tasks)
        self.num_shared, self.num_specific = int(num_shared), int(num_specific)
        self.expert_units = [int(u) for u in expert_units]
        self.dropout = dropout
        self.cgcs = [CGC(self.num_tasks, self.num_shared, self.num_specific, self.expert_units, gate_bias=False,
                         dropout=dropout, name=f"task_cgc_{s}") for s in range(self.num_scenarios)]

    def call(self, m, weights, training=None):
        per_scenario = [cgc(m, training=training) for cgc in self.cgcs]  # S lists of T tensors
        return [route([per_scenario[s][t] for s in range(self.num_scenarios)], weights)
                for t in range(self.num_tasks)]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_scenarios=self.num_scenarios, num_tasks=self.num_tasks, num_shared=self.num_shared,
                   num_specific=self.num_specific, expert_units=self.expert_units, dropout=self.dropout)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class ScenarioTowers(keras.layers.Layer):
    """One :class:`GatedTower` per (scenario, task) (Eq. 9); ``call(reps, prior, weights) -> [logit_t]`` routed.

    ``share_across_scenarios`` uses one tower per task for all scenarios."""

    def __init__(self, num_scenarios: int, num_tasks: int, units: Sequence[int] = (64, 32), gamma: float = 2.0,
                 gated: bool = True, share_across_scenarios: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_scenarios, self.num_tasks = int(num_scenarios), int(num_tasks)
        self.units = [int(u) for u in units]
        self.gamma, self.gated = float(gamma), bool(gated)
        self.share_across_scenarios = bool(share_across_scenarios)
        self.dropout = dropout
        n = 1 if self.share_across_scenarios else self.num_scenarios
        self.towers = [[GatedTower(self.units, self.gamma, self.gated, dropout, name=f"tower_s{s}_t{t}")
                        for t in range(self.num_tasks)] for s in range(n)]

    def call(self, reps, prior, weights, backbones=None, training=None):
        backbones = reps if backbones is None else backbones
        out = []
        for t in range(self.num_tasks):
            logits = [self.towers[s][t](reps[t], prior, backbones[t], training=training) for s in range(len(self.towers))]
            out.append(logits[0] if len(logits) == 1 else route(logits, weights))
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_scenarios=self.num_scenarios, num_tasks=self.num_tasks, units=self.units, gamma=self.gamma,
                   gated=self.gated, share_across_scenarios=self.share_across_scenarios, dropout=self.dropout)
        return cfg
