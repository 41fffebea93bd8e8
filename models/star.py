r"""STAR: Star Topology Adaptive Recommender (Sheng et al., "One Model to Serve All: Star Topology Adaptive
Recommender for Multi-Domain CTR Prediction", CIKM 2021), adapted to the entire-space multi-task heads.

For a sample of scenario (domain) p with backbone embedding :math:`\mathbf{x}`:

.. math::

   \mathbf{z} = \mathrm{PN}_p(\mathbf{x}) = (\gamma \odot \gamma_p)
       \frac{\mathbf{x} - \mu_p}{\sqrt{\sigma_p^2 + \epsilon}} + (\beta + \beta_p)
       \qquad \text{(partitioned normalization)}

   \mathbf{h}_0 = \mathbf{z}, \qquad
   \mathbf{h}_l = \phi\big(\mathbf{h}_{l-1}^\top (W_l \odot W_{l,p}) + b_l + b_{l,p}\big), \quad l = 1..L
       \qquad \text{(star topology FCN)}

   \mathbf{a} = \mathrm{MLP}_{aux}\big(E(\text{scenario prior})\big) \in R^{|edges|}
       \qquad \text{(auxiliary network)}

   \mathrm{logit}_e = \mathrm{MLP}_e(\mathbf{h}_L) + a_e, \qquad e \in edges

and :class:`~models.blocks.heads.EntireSpaceHeads` composes the heads from :math:`\sigma(\mathrm{logit}_e)`.
An unknown scenario gets the mean over scenarios of every partitioned layer's per-scenario outputs
(:mod:`models.blocks.scenario` routing).

**Multi-task adaptation.** STAR is single-task (CTR) in the paper: its star FCN ends in a partitioned
1-unit output layer and the auxiliary network's scalar is added to that logit, :math:`\hat y =
\sigma(s_m + s_a)`. Here the star FCN (``star_units``) is a representation shared by every edge of the
behaviour graph; each edge gets its own (non-partitioned) MLP tower on top (``tower_units``), and the
auxiliary network outputs one logit per edge, added to that edge's tower logit. The auxiliary input is the
embedding of the scenario prior group (the scenario indicator plus any other domain features; the
scenario id's embedding when the group is empty). Mixed batches (the paper trains on one-domain batches)
are handled in PN by per-scenario batch moments (``scenario_statistics``).

Ablations: ``partitioned_norm=False`` feeds :math:`\mathbf{x}` to the FCN directly, ``auxiliary=False``
drops the auxiliary network.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import tensorflow as tf
import tf_keras as keras

from models.base import MultiTaskRanker
from models.blocks.mlp import MLP
from models.blocks.star import PartitionedDense, PartitionedNormalization
from models.config import ConfigError, ModelConfig


@dataclasses.dataclass(frozen=True)
class STARConfig(ModelConfig):
    """``star_units``: widths of the star topology FCN (shared by all edges). ``aux_units``: hidden widths of
    the auxiliary network. ``partitioned_norm`` / ``auxiliary``: ablation switches. ``norm_momentum``,
    ``scenario_statistics``: partitioned normalization's moving-average momentum and per-scenario moments."""

    embedding_dim: int = 32  # tuned (docs/defaults.md)
    star_units: Tuple[int, ...] = (128, 64)
    aux_units: Tuple[int, ...] = (32,)
    partitioned_norm: bool = True
    auxiliary: bool = True
    norm_momentum: float = 0.99
    scenario_statistics: bool = True

    def validate(self, source: str) -> None:
        super().validate(source)
        if not 0.0 <= self.norm_momentum < 1.0:
            raise ConfigError(f"{source}: norm_momentum must be in [0, 1), got {self.norm_momentum}")


class STAR(MultiTaskRanker):
    """Partitioned normalization + star topology FCN shared by all edges + auxiliary network + edge towers."""

    config_class = STARConfig
    reference = ("Sheng et al., One Model to Serve All: Star Topology Adaptive Recommender for Multi-Domain "
                 "CTR Prediction, CIKM 2021")
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.001, "epochs": 2, "weighting": {"strategy": "gradnorm"}}

    def build_layers(self) -> None:
        c = self.config
        dims = self.embedding.dims
        self.num_scenarios = dims.num_scenarios
        self.pn = (PartitionedNormalization(dims.num_scenarios, momentum=c.norm_momentum,
                                            scenario_statistics=c.scenario_statistics, name="partitioned_norm")
                   if c.partitioned_norm else None)
        self.star_layers = [PartitionedDense(u, dims.num_scenarios, activation="relu", l2=c.l2, name=f"star_fcn_{i}")
                            for i, u in enumerate(c.star_units)]
        self.star_drops = [keras.layers.Dropout(c.dropout) for _ in c.star_units] if c.dropout else []
        self.aux = (MLP(c.aux_units, dropout=c.dropout, output_units=len(self.heads.edges), l2=c.l2,
                        name="auxiliary")
                    if c.auxiliary else None)
        self.towers = {e: MLP(c.tower_units, dropout=c.dropout, output_units=1, l2=c.l2, name=f"tower_{e}")
                       for e in self.heads.edges}

    def _aux_input(self, embedded):
        names = self.embedding.prior_names("scenario") or [self.embedding.dims.scenario]
        return self.embedding.concat(embedded, names)

    def edge_logits(self, embedded, inputs, training=None):
        scenario = inputs[self.embedding.dims.scenario]
        h = self.embedding.concat(embedded)
        if self.pn is not None:
            h = self.pn(h, scenario, training=training)
        for i, layer in enumerate(self.star_layers):
            h = layer(h, scenario)
            if self.star_drops:
                h = self.star_drops[i](h, training=training)
        logits = {e: tower(h, training=training) for e, tower in self.towers.items()}
        if self.aux is not None:
            aux = tf.split(self.aux(self._aux_input(embedded), training=training), len(self.heads.edges), axis=-1)
            logits = {e: logits[e] + a for e, a in zip(self.heads.edges, aux)}
        return logits

    def finalize(self, dataset) -> Dict:
        """Partitioned normalization: population moments of the training data with the final weights
        (:meth:`~models.blocks.star.PartitionedNormalization.estimate_statistics`)."""
        if self.pn is None:
            return {}
        scenario = self.embedding.dims.scenario
        rows = self.pn.estimate_statistics(
            (self.embedding.concat(self.embedding(batch)), batch[scenario]) for batch in dataset)
        return {"partitioned_norm_statistics_rows": rows}

    def shared_layer_variables(self):
        """Shared (centred) kernel and bias of the last star FCN layer."""
        return self.star_layers[-1].shared_variables
