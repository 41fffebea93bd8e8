r"""AITM: Adaptive Information Transfer Multi-task framework (Xi et al., "Modeling the Sequential Dependence among
Audience Multi-step Conversions with Multi-task Learning in Targeted Display Advertising", KDD 2021,
arXiv:2105.08489).

The tasks follow the funnel click -> action (only with an action label) -> conversion and share the
embedding :math:`x`. Every task has a tower :math:`q_t = \mathrm{MLP}_t(x)`; an AIT module
(:class:`~models.blocks.transfer.AttentionTransfer`) passes information down the funnel:

.. math::

   z_1 = q_1, \qquad z_t = \mathrm{AIT}_t(z_{t-1}, q_t) \;(t \ge 2), \qquad \hat y_t = \sigma(W_t z_t + b_t)

and every :math:`\hat y_t` is an **end-to-end** probability over all impressions, trained with its own BCE:

* ``ctr``   = :math:`\hat y_{click}` = P(click | imp), label ``click``;
* ``ctavr`` = :math:`\hat y_{action}` = P(click & action | imp), label ``ctavr`` (with an action label);
* ``ctcvr`` = :math:`\hat y_{conv}` = P(click & conv | imp), label ``ctcvr``;
* ``xcvr`` = ``ctcvr``: AITM has no path for conversions without a click, so P(conv | imp) is approximated by
  P(click & conv | imp) and ``xcvr`` is not supervised by default (``supervised_heads`` can add it).

There is no ``cvr`` output (AITM does not model P(conv | click) as a factor). The behavioural expectation
calibrator (:func:`~models.blocks.transfer.calibrator_loss`) is the auxiliary loss

.. math::

   L_{lc} = \alpha \sum_{t \ge 2} \mathrm{mean}\big(\max(\hat y_t - \hat y_{up(t)}, 0)\big), \qquad \alpha = 0.6

with :math:`up(t) = t-1` (the paper, ``calibrator_upstream: previous``) or click
(``calibrator_upstream: click``: conversions in this project's behaviour graph do not require the action,
so ctcvr <= ctavr is not a true constraint there; ctavr <= ctr and ctcvr <= ctr are). :math:`\alpha` = 0.6
is the weight of the authors' Ali-CCP run (README of github.com/xidongbo/AITM; their code defaults to 0.3).

Not in the paper: the calibrator is a soft constraint, so raw predictions can violate the funnel order. With
``funnel_projection`` (default) the outputs at inference (``training`` false) are capped by the click
probability, :math:`\hat y_t \leftarrow \min(\hat y_t, \hat y_{click})`, so ``ctavr <= ctr`` and
``ctcvr <= ctr`` always hold for serving and evaluation (only constraints that the labels imply: ctcvr is not
capped by ctavr, since a conversion does not require the action); training uses the raw predictions and the
calibrator, exactly as the paper. Caveat, measured in ``aitm_test`` (``tiny_batch``, 30 steps): with
``calibrator_upstream: previous`` the ctcvr <= ctavr term fights the labels when conversions happen without
the action (the calibrator rises from 0.016 to 0.094 during training); ``click`` avoids it.
Differences from the authors' code: no batch normalisation in the towers; each AIT module has its own
:math:`h_{1..3}` (shared in their code; identical with two tasks).

Declared tasks (a spec's ``tasks`` other than the funnel): every task has its tower, each task with an
``after`` gets an AIT module from that task's representation (a forest of chains instead of one funnel), every
output is the task's end-to-end probability (label ``label_<task>``), and the calibrator and the projection
bound each task by the task it comes after.

GradNorm's shared layer W is the last hidden layer of the click tower (the first task's): :math:`q_1 = z_1`
feeds the click head directly and every later task through the AIT chain, so every task's loss reaches it (the
embedding is shared too, but its gradients are sparse and huge).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import tensorflow as tf
import tf_keras as keras

from models.base import MultiTaskRanker
from models.blocks.heads import topological_tasks
from models.blocks.mlp import MLP
from models.blocks.transfer import AttentionTransfer, calibrator_loss
from models.config import ConfigError, ModelConfig

# Funnel task -> entire-space output key.
TASK_HEADS = {"click": "ctr", "action": "ctavr", "conversion": "ctcvr"}


@dataclasses.dataclass(frozen=True)
class AITMConfig(ModelConfig):
    """``tower_units``: the per-task towers giving :math:`q_t`. ``attention_dim``: AIT width k (None = the
    tower width). ``calibrator_weight``: :math:`\\alpha`. ``calibrator_upstream``: previous | click.
    ``funnel_projection``: project inference outputs onto the funnel order."""

    embedding_dim: int = 8  # tuned (docs/defaults.md)
    attention_dim: Optional[int] = None
    calibrator_weight: float = 0.6
    calibrator_upstream: str = "previous"
    funnel_projection: bool = True

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.calibrator_upstream not in ("previous", "click"):
            raise ConfigError(f"{source}: calibrator_upstream must be 'previous' or 'click', "
                              f"got {self.calibrator_upstream!r}")
        if self.calibrator_weight < 0:
            raise ConfigError(f"{source}: calibrator_weight must be >= 0, got {self.calibrator_weight}")
        if self.attention_dim is not None and self.attention_dim < 1:
            raise ConfigError(f"{source}: attention_dim must be >= 1, got {self.attention_dim}")


class AITM(MultiTaskRanker):
    """Towers per funnel task, AIT between consecutive tasks, end-to-end outputs and the calibrator."""

    config_class = AITMConfig
    reference = ("Xi et al., Modeling the Sequential Dependence among Audience Multi-step Conversions with "
                 "Multi-task Learning in Targeted Display Advertising (AITM), KDD 2021")
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 1}
    has_unclick_edge = False
    default_supervised = ("ctr", "ctavr", "ctcvr")

    def build_layers(self) -> None:
        c = self.config
        if self.task_graph is None:
            self.funnel = ["click"] + (["action"] if self.with_action else []) + ["conversion"]
            self.transfer_from = dict(zip(self.funnel[1:], self.funnel))  # each task from the one before
        else:  # declared tasks: each task from the one it comes after; a task after none starts a chain
            ordered = topological_tasks(self.task_graph)
            self.funnel = [t for t, _ in ordered]
            self.transfer_from = {t: a for t, a in ordered if a is not None}
        self.task_towers = {t: MLP(c.tower_units, dropout=c.dropout, l2=c.l2, name=f"tower_{t}")
                            for t in self.funnel}
        self.transfers = {t: AttentionTransfer(c.attention_dim, dropout=c.dropout, l2=c.l2, name=f"ait_{t}")
                          for t in self.funnel if t in self.transfer_from}
        self.logits = {t: keras.layers.Dense(1, name=f"logit_{t}") for t in self.funnel}

    def head_of(self, task: str) -> str:
        """The output key of a task's end-to-end probability (the funnel's heads, or the task's own name)."""
        return TASK_HEADS[task] if self.task_graph is None else task

    @classmethod
    def outputs_for(cls, config, with_action: bool, view_through: bool):
        """The entire-space heads of the funnel tasks: no ``cvr`` output."""
        return tuple(k for k in super().outputs_for(config, with_action, view_through) if k != "cvr")

    @property
    def edge_names(self):
        return self.funnel

    def edge_events(self):
        """The funnel tasks are entire-space events: P(click), P(click, action), P(click, conversion); a declared
        task is P(task) over all impressions."""
        if self.task_graph is not None:
            return {t: ((f"+{t}",), ()) for t in self.funnel}
        events = {"click": (("+click",), ()), "action": (("+click", "+raction"), ()),
                  "conversion": (("+click", "+conversion"), ())}
        return {t: events[t] for t in self.funnel}

    def upstream(self, task: str) -> str:
        """The task whose probability bounds ``task``'s in the calibrator (a declared task: its ``after``)."""
        if self.task_graph is None and self.config.calibrator_upstream == "click":
            return "click"
        return self.transfer_from[task]

    def task_representations(self, embedded, training=None, return_attention: bool = False):
        """``{task: z_t}`` (and ``{task: attention [B, 2]}`` over (p_{t-1}, q_t) for t >= 2)."""
        x = self.embedding.concat(embedded)
        z, attention = {}, {}
        for t in self.funnel:
            q = self.task_towers[t](x, training=training)
            if t in self.transfer_from:
                z[t], attention[t] = self.transfers[t]([z[self.transfer_from[t]], q], training=training,
                                                       return_attention=True)
            else:
                z[t] = q
        return (z, attention) if return_attention else z

    def edge_logits(self, embedded, inputs, training=None) -> Dict[str, tf.Tensor]:
        """Logits of the funnel tasks (not of heads.edges: AITM does not use the edge composition)."""
        z = self.task_representations(embedded, training=training)
        return {t: self.logits[t](z[t]) for t in self.funnel}

    def compose(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = {self.head_of(t): edge_probs[t] for t in self.funnel}
        if self.task_graph is None:
            out["xcvr"] = out["ctcvr"]
        return out

    def project(self, outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Funnel projection: every later task's end-to-end probability is capped by the click probability (a
        declared task's by the task it comes after, along the chain)."""
        probs = {t: outputs[self.head_of(t)] for t in self.funnel}
        for t in self.funnel:  # topological order: a task's cap is already capped
            if t in self.transfer_from:
                probs[t] = tf.minimum(probs[t], probs["click" if self.task_graph is None else self.transfer_from[t]])
        return self.compose(probs)

    def call(self, inputs, training=None):
        outputs = super().call(inputs, training=training)
        if self.config.funnel_projection and not training:
            projected = self.project(outputs)
            outputs = {k: projected[k] for k in outputs}
        return outputs

    def auxiliary_loss(self, inputs, outputs, training=None) -> tf.Tensor:
        """:math:`\\alpha \\sum_t \\mathrm{mean}(\\max(\\hat y_t - \\hat y_{up(t)}, 0))` (0 on projected outputs)."""
        terms = [calibrator_loss(outputs[self.head_of(t)], outputs[self.head_of(self.upstream(t))])
                 for t in self.funnel if t in self.transfer_from]
        return self.config.calibrator_weight * tf.add_n(terms) if terms else tf.constant(0.0)

    def shared_layer_variables(self) -> List[tf.Variable]:
        return self.task_towers[self.funnel[0]].hidden[-1].trainable_variables
