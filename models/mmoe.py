r"""MMoE: Multi-gate Mixture-of-Experts (Ma et al., "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018).

K shared experts, one softmax gate per task (here: per edge of the behaviour graph), one tower per task:

.. math::

   f^t(x) = \sum_{k=1}^{K} g^t_k(x)\, Q^k(x), \quad g^t(x) = \mathrm{softmax}(W^t x), \quad
   \mathrm{logit}_t = \mathrm{MLP}_t(f^t(x))

Edge probabilities are composed into entire-space heads by :class:`~models.blocks.heads.EntireSpaceHeads`.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from models.base import MultiTaskRanker
from models.blocks.experts import ExpertSet, SoftmaxGate
from models.blocks.towers import EdgeTowers
from models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class MMoEConfig(ModelConfig):
    embedding_dim: int = 32  # tuned (docs/defaults.md)
    num_experts: int = 4
    expert_units: Tuple[int, ...] = (128, 64)

    @classmethod
    def search_space(cls):
        return dict(super().search_space(), **{"num_experts": (4, 8)})


class MMoE(MultiTaskRanker):
    config_class = MMoEConfig
    reference = "Ma et al., Modeling Task Relationships in Multi-task Learning with MMoE, KDD 2018"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 2}

    def build_layers(self) -> None:
        c = self.config
        self.experts = ExpertSet(c.num_experts, c.expert_units, c.dropout, c.l2, name="experts")
        self.gates = {e: SoftmaxGate(c.num_experts, name=f"gate_{e}") for e in self.heads.edges}
        self.towers = EdgeTowers(self.heads.edges, c.tower_units, c.dropout, c.l2, name="towers")

    def edge_logits(self, embedded, inputs, training=None):
        x = self.embedding.concat(embedded)
        experts = self.experts(x, training=training)
        return self.towers({e: self.gates[e](x, experts) for e in self.heads.edges}, training=training)

    def shared_layer_variables(self):
        return [v for e in self.experts.experts for v in e.hidden[-1].trainable_variables]
