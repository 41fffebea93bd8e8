r"""PLE: Progressive Layered Extraction (Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
Learning (MTL) Model for Personalized Recommendations", RecSys 2020).

``num_levels`` stacked CGC layers (:class:`~models.blocks.cgc.PLE`) with shared and task-specific experts,
one task per edge of the behaviour graph, then one tower per task:
:math:`\mathrm{logit}_t = \mathrm{MLP}_t(T^t_L)`, with :math:`T^t_L` the last CGC level's task output.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from models.base import MultiTaskRanker
from models.blocks.cgc import PLE as PLEBlock
from models.blocks.towers import EdgeTowers
from models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class PLEConfig(ModelConfig):
    embedding_dim: int = 32  # tuned (docs/defaults.md)
    num_levels: int = 2
    num_shared_experts: int = 1  # tuned (docs/defaults.md)
    num_specific_experts: int = 1
    expert_units: Tuple[int, ...] = (128, 64)

    @classmethod
    def search_space(cls):
        return dict(super().search_space(), **{"num_shared_experts": (1, 2, 4)})


class PLE(MultiTaskRanker):
    config_class = PLEConfig
    reference = "Tang et al., Progressive Layered Extraction (PLE), RecSys 2020"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 2}

    def build_layers(self) -> None:
        c = self.config
        self.edges = list(self.heads.edges)
        self.extraction = PLEBlock(len(self.edges), c.num_levels, c.num_shared_experts, c.num_specific_experts,
                                   c.expert_units, c.dropout, c.l2, name="ple")
        self.towers = EdgeTowers(self.edges, c.tower_units, c.dropout, c.l2, name="towers")

    def edge_logits(self, embedded, inputs, training=None):
        reps = self.extraction(self.embedding.concat(embedded), training=training)
        return self.towers(dict(zip(self.edges, reps)), training=training)

    def shared_layer_variables(self):
        top = self.extraction.levels[-1].shared_experts
        return [v for e in top.experts for v in e.hidden[-1].trainable_variables]
