r"""Base class of every model in the zoo: embedding -> model-specific edge logits -> entire-space heads.

A subclass implements :meth:`MultiTaskRanker.edge_logits`, returning one logit ``[batch, 1]`` per edge
of :class:`~models.blocks.heads.EntireSpaceHeads`. The base class applies the sigmoid (in float32, so
mixed precision keeps outputs float32), composes the heads, and trains every supervised head with a
``tfrs.tasks.Ranking`` binary cross-entropy over all impressions:

.. math::

   L = \sum_{h \in H} w_h \, \mathrm{BCE}(p_h, y_h), \qquad
   \mathrm{BCE}(p, y) = -\frac{1}{B} \sum_b \big[y_b \log p_b + (1 - y_b) \log(1 - p_b)\big]

where the weights :math:`w_h` come from the run's loss-weighting strategy (``models.losses.weighting``:
fixed, uncertainty, GradNorm or DWA); a model may add auxiliary losses (``auxiliary_loss``).

Under a ``tf.distribute`` strategy with replicas :math:`r` holding :math:`b_r` of the global batch
:math:`B = \sum_r b_r`, replica :math:`r` differentiates :math:`\frac{b_r}{B} L_r + \frac{1}{R} \Omega`
(:math:`L_r` its local loss, :math:`\Omega` the regularization, :math:`R` replicas); the optimizer sums the
replicas' gradients, which gives exactly the gradient of the global-batch loss, as on one device. The
per-head losses, GradNorm's shared-layer gradients and the reported losses are summed across replicas the
same way, so every loss-weighting strategy sees global-batch values on every replica.
``call`` returns ``{head: [batch, 1]}`` probabilities; labels are read from the ``label_*`` features of the
transformed examples (``features.labels``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from features.labels import HEAD_TARGETS, label_key
from models.blocks.embedding import FeatureEmbedding
from models.blocks.heads import EntireSpaceHeads
from models.blocks.scenario import scenario_weights
from models.config import ModelConfig, parse_config, to_dict
from models.losses.weighting import WeightingConfig, make_weighting


class MultiTaskRanker(tfrs.models.Model):
    """Shared machinery: embedding, heads, tasks, loss, config round trip.

    Args:
      input_dims: ``features.dims.InputDims.to_dict()``.
      config: the model's dataclass config (or its dict form).
      with_action: whether the data has a related-action label (adds the action edges and ``ctavr``).
      supervised_heads: heads that get a loss (default: ctr, ctcvr, xcvr, plus ctavr with an action label).
      weighting: ``WeightingConfig`` (or its dict): how the supervised heads' losses are combined.
    """

    config_class = ModelConfig
    supports_action = True  # whether the model has the action edges when the data has an action label
    has_unclick_edge = True  # whether the model has the view-through conversion edge (conv_unclick)
    default_supervised = ("ctr", "ctcvr", "xcvr", "ctavr")
    declared_outputs = ("ctr", "cvr", "ctcvr", "xcvr")  # for `msmt models`; ctavr is added with an action label

    def __init__(self, input_dims: Dict, config=None, with_action: bool = False,
                 supervised_heads: Optional[Sequence[str]] = None,
                 weighting=None, **kwargs):
        super().__init__(**kwargs)
        # train_step/test_step return global-batch values, identical on every replica: report the first one
        # (Keras' default sums the replicas' logs).
        self.distribute_reduction_method = "first"
        if config is None or isinstance(config, dict):
            config = parse_config(self.config_class, config, source=type(self).__name__)
        if weighting is None or isinstance(weighting, dict):
            weighting = parse_config(WeightingConfig, weighting, source=f"{type(self).__name__} weighting")
        self.input_dims = input_dims
        self.config = config
        self.with_action = bool(with_action)
        self.heads = EntireSpaceHeads(with_action=self.with_action and self.supports_action,
                                      with_unclick=self.has_unclick_edge, name="heads", dtype="float32")
        default_heads = tuple(h for h in self.default_supervised if h in self.output_keys)
        self.supervised_heads = tuple(supervised_heads or default_heads)
        unknown = [h for h in self.supervised_heads if h not in self.output_keys]
        if unknown:
            raise ValueError(f"{type(self).__name__}: supervised heads {unknown} are not outputs "
                             f"{self.output_keys}")
        self.weighting_config = weighting
        # Training-only state (Keras tracks it, so it is saved too; serving does not use it).
        self._weighting = make_weighting(self.supervised_heads, weighting)
        self.embedding = FeatureEmbedding(input_dims, config.embedding_dim, config.l2, name="embedding")
        self.tasks = {
            h: tfrs.tasks.Ranking(
                # Per-example losses, averaged in head_losses: Keras refuses its own batch reduction
                # inside a distribution strategy's replica context.
                loss=keras.losses.BinaryCrossentropy(reduction=keras.losses.Reduction.NONE),
                metrics=[keras.metrics.AUC(name=f"{h}_auc")], name=f"task_{h}")
            for h in self.supervised_heads
        }
        self.build_layers()

    # ----------------------------------------------------------------- subclass API
    def build_layers(self) -> None:
        """Create the model's own layers (called at the end of ``__init__``)."""
        raise NotImplementedError

    def edge_logits(self, embedded: Dict[str, tf.Tensor], inputs: Dict[str, tf.Tensor],
                    training=None) -> Dict[str, tf.Tensor]:
        """Return ``{edge: logit [batch, 1]}`` for every edge in ``self.heads.edges``."""
        raise NotImplementedError

    def compose(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Edge probabilities -> head outputs (entire-space composition by default)."""
        return self.heads(edge_probs)

    def auxiliary_loss(self, inputs, outputs, training=None) -> tf.Tensor:
        """Extra loss terms of the model (e.g. a calibrator); 0 by default."""
        return tf.constant(0.0)

    def scenario_routing(self, inputs) -> tf.Tensor:
        """Routing weights ``[B, S]`` of each sample's scenario (``models.blocks.scenario.scenario_weights``)."""
        dims = self.embedding._dims
        return scenario_weights(inputs[dims.scenario], dims.num_scenarios)

    def shared_layer_variables(self) -> List[tf.Variable]:
        """The shared layer W on which GradNorm balances gradient norms."""
        raise NotImplementedError(f"{type(self).__name__} does not name a shared layer for GradNorm")

    # ----------------------------------------------------------------- keras API
    def call(self, inputs: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        embedded = self.embedding(inputs)
        logits = self.edge_logits(embedded, inputs, training=training)
        probs = {e: tf.sigmoid(tf.cast(logits[e], tf.float32)) for e in logits}
        return self.compose(probs)

    def head_losses(self, inputs, outputs) -> Dict[str, tf.Tensor]:
        """Batch-mean BCE of every supervised head over this replica's batch (updates the tasks' AUC metrics)."""
        losses = {}
        for h in self.supervised_heads:
            labels = tf.reshape(tf.cast(inputs[label_key(HEAD_TARGETS[h])], tf.float32), [-1, 1])
            per_example = self.tasks[h](labels=labels, predictions=tf.cast(outputs[h], tf.float32))
            losses[h] = tf.reduce_mean(per_example)
        return losses

    def _batch_share(self, inputs):
        """(:math:`b_r / B`, R): this replica's share of the global batch and the number of replicas.

        ``(1.0, 1)`` without a distribution strategy (or with one replica)."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return 1.0, 1
        local = tf.cast(tf.shape(inputs[label_key(HEAD_TARGETS[self.supervised_heads[0]])])[0], tf.float32)
        return local / ctx.all_reduce(tf.distribute.ReduceOp.SUM, local), ctx.num_replicas_in_sync

    @staticmethod
    def _sum_over_replicas(value, replicas: int):
        """Sum a (nested) tensor over the replicas (identity with one replica)."""
        if replicas == 1:
            return value
        ctx = tf.distribute.get_replica_context()
        return tf.nest.map_structure(lambda v: ctx.all_reduce(tf.distribute.ReduceOp.SUM, v), value)

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        """The global-batch loss (what ``tfrs.Model.test_step`` reports)."""
        share, replicas = self._batch_share(inputs)
        outputs = self(inputs, training=training)
        local = self._weighting.combine(self.head_losses(inputs, outputs))
        local += self.auxiliary_loss(inputs, outputs, training=training)
        return self._sum_over_replicas(share * local, replicas)

    def train_step(self, inputs):
        weighting = self._weighting
        share, replicas = self._batch_share(inputs)
        with tf.GradientTape(persistent=weighting.needs_shared_gradients) as tape:
            outputs = self(inputs, training=True)
            local_losses = self.head_losses(inputs, outputs)
            # This replica's part of each global-batch head loss (inside the tape: GradNorm differentiates it).
            shared_losses = {h: share * l for h, l in local_losses.items()}
            local_loss = weighting.combine(local_losses) + self.auxiliary_loss(inputs, outputs, training=True)
            regularization_loss = tf.add_n(self.losses) if self.losses else tf.constant(0.0)
            objective = share * local_loss + regularization_loss / float(replicas)
            scaled = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
            if scaled:
                objective = self.optimizer.get_scaled_loss(objective)
        # Keras tracks the weighting's variables too: de-duplicate, and leave GradNorm's w to its own update.
        seen, variables = set(), []
        for v in list(self.trainable_variables) + list(weighting.trainable):
            if v.ref() not in seen and v.ref() not in weighting.internal_refs:
                seen.add(v.ref())
                variables.append(v)
        grads = tape.gradient(objective, variables)
        if scaled:
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables) if g is not None])
        shared_grads = None
        if weighting.needs_shared_gradients:
            shared = self.shared_layer_variables()  # built by now
            shared_grads = []
            for h in self.supervised_heads:
                gs = tape.gradient(shared_losses[h], shared)
                flat = tf.concat([tf.reshape(g, [-1]) for g in gs if g is not None], axis=0)
                shared_grads.append(self._sum_over_replicas(flat, replicas))
            del tape
        losses = self._sum_over_replicas(shared_losses, replicas)
        loss = self._sum_over_replicas(share * local_loss, replicas)
        weighting.after_step(losses, shared_grads)
        metrics = {m.name: m.result() for m in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss, total_loss=loss + regularization_loss)
        metrics.update(weighting.report(losses))
        return metrics

    @property
    def weighting(self):
        return self._weighting

    @property
    def output_keys(self):
        return self.heads.output_keys

    def get_config(self):
        return {"input_dims": self.input_dims, "config": to_dict(self.config), "with_action": self.with_action,
                "supervised_heads": list(self.supervised_heads), "weighting": to_dict(self.weighting_config)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class EdgeTowersRanker(MultiTaskRanker):
    """Towers per edge directly on the shared embedding (ESMM, ESM2): only the embedding is shared."""

    def build_layers(self) -> None:
        from models.blocks.towers import EdgeTowers

        c = self.config
        self.towers = EdgeTowers(self.heads.edges, c.tower_units, c.dropout, c.l2, name="towers")

    def edge_logits(self, embedded, inputs, training=None):
        return self.towers(self.embedding.concat(embedded), training=training)

    def shared_layer_variables(self):
        return self.embedding.trainable_variables
