r"""Entire-space composition heads: conditional edge probabilities -> probabilities over all impressions.

Edges of the post-impression behaviour graph (docs/models.md; ESMM, Ma et al. SIGIR 2018;
ESM2, Wen et al. SIGIR 2020), each a sigmoid tower output computed for every impression:

==============  ====  ==========================================
edge            name  conditional probability
==============  ====  ==========================================
``click``       y1    P(click | impression)
``conv_click``  y2    P(conv | click, no action)  (P(conv | click) when there is no action edge)
``conv_unclick`` y3   P(conv | no click)           (view-through conversions)
``action``      y4    P(action | click)            (optional)
``conv_action`` y5    P(conv | click, action)      (optional, with ``action``)
==============  ====  ==========================================

Composition (with y4 = 0 when there is no action edge):

.. math::

   ctr = y_1, \quad cvr = y_2 (1 - y_4) + y_4 y_5, \quad ctcvr = ctr \cdot cvr, \quad
   ctavr = y_1 y_4, \quad xcvr = ctcvr + (1 - y_1)\, y_3

so ``ctcvr <= ctr`` and ``ctcvr <= xcvr`` hold by construction, and unclicked conversions are modelled.
Outputs: ``ctr``, ``cvr``, ``ctcvr``, ``xcvr`` and, with an action edge, ``ctavr``. A model without the
``conv_unclick`` edge (``with_unclick=False``, e.g. ESMM) has :math:`y_3 \equiv 0`, so ``xcvr = ctcvr``.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import tensorflow as tf
import tf_keras as keras

BASE_EDGES = ("click", "conv_click", "conv_unclick")
ACTION_EDGES = ("action", "conv_action")

# Edge -> (event, condition) as label roles that must be 1 (+role) or 0 (-role): the edge's base rate is
# P(event | condition) over the training impressions (used to start each edge logit at it).
EDGE_EVENTS = {
    "click": (("+click",), ()),
    "conv_click": (("+conversion",), ("+click", "-raction")),  # without action edges: ("+click",)
    "conv_unclick": (("+conversion",), ("-click",)),
    "action": (("+raction",), ("+click",)),
    "conv_action": (("+conversion",), ("+click", "+raction")),
}


@keras.utils.register_keras_serializable(package="msmt")
class EntireSpaceHeads(keras.layers.Layer):
    """Composes edge probabilities ``{edge: [batch, 1]}`` into entire-space head probabilities."""

    def __init__(self, with_action: bool = False, with_unclick: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.with_action = bool(with_action)
        self.with_unclick = bool(with_unclick)

    @property
    def edges(self):
        base = BASE_EDGES if self.with_unclick else tuple(e for e in BASE_EDGES if e != "conv_unclick")
        return base + (ACTION_EDGES if self.with_action else ())

    def edge_events(self):
        """``{edge: (event, condition)}`` of this composition's edges (:data:`EDGE_EVENTS`)."""
        out = {e: EDGE_EVENTS[e] for e in self.edges}
        if not self.with_action:
            out["conv_click"] = (("+conversion",), ("+click",))
        return out

    @staticmethod
    def keys_for(with_action: bool):
        """Output keys of the composition (``ctavr`` only with the action edges)."""
        return ("ctr", "cvr", "ctcvr", "xcvr") + (("ctavr",) if with_action else ())

    @property
    def output_keys(self):
        return self.keys_for(self.with_action)

    def call(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        y1, y2 = edge_probs["click"], edge_probs["conv_click"]
        y3 = edge_probs["conv_unclick"] if self.with_unclick else tf.zeros_like(y1)
        if self.with_action:
            y4, y5 = edge_probs["action"], edge_probs["conv_action"]
            cvr = y2 * (1.0 - y4) + y4 * y5
        else:
            cvr = y2
        ctcvr = y1 * cvr
        out = {"ctr": y1, "cvr": cvr, "ctcvr": ctcvr, "xcvr": ctcvr + (1.0 - y1) * y3}
        if self.with_action:
            out["ctavr"] = y1 * y4
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(with_action=self.with_action, with_unclick=self.with_unclick)
        return cfg


def topological_tasks(tasks) -> Tuple[Tuple[str, Optional[str]], ...]:
    """``(task, after)`` pairs ordered so that every task comes after the one it depends on (declared order
    otherwise)."""
    after = dict(tasks)
    ordered: list = []

    def visit(name):
        if name not in ordered:
            if after[name] is not None:
                visit(after[name])
            ordered.append(name)

    for name, _ in tasks:
        visit(name)
    return tuple((name, after[name]) for name in ordered)


@keras.utils.register_keras_serializable(package="msmt")
class TaskChainHeads(keras.layers.Layer):
    r"""Composes the edges of declared tasks (``features.spec.Task``) into one impression-level head per task.

    Each task :math:`t` has one edge, its probability given the task it comes ``after`` (:math:`a(t)`), or given
    the impression when it comes after none; the head multiplies the edges along the chain, as ESMM composes
    ``ctcvr`` (Ma et al., SIGIR 2018):

    .. math::

       p_t = \sigma(z_t) \cdot p_{a(t)}, \qquad p_t = \sigma(z_t) \text{ when } t \text{ is after no task}

    so a task is never more likely than the one it comes after (a like never above its click). Edge
    :math:`t` is learned where it applies through the heads' losses over all impressions, and its base rate is
    :math:`P(t \mid a(t))` (``edge_events``). Outputs: one key per task, named after it.
    """

    def __init__(self, tasks=(), **kwargs):
        super().__init__(**kwargs)
        self.tasks = tuple((str(name), None if after is None else str(after)) for name, after in tasks)
        names = [name for name, _ in self.tasks]
        if not names or len(set(names)) != len(names) or any(a is not None and a not in names for _, a in self.tasks):
            raise ValueError(f"TaskChainHeads: tasks must be distinct (name, after) pairs whose 'after' is one "
                             f"of them, got {self.tasks}")

    @property
    def edges(self):
        return tuple(name for name, _ in self.tasks)

    @property
    def output_keys(self):
        return self.edges

    def edge_events(self):
        """``{task: (("+task",), ("+after",))}``: each edge predicts its task where the one before is positive."""
        return {name: ((f"+{name}",), (f"+{after}",) if after else ()) for name, after in self.tasks}

    def call(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        after = dict(self.tasks)
        out: Dict[str, tf.Tensor] = {}

        def head(name):
            if name not in out:
                out[name] = edge_probs[name] if after[name] is None else edge_probs[name] * head(after[name])
            return out[name]

        return {name: head(name) for name in self.edges}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(tasks=[list(t) for t in self.tasks])
        return cfg
