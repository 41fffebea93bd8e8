r"""EKTM transfer blocks: knowledge router, knowledge transmitter and the enhancement (no-negative-transfer) loss.

Source: "Effective Knowledge Transfer for Multi-Task Recommendation Models", arXiv 2605.05730 (2026). Only
the abstract is public. **What the abstract states** (paper): a *router* integrates knowledge from all tasks
and disseminates it, dynamically allocating cross-task knowledge; each CVR task has a *transmitter* (receiver)
that selectively captures the relevant part of the router's knowledge and transforms it into the target task's
space; an *enhanced module* makes sure the transferred knowledge helps the target task; behaviour patterns are
both *sequential* (impression -> click -> conversion) and *parallel* (sibling behaviours).

**Everything below is our interpretation** (``docs/models.md``, EKTM), not the paper:

Router (:class:`KnowledgeRouter`). Tasks s = 1..N have representations :math:`h_s \in R^d`; a dependency graph
gives every target t a source set :math:`S(t)` and a type per edge, sequential or parallel. Per head
(default 2 heads of width :math:`d_k` = 32):

.. math::

   q_t = W_q h_t, \quad k_s = W_k\, \tilde h_s, \quad v_s = W_v\, \tilde h_s, \qquad
   a_{t,s} = \mathrm{softmax}_{s \in S(t) \cup \{t\}}
       \Big(\frac{q_t \cdot k_s}{\sqrt{d_k}} + b_{type(t,s)}\Big), \qquad r_t = \big\Vert_{heads} \sum_s a_{t,s} v_s

with :math:`\tilde h_s = \mathrm{sg}(h_s)` for :math:`s \ne t` when ``stop_gradient_sources`` (default: a sparse
CVR task cannot drag the dense CTR task's representation) and :math:`\tilde h_t = h_t`. The target is always
one of its own sources, so it can decline transfer. :math:`b_{type}` is one learned bias per head for
sequential and one for parallel edges; the self edge is the reference level with bias 0 (a common shift of
all logits does not change a softmax, so a third bias would be redundant). Sources outside
:math:`S(t) \cup \{t\}` get exactly zero weight. ``attention=False`` (the ``router: off`` ablation) replaces
the attention by the parameter-free uniform average :math:`r_t = \frac{1}{|S(t)|+1}\sum_s \tilde h_s`.
There is no output projection: the transmitter's MLP maps :math:`r_t` into the target's space.

Transmitter (:class:`KnowledgeTransmitter`), one per receiving (CVR) task:

.. math::

   z_t = \mathrm{MLP}_t(r_t) \;(\text{ReLU hidden layers, linear output of width } d), \qquad
   g_t = \sigma(W_g [h_t ; z_t] + b_g) \in (0, 1)^d, \qquad h'_t = h_t + g_t \odot z_t

The gate is element-wise. ``force_zero_gate=True`` sets :math:`g_t = 0`, so :math:`h'_t = h_t` exactly.

Enhanced module (:func:`enhancement_loss`): an auxiliary head on :math:`h_t` alone gives :math:`p_t^{self}`,
the main head on :math:`h'_t` gives :math:`p_t`, and the per-sample hinge

.. math::

   L_{enh} = \frac{1}{B} \sum_b \max\big(0,\;
       \mathrm{BCE}(y_b, p_{t,b}) - \mathrm{BCE}(y_b, \mathrm{sg}(p^{self}_{t,b}))\big)

penalises the samples on which transfer made the loss worse than no transfer (the model adds
:math:`\lambda_{enh} L_{enh}` plus the auxiliary head's own BCE).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.blocks.mlp import MLP

SEQUENTIAL, PARALLEL = "sequential", "parallel"
CONVERSION_EDGES = ("conv_click", "conv_unclick", "conv_action")


def funnel_dependencies(edges: Sequence[str]) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, Tuple[str, ...]]]:
    """Default dependency graph over the behaviour-graph edges (our interpretation of the funnel).

    ``click`` is a source only; ``action`` has the sequential source ``click``; every conversion edge has the
    sequential sources ``click`` and ``action`` and its sibling conversion edges as parallel sources. Edges
    absent from ``edges`` are dropped. Returns ``(sequential, parallel)``: ``{target: sources}``.
    """
    present = set(edges)
    convs = [e for e in CONVERSION_EDGES if e in present]
    sequential, parallel = {}, {}
    if "action" in present and "click" in present:
        sequential["action"] = ("click",)
    for c in convs:
        sequential[c] = tuple(s for s in ("click", "action") if s in present)
        parallel[c] = tuple(s for s in convs if s != c)
    return sequential, parallel


def task_dependencies(tasks: Sequence[Tuple[str, Optional[str]]]) -> Tuple[Dict[str, Tuple[str, ...]],
                                                                         Dict[str, Tuple[str, ...]]]:
    """Dependency graph over a spec's declared tasks ``((task, after), ...)`` (our interpretation; the funnel's
    :func:`funnel_dependencies` is the same rule on the behaviour-graph edges).

    Sequential sources of a task: the tasks on its ``after`` chain, nearest first (a follow after a like after
    a click reads the like and the click). Parallel sources: its siblings, the tasks that come after the same
    task, or, for a task after none, the other tasks after none. Every task with a source is in the result;
    which of them receive is the model's choice (``EKTMConfig.transmit_to``).
    """
    after = dict(tasks)
    sequential, parallel = {}, {}
    for name, parent in tasks:
        chain, seen = [], {name}
        while parent is not None and parent not in seen:
            chain.append(parent)
            seen.add(parent)
            parent = after[parent]
        siblings = tuple(other for other, other_after in tasks if other != name and other_after == after[name])
        if chain:
            sequential[name] = tuple(chain)
        if siblings:
            parallel[name] = siblings
    return sequential, parallel


def binary_crossentropy(y: tf.Tensor, p: tf.Tensor, epsilon: float = 1e-7) -> tf.Tensor:
    r"""Per-sample :math:`-[y \log p + (1-y) \log(1-p)]` with p clipped to :math:`[\epsilon, 1-\epsilon]` (float32)."""
    y = tf.cast(y, tf.float32)
    p = tf.clip_by_value(tf.cast(p, tf.float32), epsilon, 1.0 - epsilon)
    return -(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))


def enhancement_loss(y: tf.Tensor, p: tf.Tensor, p_self: tf.Tensor) -> tf.Tensor:
    r"""EKTM enhancement hinge (our interpretation): :math:`\mathrm{mean}(\mathrm{relu}(\mathrm{BCE}(y, p) -
    \mathrm{BCE}(y, \mathrm{sg}(p_{self}))))`.

    Zero when the prediction with transfer ``p`` has a loss no larger than the no-transfer prediction
    ``p_self`` on every sample; gradients reach ``p`` only (``p_self`` is a fixed reference).
    """
    gap = binary_crossentropy(y, p) - binary_crossentropy(y, tf.stop_gradient(p_self))
    return tf.reduce_mean(tf.nn.relu(gap))


@keras.utils.register_keras_serializable(package="msmt")
class KnowledgeRouter(keras.layers.Layer):
    """Masked multi-head attention from every target task to its allowed source tasks (EKTM router).

    ``call(reps) -> [r_t for t in targets]``: ``reps`` is the list of the N task representations ``[B, d]``;
    ``call(reps, return_weights=True)`` also returns the weights ``[B, T, heads, N]`` (``heads`` = 1 without
    attention), which sum to 1 over N and are exactly 0 outside :math:`S(t) \\cup \\{t\\}`.

    Args:
      num_tasks: N, the number of task representations.
      targets: indices (into the N tasks) of the receiving tasks, in output order.
      sequential, parallel: per target, the indices of its sequential / parallel sources (the target itself
        is always allowed and must not be listed).
      num_heads, key_dim: attention heads and per-head width :math:`d_k` (r_t has width heads x d_k).
      attention: False = uniform average over the allowed sources, no variables (router ablation).
      stop_gradient_sources: stop gradients through the sources other than the target itself.
    """

    def __init__(self, num_tasks: int, targets: Sequence[int], sequential: Sequence[Sequence[int]],
                 parallel: Sequence[Sequence[int]], num_heads: int = 2, key_dim: int = 32, attention: bool = True,
                 stop_gradient_sources: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = int(num_tasks)
        self.targets = [int(t) for t in targets]
        self.sequential = [[int(s) for s in row] for row in sequential]
        self.parallel = [[int(s) for s in row] for row in parallel]
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.attention = bool(attention)
        self.stop_gradient_sources = bool(stop_gradient_sources)
        if not (len(self.sequential) == len(self.parallel) == len(self.targets)):
            raise ValueError("KnowledgeRouter: sequential and parallel need one source list per target")
        T, N = len(self.targets), self.num_tasks
        self_edge, seq, par = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
        for i, t in enumerate(self.targets):
            if not 0 <= t < N:
                raise ValueError(f"KnowledgeRouter: target index {t} out of range [0, {N})")
            self_edge[i, t] = 1.0
            for matrix, sources, kind in ((seq, self.sequential[i], SEQUENTIAL), (par, self.parallel[i], PARALLEL)):
                for s in sources:
                    if not 0 <= s < N or s == t or self_edge[i, s] + seq[i, s] + par[i, s] > 0:
                        raise ValueError(f"KnowledgeRouter: bad {kind} source {s} of target {t} (out of range, "
                                         "the target itself, or listed twice)")
                    matrix[i, s] = 1.0
        self._self_edge, self._seq, self._par = self_edge, seq, par
        self._allowed = self_edge + seq + par  # [T, N] in {0, 1}
        if self.attention:
            width = self.num_heads * self.key_dim
            self.query = keras.layers.Dense(width, use_bias=False, name="query")
            self.key = keras.layers.Dense(width, use_bias=False, name="key")
            self.value = keras.layers.Dense(width, use_bias=False, name="value")

    def build(self, input_shape):
        if self.attention:
            # b_type per head: column 0 = sequential, column 1 = parallel (self edge: 0, the reference level).
            self.type_bias = self.add_weight("type_bias", shape=(self.num_heads, 2), initializer="zeros")
        super().build(input_shape)

    def _heads(self, x):  # [B, M, heads * dk] -> [B, M, heads, dk]
        return tf.reshape(x, [-1, x.shape[1], self.num_heads, self.key_dim])

    def call(self, reps: Sequence[tf.Tensor], return_weights: bool = False):
        h = tf.stack(list(reps), axis=1)  # [B, N, d]
        h_src = tf.stop_gradient(h) if self.stop_gradient_sources else h
        self_edge = tf.constant(self._self_edge, h.dtype)  # [T, N]
        allowed = tf.constant(self._allowed, h.dtype)
        if not self.attention:
            weights = tf.tile((allowed / tf.reduce_sum(allowed, axis=-1, keepdims=True))[None, :, None, :],
                              [tf.shape(h)[0], 1, 1, 1])  # [B, T, 1, N]
            values_live, values_src, dim = h, h_src, h.shape[-1]
            values_live, values_src = values_live[:, :, None, :], values_src[:, :, None, :]  # [B, N, 1, d]
        else:
            q = self._heads(self.query(tf.gather(h, self.targets, axis=1)))  # [B, T, H, dk]
            k_live, k_src = self._heads(self.key(h)), self._heads(self.key(h_src))  # [B, N, H, dk]
            values_live, values_src = self._heads(self.value(h)), self._heads(self.value(h_src))
            scale = tf.cast(tf.sqrt(float(self.key_dim)), h.dtype)
            live = tf.einsum("bthk,bnhk->bthn", q, k_live) / scale
            src = tf.einsum("bthk,bnhk->bthn", q, k_src) / scale
            is_self = tf.cast(self_edge, tf.bool)[None, :, None, :]  # [1, T, 1, N]
            logits = tf.where(is_self, live, src)
            bias = tf.cast(self.type_bias, h.dtype)  # [H, 2]
            type_bias = (tf.constant(self._seq, h.dtype)[:, None, :] * bias[None, :, 0:1]
                         + tf.constant(self._par, h.dtype)[:, None, :] * bias[None, :, 1:2])  # [T, H, N]
            logits = logits + type_bias[None]
            mask = tf.cast(allowed, tf.bool)[None, :, None, :]
            logits = tf.where(mask, logits, tf.ones_like(logits) * logits.dtype.min)
            weights = tf.nn.softmax(logits, axis=-1) * allowed[None, :, None, :]  # exact zeros outside S(t) u {t}
            dim = self.num_heads * self.key_dim
        w_self = weights * self_edge[None, :, None, :]
        r = (tf.einsum("bthn,bnhk->bthk", w_self, values_live)
             + tf.einsum("bthn,bnhk->bthk", weights - w_self, values_src))  # [B, T, H, dk]
        r = tf.reshape(r, [-1, len(self.targets), dim])
        out = tf.unstack(r, axis=1)
        return (out, weights) if return_weights else out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_tasks=self.num_tasks, targets=self.targets, sequential=self.sequential,
                   parallel=self.parallel, num_heads=self.num_heads, key_dim=self.key_dim,
                   attention=self.attention, stop_gradient_sources=self.stop_gradient_sources)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class KnowledgeTransmitter(keras.layers.Layer):
    """Gated fusion of routed knowledge into one task: ``call([h_t, r_t]) -> h'_t = h_t + g_t * MLP_t(r_t)``.

    Args:
      hidden_units: ReLU hidden widths of :math:`\\mathrm{MLP}_t` (its linear output has the width d of h_t).
      force_zero_gate: :math:`g_t = 0`, so the output is exactly :math:`h_t` (tests / "model = backbone").
      dropout, l2: of the MLP.

    ``call(..., return_gate=True)`` also returns :math:`g_t` ``[B, d]``.
    """

    def __init__(self, hidden_units: Sequence[int] = (64,), force_zero_gate: bool = False, dropout: float = 0.0,
                 l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.force_zero_gate = bool(force_zero_gate)
        self.dropout, self.l2 = float(dropout), float(l2)

    def build(self, input_shape):
        d = int(tf.TensorShape(input_shape[0])[-1])
        self.mlp = MLP(self.hidden_units, dropout=self.dropout, output_units=d, l2=self.l2, name="mlp")
        self.gate = keras.layers.Dense(d, activation="sigmoid", name="gate")
        super().build(input_shape)

    def call(self, inputs, training=None, return_gate: bool = False):
        h, r = inputs
        z = tf.cast(self.mlp(r, training=training), h.dtype)
        g = self.gate(tf.concat([h, z], axis=-1))
        if self.force_zero_gate:
            g = tf.zeros_like(g)
        out = h + g * z
        return (out, g) if return_gate else out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(hidden_units=self.hidden_units, force_zero_gate=self.force_zero_gate, dropout=self.dropout,
                   l2=self.l2)
        return cfg
