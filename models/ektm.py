r"""EKTM: Effective Knowledge Transfer for Multi-task recommendation ("Effective Knowledge Transfer for Multi-Task
Recommendation Models", arXiv 2605.05730, 2026). Design (ours, from the abstract): ``docs/models.md``.

**From the paper (abstract only)**: a router integrates knowledge from all tasks and disseminates it; every
CVR task has a transmitter that selectively captures the relevant knowledge and maps it into its own space;
an enhanced module makes sure transfer helps (no negative transfer); task relations are sequential and
parallel.

**Our interpretation** (docs/models.md, EKTM; every part behind a config switch). The tasks are the edges of
the behaviour graph (:class:`~models.blocks.heads.EntireSpaceHeads`: click, conv_click, conv_unclick
[, action, conv_action]).

1. Backbone -> one representation per edge, :math:`h_e`: ``backbone: ple`` (default;
   :class:`~models.blocks.cgc.PLE` over the edges) or ``backbone: aem2tl`` (AEM2TL's scenario-aware
   :class:`~models.blocks.scenario.ScenarioCGC` + :class:`~models.blocks.scenario.ScenarioTaskCGC`, routed by
   :func:`~models.blocks.scenario.scenario_weights`; "EKTM on AEM2TL" is this config, not a new model).
2. Router (:class:`~models.blocks.ektm.KnowledgeRouter`) over the dependency graph: by default
   (:func:`~models.blocks.ektm.funnel_dependencies`) click is a source only, action <- {click} sequential,
   each conversion edge <- {click, action} sequential + its sibling conversion edges parallel:
   :math:`a_{t,s} = \mathrm{softmax}_{s \in S(t)\cup\{t\}}(q_t \cdot k_s/\sqrt{d_k} + b_{type(t,s)})`,
   :math:`r_t = \sum_s a_{t,s} v_s`, multi-head, stop-gradient on the sources.
3. Transmitter (:class:`~models.blocks.ektm.KnowledgeTransmitter`) for the receiving edges ``transmit_to``
   (default: the conversion edges): :math:`h'_t = h_t + \sigma(W_g[h_t; z_t] + b_g) \odot z_t`,
   :math:`z_t = \mathrm{MLP}_t(r_t)`. Other edges (click, action) keep :math:`h'_e = h_e`.
4. One MLP tower per edge on :math:`h'_e`; the entire-space heads compose ctr, cvr, ctcvr, xcvr (, ctavr).
5. Enhanced module (``enhance``): a self head per receiving edge on :math:`h_t` alone gives
   :math:`p^{self}_t`. The labels exist for entire-space heads, not for the conditional edges, so both
   predictions are compared through the composition: :math:`P_t` = the entire-space head fed by edge t
   (``ENTIRE_SPACE_HEAD``: conv_click, conv_action -> ctcvr; conv_unclick -> xcvr; action -> ctavr) computed
   with edge t's probability and the other edges' probabilities held fixed (stop-gradient), and
   :math:`P^{self}_t` the same head with :math:`p^{self}_t` in place of edge t. The auxiliary loss is

   .. math::

      \sum_t \Big[\lambda_{enh}\, \mathrm{mean}\big(\mathrm{relu}(\mathrm{BCE}(y, P_t) - \mathrm{BCE}(y,
      \mathrm{sg}(P^{self}_t)))\big) + \lambda_{self}\, \mathrm{BCE}(y, P^{self}_t)\Big]
      + \lambda_{cal} \sum_{(d, u)} \mathrm{mean}(\mathrm{relu}(P_d - P_u))

   The self head's BCE also reaches the backbone through :math:`h_t` (deep supervision of the task's own
   representation); the hinge reaches only edge t's path (tower, transmitter, router, :math:`h_t`).
   The last sum is the funnel-consistency calibrator over the entire-space head pairs implied by the
   sequential edges of the graph whose downstream event implies the upstream one (ctavr <= ctr,
   ctcvr <= ctr; xcvr <= ctr only without the view-through edge, which EKTM always has). Under
   EntireSpaceHeads these orders hold by construction, so with the default composition the term is exactly
   0; it is kept (two relu's) so that it stays correct for a composition that does not guarantee them.

Declared tasks (a spec's ``tasks`` other than the funnel, ``features.labels.task_graph``): the edges are the
tasks, composed along their ``after`` chains (:class:`~models.blocks.heads.TaskChainHeads`); the router's graph
is :func:`~models.blocks.ektm.task_dependencies` (sequential sources: the task's ``after`` chain; parallel
sources: the tasks that come after the same task, or the other tasks after none); every task with a source
receives, except the first declared task, which stays a source only as click does in the funnel; the enhancer
compares the task's own head with and without transfer, and the calibrator pairs are the ``after`` chains'
(exactly 0 under the chained composition).

Ablations: ``router: false`` -> uniform average over the allowed sources (no router variables);
``transmitter: false`` -> the receiving tower reads :math:`[h_t; r_t]` (no transmitter MLP/gate variables;
wider first tower layer); ``enhance: false`` -> no self heads (no self-head variables) and no hinge / self BCE.
``transmit_to: []`` removes router and transmitters, leaving the backbone + towers.

Defaults (docs/models.md): :math:`d_k` = 32, 2 heads, transmitter MLP [64, d], :math:`\lambda_{enh}` = 0.1,
:math:`\lambda_{cal}` = 0.1, stop-gradient on sources; :math:`\lambda_{self}` = 1 (docs/models.md: "plus the
auxiliary head's own BCE"). GradNorm's shared layer W: the last layer of the top-level shared experts (ple) or
of the scenario-shared experts (aem2tl), reached by every edge.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from features.labels import label_key
from features.spec import describe_tasks
from models.base import AUX_PREFIX, MultiTaskRanker
from models.blocks.cgc import PLE
from models.blocks.ektm import (CONVERSION_EDGES, KnowledgeRouter, KnowledgeTransmitter, binary_crossentropy,
                                enhancement_loss, funnel_dependencies, task_dependencies)
from models.blocks.heads import ACTION_EDGES, BASE_EDGES
from models.blocks.scenario import ScenarioCGC, ScenarioTaskCGC
from models.blocks.towers import EdgeTowers
from models.blocks.transfer import calibrator_loss
from models.config import ConfigError, ModelConfig, TaskMismatchError

ALL_EDGES = BASE_EDGES + ACTION_EDGES
# Edge -> the entire-space head whose event it leads to (and whose label supervises it).
ENTIRE_SPACE_HEAD = {"click": "ctr", "action": "ctavr", "conv_click": "ctcvr", "conv_action": "ctcvr",
                     "conv_unclick": "xcvr"}


SELF_PREFIX = AUX_PREFIX + "self/"  # the enhancer's no-transfer heads, a training output per receiving edge


@dataclasses.dataclass(frozen=True)
class EKTMConfig(ModelConfig):
    """EKTM settings (all switches of our interpretation, docs/models.md).

    Backbone: ``backbone`` ple | aem2tl. PLE (and AEM2TL's Task-CGC): ``num_levels`` (ple only),
    ``num_shared_experts``, ``num_specific_experts``, ``expert_units``. AEM2TL's Scenario-CGC:
    ``scenario_shared_experts``, ``scenario_specific_experts``, ``scenario_expert_units``,
    ``per_scenario_shared_gate``.
    Transfer: ``router``, ``transmitter``, ``enhance`` switches; ``transmit_to`` receiving edges (None: the
    funnel's conversion edges; with declared tasks, every task but the first declared one that has a source);
    ``sequential_sources`` / ``parallel_sources`` ``{target edge: [source edges]}`` (None: the default graph,
    :func:`~models.blocks.ektm.funnel_dependencies` or :func:`~models.blocks.ektm.task_dependencies`). With
    declared tasks, these name tasks instead of edges;
    ``num_heads``, ``key_dim``, ``stop_gradient_sources``, ``transmitter_units`` (hidden widths; output = d);
    ``lambda_enh``, ``lambda_self``, ``lambda_cal``.
    """

    embedding_dim: int = 32  # measured on the later span, not the search's 8 (docs/defaults.md, docs/models.md)
    backbone: str = "ple"
    num_levels: int = 2
    num_shared_experts: int = 1  # tuned
    num_specific_experts: int = 1
    expert_units: Tuple[int, ...] = (128, 64)
    scenario_shared_experts: int = 4
    scenario_specific_experts: int = 2
    scenario_expert_units: Tuple[int, ...] = (256, 128)
    per_scenario_shared_gate: bool = False
    router: bool = True
    transmitter: bool = True
    enhance: bool = False  # measured: the enhancer costs 0.01-0.012 AUC on every head (docs/models.md)
    transmit_to: Optional[Tuple[str, ...]] = None
    sequential_sources: Optional[Dict[str, Tuple[str, ...]]] = None
    parallel_sources: Optional[Dict[str, Tuple[str, ...]]] = None
    num_heads: int = 2
    key_dim: int = 32
    stop_gradient_sources: bool = True
    transmitter_units: Tuple[int, ...] = (64,)
    lambda_enh: float = 0.1
    lambda_self: float = 1.0
    lambda_cal: float = 0.1

    @classmethod
    def search_space(cls):
        return dict(super().search_space(), **{"enhance": (False, True), "lambda_enh": (0.0, 0.1, 0.3),
                                               "num_shared_experts": (1, 2, 4)})

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.backbone not in ("ple", "aem2tl"):
            raise ConfigError(f"{source}: backbone must be 'ple' or 'aem2tl', got {self.backbone!r}")
        for name in ("num_levels", "num_shared_experts", "num_specific_experts", "scenario_shared_experts",
                     "scenario_specific_experts", "num_heads", "key_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lambda_enh", "lambda_self", "lambda_cal"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: {name} must be >= 0, got {getattr(self, name)}")
        for key in ("sequential_sources", "parallel_sources"):
            for target, sources in (getattr(self, key) or {}).items():
                if target in sources:
                    raise ConfigError(f"{source}: {key}.{target} lists the target itself")
        seq, par = self.sequential_sources or {}, self.parallel_sources or {}
        for target in set(seq) & set(par):
            both = sorted(set(seq[target]) & set(par[target]))
            if both:
                raise ConfigError(f"{source}: edge {both[0]!r} is both a sequential and a parallel source of "
                                  f"{target!r}")


class EKTM(MultiTaskRanker):
    """Backbone -> router -> transmitters -> edge towers -> entire-space heads, plus the enhancement loss."""

    config_class = EKTMConfig
    reference = ("Effective Knowledge Transfer for Multi-Task Recommendation Models (EKTM), arXiv 2605.05730, "
                 "2026 (router/transmitter/enhancer as interpreted in docs/models.md)")
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 2}

    # ----------------------------------------------------------------- structure
    @classmethod
    def check_config(cls, config: EKTMConfig, tasks) -> None:
        """The edges (funnel) or tasks (declared tasks) that ``transmit_to`` and the source maps name exist."""
        named = set(config.transmit_to or ())
        for graph in (config.sequential_sources, config.parallel_sources):
            for target, sources in (graph or {}).items():
                named |= {target, *sources}
        if tasks is None:
            unknown = sorted(named - set(ALL_EDGES))
            if unknown:
                raise ConfigError(f"EKTM: unknown edge {unknown[0]!r}; edges: {', '.join(ALL_EDGES)}")
            return
        unknown = sorted(named - {name for name, _ in tasks})
        if unknown:
            raise TaskMismatchError(
                f"model 'ektm': its config names the task {unknown[0]!r} (transmit_to, sequential_sources or "
                f"parallel_sources), which the spec does not declare; the spec declares {describe_tasks(tasks)}")

    def build_layers(self) -> None:
        c = self.config
        self.edges = list(self.heads.edges)
        self.targets = self._receiving_edges()
        if c.backbone == "ple":
            self.backbone = PLE(len(self.edges), c.num_levels, c.num_shared_experts, c.num_specific_experts,
                                c.expert_units, c.dropout, c.l2, name="ple")
        else:
            num_scenarios = self.embedding.dims.num_scenarios
            self.scenario_layer = ScenarioCGC(num_scenarios, c.scenario_shared_experts, c.scenario_specific_experts,
                                              c.scenario_expert_units, c.per_scenario_shared_gate, c.dropout,
                                              name="scenario_cgc")
            self.backbone = ScenarioTaskCGC(num_scenarios, len(self.edges), c.num_shared_experts,
                                            c.num_specific_experts,
                                            c.expert_units, c.dropout, name="task_cgc")
        if self.targets:
            index = {e: i for i, e in enumerate(self.edges)}
            seq, par = self.dependencies
            self.router = KnowledgeRouter(
                len(self.edges), [index[t] for t in self.targets],
                [[index[s] for s in seq.get(t, ())] for t in self.targets],
                [[index[s] for s in par.get(t, ())] for t in self.targets],
                num_heads=c.num_heads, key_dim=c.key_dim, attention=c.router,
                stop_gradient_sources=c.stop_gradient_sources, name="router")
            if c.transmitter:
                self.transmitters = {t: KnowledgeTransmitter(c.transmitter_units, dropout=c.dropout, l2=c.l2,
                                                             name=f"transmitter_{t}") for t in self.targets}
            if c.enhance:
                self.self_heads = EdgeTowers(self.targets, c.tower_units, c.dropout, c.l2, name="self_heads")
        self.towers = EdgeTowers(self.edges, c.tower_units, c.dropout, c.l2, name="towers")

    @property
    def training_outputs(self) -> bool:
        """The enhancer reads every edge's probability and the self heads' from the training outputs."""
        return bool(self.config.enhance and self.targets)

    @property
    def dependencies(self) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, Tuple[str, ...]]]:
        """(sequential, parallel) sources per receiving edge (computed from the config; not a tracked state)."""
        return self._dependency_graph()

    def _receiving_edges(self) -> List[str]:
        """The edges with a transmitter (``transmit_to``; by default the funnel's conversion edges, or every
        declared task with a source but the first declared task, which, like click, is a source only)."""
        c = self.config
        if c.transmit_to is not None:
            return [e for e in c.transmit_to if e in self.edges]
        if self.task_graph is None:
            return [e for e in CONVERSION_EDGES if e in self.edges]
        seq, par = self.dependencies
        return [e for e in self.edges[1:] if seq.get(e) or par.get(e)]

    def _dependency_graph(self) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, Tuple[str, ...]]]:
        """(sequential, parallel) sources per target, restricted to the model's edges."""
        c = self.config
        default_seq, default_par = self._default_dependencies()
        graph = []
        for given, default in ((c.sequential_sources, default_seq), (c.parallel_sources, default_par)):
            raw = default if given is None else given
            graph.append({t: tuple(s for s in sources if s in self.edges)
                          for t, sources in raw.items() if t in self.edges})
        seq, par = graph
        for t in set(seq) & set(par):
            both = set(seq[t]) & set(par[t])
            if both:
                raise ConfigError(f"EKTM: {sorted(both)[0]!r} is both a sequential and a parallel source of {t!r}")
        return seq, par

    def _default_dependencies(self) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, Tuple[str, ...]]]:
        if self.task_graph is None:
            return funnel_dependencies(self.edges)
        return task_dependencies(self.task_graph)

    def supervising_head(self, edge: str) -> str:
        """The head over all impressions whose event ``edge`` leads to, and whose label supervises it."""
        return ENTIRE_SPACE_HEAD[edge] if self.task_graph is None else edge

    def funnel_pairs(self) -> List[Tuple[str, str]]:
        """(downstream head, upstream head) pairs of the lambda_cal term (see the module docstring)."""
        seq, _ = self.dependencies
        if self.task_graph is None:
            implied = {("ctavr", "ctr"), ("ctcvr", "ctr")}
            if not self.heads.with_unclick:
                implied.add(("xcvr", "ctr"))
        else:  # a task is one of its 'after' chain's events
            implied = {(t, s) for t, chain in task_dependencies(self.task_graph)[0].items() for s in chain}
        pairs = {(self.supervising_head(t), self.supervising_head(s)) for t, sources in seq.items() for s in sources}
        return sorted(p for p in pairs & implied if p[0] in self.output_keys and p[1] in self.output_keys)

    # ----------------------------------------------------------------- forward
    def backbone_representations(self, embedded, inputs, training=None) -> Dict[str, tf.Tensor]:
        """``{edge: h_e}`` from the backbone."""
        x = self.embedding.concat(embedded)
        if self.config.backbone == "ple":
            reps = self.backbone(x, training=training)
        else:
            weights = self.scenario_routing(inputs)
            m = self.scenario_layer(x, weights, training=training)
            reps = self.backbone(m, weights, training=training)
        return dict(zip(self.edges, reps))

    def transfer(self, reps: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """``{edge: h'_e}``: router + transmitter for the receiving edges, identity for the others."""
        out = dict(reps)
        if not self.targets:
            return out
        routed = self.router([reps[e] for e in self.edges])
        for t, r in zip(self.targets, routed):
            if self.config.transmitter:
                out[t] = self.transmitters[t]([reps[t], r], training=training)
            else:
                out[t] = tf.concat([reps[t], tf.cast(r, reps[t].dtype)], axis=-1)
        return out

    def edge_logits(self, embedded, inputs, training=None) -> Dict[str, tf.Tensor]:
        """The edge logits and, in training with the enhancer on, the self heads' logits (``aux/self/<edge>``)."""
        reps = self.backbone_representations(embedded, inputs, training=training)
        logits = self.towers(self.transfer(reps, training=training), training=training)
        if training and self.training_outputs:
            self_logits = self.self_heads({t: reps[t] for t in self.targets}, training=training)
            logits.update({f"{SELF_PREFIX}{t}": v for t, v in self_logits.items()})
        return logits

    # ----------------------------------------------------------------- losses
    def _head_with(self, edge_probs, edge: str, prob: tf.Tensor) -> tf.Tensor:
        """Entire-space head of ``edge`` with ``prob`` for that edge and the other edges held fixed."""
        probs = {e: (prob if e == edge else tf.stop_gradient(p)) for e, p in edge_probs.items()}
        return self.heads(probs)[self.supervising_head(edge)]

    def enhancement_terms(self, inputs, outputs) -> Dict[str, tf.Tensor]:
        """``{edge: (hinge, self BCE)}`` from the training outputs of one forward pass (enhance on)."""
        edge_probs = {e: outputs[f"{AUX_PREFIX}edge/{e}"] for e in self.edges}
        terms = {}
        for t in self.targets:
            head = self.supervising_head(t)
            y = tf.reshape(tf.cast(inputs[label_key(self.head_target(head))], tf.float32), [-1, 1])
            p_main = self._head_with(edge_probs, t, edge_probs[t])
            p_self = self._head_with(edge_probs, t, outputs[f"{SELF_PREFIX}{t}"])
            terms[t] = (enhancement_loss(y, p_main, p_self), tf.reduce_mean(binary_crossentropy(y, p_self)))
        return terms

    def auxiliary_loss(self, inputs, outputs, training=None) -> tf.Tensor:
        """The funnel-order term on the heads, plus, when ``outputs`` are training outputs, the enhancer's."""
        c = self.config
        total = tf.constant(0.0)
        for down, up in self.funnel_pairs():
            total += c.lambda_cal * calibrator_loss(outputs[down], outputs[up])
        if self.training_outputs and f"{AUX_PREFIX}edge/{self.edges[0]}" in outputs:
            for hinge, self_bce in self.enhancement_terms(inputs, outputs).values():
                total += c.lambda_enh * hinge + c.lambda_self * self_bce
        return total

    def shared_layer_variables(self) -> List[tf.Variable]:
        if self.config.backbone == "aem2tl":
            return self.scenario_layer.shared_layer_variables()
        top = self.backbone.levels[-1].shared_experts
        return [v for e in top.experts for v in e.hidden[-1].trainable_variables]
