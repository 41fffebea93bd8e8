r"""AEM2TL: Adaptive Entire-space Multi-scenario Multi-task Transfer Learning (Yi, Tang, Zhao, Zeng, Song, Wu,
IEEE TKDE 2025, doi:10.1109/TKDE.2025.3536334). Design and interpretation decisions: ``docs/models.md``.

Pipeline (each module can be switched off for ablation, docs/models.md, AEM2TL):

1. shared embedding :math:`x = E(u) \oplus E(m) \oplus E(c)` (:class:`~models.blocks.embedding.FeatureEmbedding`);
2. **Scenario-CGC** (Eq. 3-6): :math:`M_i = G \oplus S_i` with scenario-shared experts (one global gate) and
   scenario i's own experts and gate (:class:`~models.blocks.scenario.ScenarioCGC`).
   ``scenario_cgc=False``: :math:`M_i = x`;
3. **Task-CGC** per scenario (Eq. 7-8): :math:`T_i^j = \delta_i^j(M_i) \cdot [E_{ts}^i(M_i) \| E_{tp}^{ij}(M_i)]`,
   bias-free softmax gates (:class:`~models.blocks.scenario.ScenarioTaskCGC`). ``task_cgc=False``: :math:`T_i^j = M_i`;
4. a tower per (scenario, task) whose every layer input is scaled by a **Personalized Gating Network**
   (Eq. 10-14): :math:`\delta = \gamma\sigma(W_1 \mathrm{ReLU}(W_0 [E_{prior} \oplus sg(T_i^j)] + b_0) + b_1)`,
   :math:`\gamma = 2` (:class:`~models.blocks.scenario.ScenarioTowers`). ``personalized_gate=False``: gates = 1;
5. **Entire-space multi-task module** (Eq. 15-21): five towers y1..y5 on the edges of the behaviour graph,
   composed by :class:`~models.blocks.heads.EntireSpaceHeads`:
   :math:`p_{ctr} = y_1`, :math:`p_{ctavr} = y_1 y_4`,
   :math:`p_{xcvr} = y_1 [y_2 (1 - y_4) + y_4 y_5] + (1 - y_1) y_3`, with BCE on ctr, ctavr and xcvr over all
   impressions (Eq. 22-27). ``entire_space=False``: two direct towers, ``ctr`` and ``xcvr``;
6. **adaptive loss weighting**: GradNorm (section 7) is chosen per run (``TrainConfig.weighting``,
   ``{strategy: gradnorm, alpha: 1.5}``); its shared layer W is the last linear layer of the
   scenario-shared experts. Removing it (ablation "w/o adaptive loss") = ``strategy: fixed``.

Defaults taken where the paper is silent (docs/models.md, AEM2TL): K_sh = 4, K_sp = 2 experts [256, 128];
Task-CGC 2 shared + 1 specific expert [128, 64]; towers [64, 32] with a gate before every layer, gate
hidden width = gated width, one gate per (scenario, task, layer); the gate's stop-gradient input is the
tower input :math:`T_i^j` (``gate_input: tower``; ``embedding`` uses x); one global scenario-shared gate
(``per_scenario_shared_gate`` flag). Without an action label (Ali-CCP), y4 = 0 and the ctavr loss is dropped
(default 12). Unknown scenarios are routed to the mean of the scenario-specific parts.

Declared tasks (a spec's ``tasks`` other than the funnel): the entire-space module composes along the tasks'
``after`` chains (:class:`~models.blocks.heads.TaskChainHeads`); with ``entire_space=False``, one direct tower
per task, P(task) over all impressions.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import tensorflow as tf

from models.base import MultiTaskRanker
from models.blocks.scenario import ScenarioCGC, ScenarioTaskCGC, ScenarioTowers
from models.config import ConfigError, ModelConfig

DIRECT_EDGES = ("ctr", "xcvr")


@dataclasses.dataclass(frozen=True)
class AEM2TLConfig(ModelConfig):
    dropout: float = 0.1  # tuned (docs/defaults.md)
    l2: float = 1e-6  # tuned
    scenario_shared_experts: int = 2  # tuned
    scenario_specific_experts: int = 2
    scenario_expert_units: Tuple[int, ...] = (256, 128)
    per_scenario_shared_gate: bool = False
    task_shared_experts: int = 1  # tuned
    task_specific_experts: int = 1
    task_expert_units: Tuple[int, ...] = (128, 64)
    gamma: float = 2.0
    gate_input: str = "tower"
    share_towers_across_scenarios: bool = False
    scenario_cgc: bool = True
    task_cgc: bool = True
    personalized_gate: bool = True
    entire_space: bool = True

    @classmethod
    def search_space(cls):
        return dict(super().search_space(), **{"scenario_shared_experts": (2, 4), "task_shared_experts": (1, 2)})

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.gate_input not in ("tower", "embedding"):
            raise ConfigError(f"{source}: gate_input must be 'tower' or 'embedding', got {self.gate_input!r}")
        if self.gamma <= 0:
            raise ConfigError(f"{source}: gamma must be > 0, got {self.gamma}")


class AEM2TL(MultiTaskRanker):
    config_class = AEM2TLConfig
    reference = "Yi et al., An Adaptive Entire-Space Multi-Scenario Multi-Task Transfer Learning Model, IEEE TKDE 2025"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.002, "epochs": 2}

    def build_layers(self) -> None:
        c = self.config
        num_scenarios = self.embedding.dims.num_scenarios
        self.tasks_order = list(self.heads.edges) if c.entire_space or self.task_graph else list(DIRECT_EDGES)
        if c.scenario_cgc:
            self.scenario_layer = ScenarioCGC(num_scenarios, c.scenario_shared_experts, c.scenario_specific_experts,
                                              c.scenario_expert_units, c.per_scenario_shared_gate, c.dropout,
                                              name="scenario_cgc")
        if c.task_cgc:
            self.task_layer = ScenarioTaskCGC(num_scenarios, len(self.tasks_order), c.task_shared_experts,
                                              c.task_specific_experts,
                                              c.task_expert_units, c.dropout, name="task_cgc")
        self.towers = ScenarioTowers(num_scenarios, len(self.tasks_order), c.tower_units, c.gamma, c.personalized_gate,
                                     c.share_towers_across_scenarios, c.dropout, name="towers")

    @classmethod
    def outputs_for(cls, config, with_action: bool, view_through: bool):
        return super().outputs_for(config, with_action, view_through) if config.entire_space else DIRECT_EDGES

    @property
    def edge_names(self):
        return self.tasks_order

    def edge_events(self):
        if self.config.entire_space:
            return super().edge_events()
        if self.task_graph is not None:  # a direct tower per declared task: P(task | impression)
            return {t: ((f"+{t}",), ()) for t in self.tasks_order}
        return {"ctr": (("+click",), ()), "xcvr": (("+conversion",), ())}  # the direct heads

    def compose(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        if self.config.entire_space:
            return self.heads(edge_probs)
        return {k: edge_probs[k] for k in self.tasks_order}

    def edge_logits(self, embedded, inputs, training=None):
        c = self.config
        weights = self.scenario_routing(inputs)
        x = self.embedding.concat(embedded)
        m = self.scenario_layer(x, weights, training=training) if c.scenario_cgc else x
        reps = self.task_layer(m, weights, training=training) if c.task_cgc else [m] * len(self.tasks_order)
        backbones = [x] * len(reps) if c.gate_input == "embedding" else reps
        priors = self.embedding.prior_vector(embedded, ("user", "item", "scenario"))
        logits = self.towers(reps, priors, weights, backbones, training=training)
        return dict(zip(self.tasks_order, logits))

    def shared_layer_variables(self):
        if self.config.scenario_cgc:
            return self.scenario_layer.shared_layer_variables()
        return self.embedding.trainable_variables
