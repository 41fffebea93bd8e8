r"""PEPNet: Parameter and Embedding Personalized Network (Chang et al., "PEPNet: Parameter and Embedding
Personalized Network for Infusing with Personalized Prior Information", KDD 2023).

**EPNet** (embedding personalization, scenario level): a gate unit reads the scenario prior embedding and
the stop-gradient backbone embedding and rescales the backbone,

.. math::

   \delta_{domain} = \gamma \cdot \sigma\Big(\mathrm{MLP}\big(E(\text{scenario prior}) \oplus
       \mathrm{sg}(\mathbf{x})\big)\Big) \in (0, \gamma)^{|\mathbf{x}|}, \qquad
   \mathbf{x}' = \delta_{domain} \odot \mathbf{x}

**PPNet** (parameter personalization, user/item level): every edge's tower gates the input of each of its
layers with a gate of the user, item and EPNet-output signals,

.. math::

   \mathbf{p} = E(\text{user prior}) \oplus E(\text{item prior}), \qquad
   \delta^{(l)}_e = \gamma \cdot \sigma\big(\mathrm{MLP}^{(l)}_e(\mathbf{p} \oplus \mathrm{sg}(\mathbf{x}'))\big),

   \mathbf{H}^{(0)}_e = \mathbf{x}', \qquad
   \mathbf{H}^{(l+1)}_e = \phi\big((\delta^{(l)}_e \odot \mathbf{H}^{(l)}_e) W^{(l)}_e + b^{(l)}_e\big),
   \qquad \mathrm{logit}_e = \mathbf{H}^{(m+1)}_e

(the last layer is the 1-unit linear logit), and :class:`~models.blocks.heads.EntireSpaceHeads` composes
the heads from :math:`\sigma(\mathrm{logit}_e)`. With :math:`\gamma = 2` a gate's neutral value is 1.

Blocks: EPNet is :class:`~models.blocks.personalized_gate.PersonalizedGate`, PPNet towers are
:class:`~models.blocks.personalized_gate.GatedTower`. An empty prior group contributes a zero column.
Differences from the paper: the paper's PPNet uses one gate per layer whose output is split across the
task towers; here each edge of the behaviour graph (the "tasks") has its own tower with its own gates.
Ablations: ``epnet=False`` (:math:`\mathbf{x}' = \mathbf{x}`), ``ppnet=False`` (plain MLP towers).
"""

from __future__ import annotations

import dataclasses


from models.base import MultiTaskRanker
from models.blocks.personalized_gate import GatedTower, PersonalizedGate
from models.config import ConfigError, ModelConfig


@dataclasses.dataclass(frozen=True)
class PEPNetConfig(ModelConfig):
    """``epnet`` / ``ppnet``: switch the embedding / parameter personalization on; ``gamma``: gate range
    :math:`(0, \\gamma)`."""

    embedding_dim: int = 32  # tuned (docs/defaults.md)
    epnet: bool = True
    ppnet: bool = True
    gamma: float = 2.0

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.gamma <= 0:
            raise ConfigError(f"{source}: gamma must be > 0, got {self.gamma}")


class PEPNet(MultiTaskRanker):
    """EPNet gate on the embedding (scenario prior) + PPNet gated tower per edge (user and item priors)."""

    config_class = PEPNetConfig
    reference = ("Chang et al., PEPNet: Parameter and Embedding Personalized Network for Infusing with "
                 "Personalized Prior Information, KDD 2023")
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.001, "epochs": 2, "weighting": {"strategy": "gradnorm"}}

    def build_layers(self) -> None:
        c = self.config
        self.epnet = (PersonalizedGate(self._backbone_width(), gamma=c.gamma, name="epnet_gate")
                      if c.epnet else None)
        self.towers = {e: GatedTower(c.tower_units, gamma=c.gamma, enabled=c.ppnet, dropout=c.dropout,
                                     name=f"ppnet_tower_{e}")
                       for e in self.heads.edges}

    def _backbone_width(self) -> int:
        return sum(self.embedding.width(n) for n in self.embedding.backbone_names)

    def edge_logits(self, embedded, inputs, training=None):
        x = self.embedding.concat(embedded)
        if self.epnet is not None:
            x = self.epnet(self.embedding.prior_vector(embedded, ("scenario",)), x) * x
        prior = None
        if self.config.ppnet:
            prior = self.embedding.prior_vector(embedded, ("user", "item"))
        return {e: tower(x, prior, x, training=training) for e, tower in self.towers.items()}

    def shared_layer_variables(self):
        """EPNet gate's output layer (shared by every edge); without EPNet, the first layer of the first
        edge's tower (the click tower: every entire-space head depends on it)."""
        if self.epnet is not None:
            return self.epnet.out.trainable_variables
        return self.towers[self.heads.edges[0]].layers_[0].trainable_variables
