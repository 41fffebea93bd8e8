r"""SharedBottom with entire-space heads (Caruana, "Multitask Learning", Machine Learning 1997).

One bottom MLP is shared by every task; each edge of the behaviour graph has its own tower:

.. math::

   h = \mathrm{MLP}_{shared}(\mathbf{x}), \qquad \mathrm{logit}_e = \mathrm{MLP}_e(h) \quad
   e \in \{click, conv\_click, conv\_unclick[, action, conv\_action]\}

and :class:`~models.blocks.heads.EntireSpaceHeads` composes ``ctr``, ``cvr``, ``ctcvr``, ``xcvr`` (and
``ctavr``) from the edge probabilities, so every head is trained over all impressions (ESMM-style).
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from models.base import MultiTaskRanker
from models.blocks.mlp import MLP
from models.blocks.towers import EdgeTowers
from models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class SharedBottomConfig(ModelConfig):
    embedding_dim: int = 32  # tuned (docs/defaults.md)
    dropout: float = 0.1  # tuned
    bottom_units: Tuple[int, ...] = (128, 64)


class SharedBottom(MultiTaskRanker):
    """Hard parameter sharing: shared bottom MLP + one tower per edge."""

    config_class = SharedBottomConfig
    reference = "Caruana, Multitask Learning, Machine Learning 28, 1997"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 2}

    def build_layers(self) -> None:
        c = self.config
        self.bottom = MLP(c.bottom_units, dropout=c.dropout, l2=c.l2, name="shared_bottom")
        self.towers = EdgeTowers(self.heads.edges, c.tower_units, c.dropout, c.l2, name="towers")

    def edge_logits(self, embedded, inputs, training=None):
        h = self.bottom(self.embedding.concat(embedded), training=training)
        return self.towers(h, training=training)

    def shared_layer_variables(self):
        return self.bottom.hidden[-1].trainable_variables
