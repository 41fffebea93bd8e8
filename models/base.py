r"""Base class of every model in the zoo: embedding -> model-specific edge logits -> entire-space heads.

A subclass implements :meth:`MultiTaskRanker.edge_logits`, returning one logit ``[batch, 1]`` per edge
of :class:`~models.blocks.heads.EntireSpaceHeads`. The base class applies the sigmoid (in float32, so
mixed precision keeps outputs float32), composes the heads, and trains every supervised head with a
``tfrs.tasks.Ranking`` binary cross-entropy over all impressions:

.. math::

   L = \sum_{h \in H} w_h \, \mathrm{BCE}(p_h, y_h), \qquad
   \mathrm{BCE}(p, y) = -\frac{1}{B} \sum_b \big[y_b \log p_b + (1 - y_b) \log(1 - p_b)\big]

``call`` returns ``{head: [batch, 1]}`` probabilities; labels are read from the ``label_*`` features of the
transformed examples (``features.labels``).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from features.labels import HEAD_TARGETS, label_key
from models.blocks.embedding import FeatureEmbedding
from models.blocks.heads import EntireSpaceHeads
from models.config import ModelConfig, to_dict


class MultiTaskRanker(tfrs.models.Model):
    """Shared machinery: embedding, heads, tasks, loss, config round trip.

    Args:
      input_dims: ``features.dims.InputDims.to_dict()``.
      config: the model's dataclass config (or its dict form).
      with_action: whether the data has a related-action label (adds the action edges and ``ctavr``).
      supervised_heads: heads that get a loss (default: ctr, ctcvr, xcvr, plus ctavr with an action label).
      loss_weights: fixed weight per supervised head (default 1.0).
    """

    config_class = ModelConfig

    def __init__(self, input_dims: Dict, config=None, with_action: bool = False,
                 supervised_heads: Optional[Sequence[str]] = None,
                 loss_weights: Optional[Dict[str, float]] = None, **kwargs):
        super().__init__(**kwargs)
        if config is None or isinstance(config, dict):
            from models.config import parse_config
            config = parse_config(self.config_class, config, source=type(self).__name__)
        self.input_dims = input_dims
        self.config = config
        self.with_action = bool(with_action)
        self.heads = EntireSpaceHeads(with_action=self.with_action, name="heads")
        default_heads = ("ctr", "ctcvr", "xcvr") + (("ctavr",) if self.with_action else ())
        self.supervised_heads = tuple(supervised_heads or default_heads)
        unknown = [h for h in self.supervised_heads if h not in self.heads.output_keys]
        if unknown:
            raise ValueError(f"{type(self).__name__}: supervised heads {unknown} are not outputs "
                             f"{self.heads.output_keys}")
        self.loss_weights = {h: float((loss_weights or {}).get(h, 1.0)) for h in self.supervised_heads}
        self.embedding = FeatureEmbedding(input_dims, config.embedding_dim, config.l2, name="embedding")
        self.tasks = {
            h: tfrs.tasks.Ranking(
                loss=keras.losses.BinaryCrossentropy(),
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

    # ----------------------------------------------------------------- keras API
    def call(self, inputs: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        embedded = self.embedding(inputs)
        logits = self.edge_logits(embedded, inputs, training=training)
        probs = {e: tf.sigmoid(tf.cast(logits[e], tf.float32)) for e in self.heads.edges}
        return self.heads(probs)

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        outputs = self(inputs, training=training)
        loss = tf.constant(0.0)
        for h in self.supervised_heads:
            labels = tf.reshape(tf.cast(inputs[label_key(HEAD_TARGETS[h])], tf.float32), [-1, 1])
            loss += self.loss_weights[h] * self.tasks[h](labels=labels, predictions=outputs[h])
        return loss

    @property
    def output_keys(self):
        return self.heads.output_keys

    def get_config(self):
        return {"input_dims": self.input_dims, "config": to_dict(self.config), "with_action": self.with_action,
                "supervised_heads": list(self.supervised_heads), "loss_weights": dict(self.loss_weights)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
