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

Between the edge logits and the sigmoid sits a per-scenario Platt scaling
(:class:`~models.blocks.calibration.ScenarioCalibration`): the identity while the model trains, then fitted by
:meth:`MultiTaskRanker.calibrate` on held-out data, so that the served probabilities are calibrated per
scenario (``docs/calibration.md``).

Declared tasks. For a spec of other tasks than the funnel (``features.labels.task_graph``), every model
composes its edges with :class:`~models.blocks.heads.TaskChainHeads` instead: one edge and one head per task,
along the tasks' ``after`` chains. Everything else (edge towers, experts, scenario
layers, priors, calibration, losses) works on whatever edges the heads block names.

Served heads. A model serves the heads its structure defines (:meth:`MultiTaskRanker.outputs_for`); a model
without the view-through edge (``conv_unclick``: ESMM, ESM2, AITM) does not serve ``xcvr`` when the data
allows conversions without a click (``features.labels.has_view_through``), because its ``xcvr`` would be
``ctcvr`` and miss every view-through conversion.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from features.labels import HEAD_TARGETS, IMPRESSION_HEADS, label_key
from models.blocks.calibration import ScenarioCalibration
from models.blocks.edge_prior import EdgePrior
from models.blocks.embedding import FeatureEmbedding
from models.blocks.heads import EntireSpaceHeads, TaskChainHeads
from models.blocks.scenario import scenario_weights
from models.config import DEFAULT_CALIBRATION_PRIOR_POSITIVES, ModelConfig, parse_config, to_dict
from models.losses.weighting import WeightingConfig, make_weighting


AUX_PREFIX = "aux/"  # training-only outputs (edge probabilities, auxiliary heads); never served


class MultiTaskRanker(tfrs.models.Model):
    """Shared machinery: embedding, heads, tasks, loss, config round trip.

    Args:
      input_dims: ``features.dims.InputDims.to_dict()``.
      config: the model's dataclass config (or its dict form).
      with_action: whether the data has a related-action label (adds the action edges and ``ctavr``).
      view_through: whether conversions can happen without a click (``features.labels.has_view_through``);
        a model without the view-through edge then does not serve ``xcvr``.
      supervised_heads: heads that get a loss (default: every served head among ctr, ctavr, ctcvr, xcvr).
      weighting: ``WeightingConfig`` (or its dict): how the supervised heads' losses are combined.
      tasks: ``((task, after), ...)`` of a spec of declared tasks (``features.labels.task_graph``), or None for
        the funnel (:meth:`check_config` refuses a config that does not fit them).
    """

    config_class = ModelConfig
    supports_action = True  # whether the model has the action edges when the data has an action label
    has_unclick_edge = True  # whether the model has the view-through conversion edge (conv_unclick)
    default_supervised = IMPRESSION_HEADS  # restricted to the served heads
    # whether the model serves any declared task set (TaskChainHeads), not only the click -> conversion funnel
    training_outputs = False  # whether call(training=True) adds the aux/ outputs that auxiliary_loss reads
    # TrainConfig keys this model trains with unless the run's train config sets them (docs/defaults.md).
    train_defaults: Dict = {}

    def __init__(self, input_dims: Dict, config=None, with_action: bool = False,
                 supervised_heads: Optional[Sequence[str]] = None,
                 weighting=None, view_through: bool = True, tasks=None, **kwargs):
        super().__init__(**kwargs)
        # train_step/test_step return global-batch values, identical on every replica: report the first one
        # (Keras' default sums the replicas' logs).
        self.distribute_reduction_method = "first"
        if config is None or isinstance(config, dict):
            config = parse_config(self.config_class, config, source=type(self).__name__)
        if weighting is None or isinstance(weighting, dict):
            weighting = parse_config(WeightingConfig, weighting, source=f"{type(self).__name__} weighting")
        type(self).check_config(config, tasks)
        self.input_dims = input_dims
        self.config = config
        self.with_action = bool(with_action)
        self.view_through = bool(view_through)
        self.task_graph = None if tasks is None else tuple((name, after) for name, after in tasks)
        if self.task_graph is None:
            self.heads = EntireSpaceHeads(with_action=self.with_action and self.supports_action,
                                          with_unclick=self.has_unclick_edge, name="heads", dtype="float32")
        else:
            self.heads = TaskChainHeads(self.task_graph, name="heads", dtype="float32")
        default_heads = tuple(h for h in self.default_supervised if h in self.output_keys) \
            if self.task_graph is None else self.output_keys
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
        self.edge_prior = EdgePrior(self.edge_names, name="edge_prior")
        self.calibration = ScenarioCalibration(self.edge_names, self.embedding.dims.num_scenarios,
                                               name="calibration")

    @classmethod
    def check_config(cls, config, tasks) -> None:
        """Config-time check of ``config`` against the data's tasks (``((task, after), ...)``, None: the funnel):
        :class:`~models.config.ConfigError` naming what does not fit. The registry runs it before any component
        runs, the constructor again. Default: every config fits every task set."""

    @classmethod
    def outputs_for(cls, config, with_action: bool, view_through: bool) -> Tuple[str, ...]:
        """The heads a model of this class serves for ``config`` and the data's labels (no model is built).

        The pipeline uses it to evaluate and gate exactly the heads the model returns."""
        keys = EntireSpaceHeads.keys_for(with_action and cls.supports_action)
        if view_through and not cls.has_unclick_edge:
            keys = tuple(k for k in keys if k != "xcvr")
        return keys

    @property
    def output_keys(self) -> Tuple[str, ...]:
        if self.task_graph is not None:
            return self.heads.output_keys
        return type(self).outputs_for(self.config, self.with_action, self.view_through)

    @property
    def impression_heads(self) -> Tuple[str, ...]:
        """The served heads with a label over all impressions (every head but the funnel's ``cvr``)."""
        if self.task_graph is not None:
            return self.output_keys
        return tuple(h for h in self.output_keys if h in IMPRESSION_HEADS)

    def head_target(self, head: str) -> str:
        """The label target of a head over all impressions (``label_key`` of it is its label feature)."""
        return head if self.task_graph is not None else HEAD_TARGETS[head]

    @property
    def edge_names(self) -> Sequence[str]:
        """Keys of :meth:`edge_logits` (default: the edges of the entire-space heads)."""
        return self.heads.edges

    def edge_events(self) -> Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]]:
        """``{edge: (event, condition)}``: what each edge predicts, as ``+role`` / ``-role`` label terms
        (default: the entire-space edges, ``models.blocks.heads.EDGE_EVENTS``)."""
        return self.heads.edge_events()

    def edge_masks(self, batch) -> Dict[str, Tuple[tf.Tensor, tf.Tensor]]:
        """``{edge: (event, condition)}`` boolean ``[B]`` masks of a batch's labels (:meth:`edge_events`)."""
        events = self.edge_events()
        roles = sorted({t[1:] for ev, cond in events.values() for t in ev + cond})
        labels = {r: tf.reshape(tf.cast(batch[label_key(r)], tf.float32), [-1]) > 0.5 for r in roles}

        def conjunction(terms, start):
            out = start
            for t in terms:
                out = tf.logical_and(out, labels[t[1:]] if t[0] == "+" else tf.logical_not(labels[t[1:]]))
            return out

        out = {}
        for e, (event, condition) in events.items():
            cond = conjunction(condition, tf.ones_like(labels[roles[0]]))
            out[e] = (conjunction(event, cond), cond)
        return out

    def initialize_edge_priors(self, dataset, max_rows: int = 1_000_000) -> Dict[str, float]:
        r"""Count each edge's base rate :math:`P(event \mid condition)` on the labels of ``dataset`` (batches of
        transformed examples, at most ``max_rows`` rows) and start the edge logits there
        (:class:`~models.blocks.edge_prior.EdgePrior`). Returns the rates (Laplace-smoothed by 1/2)."""
        counts = {e: [0.0, 0.0] for e in self.edge_names}
        rows = 0
        for batch in dataset:
            for e, (hit, cond) in self.edge_masks(batch).items():
                counts[e][0] += float(tf.reduce_sum(tf.cast(hit, tf.float32)))
                counts[e][1] += float(tf.reduce_sum(tf.cast(cond, tf.float32)))
            if not self.edge_prior.built:  # build every variable where the model lives (its strategy's scope)
                with self.distribute_strategy.scope():
                    self(batch, training=False)
            rows += int(tf.shape(self.scenario_index(batch))[0])
            if rows >= max_rows:
                break
        rates = {e: (k + 0.5) / (n + 1.0) for e, (k, n) in counts.items()}
        self.edge_prior.set_base_rates(rates)
        return rates

    # ----------------------------------------------------------------- subclass API
    def build_layers(self) -> None:
        """Create the model's own layers (called at the end of ``__init__``)."""
        raise NotImplementedError

    def edge_logits(self, embedded: Dict[str, tf.Tensor], inputs: Dict[str, tf.Tensor],
                    training=None) -> Dict[str, tf.Tensor]:
        """Return ``{edge: logit [batch, 1]}`` for every edge in :attr:`edge_names`, plus any auxiliary logits
        under keys starting with ``AUX_PREFIX`` (returned as training outputs, see :meth:`call`)."""
        raise NotImplementedError

    def compose(self, edge_probs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Edge probabilities -> head outputs (entire-space composition by default)."""
        return self.heads(edge_probs)

    def auxiliary_loss(self, inputs, outputs, training=None) -> tf.Tensor:
        """Extra loss terms of the model (e.g. a calibrator); 0 by default."""
        return tf.constant(0.0)

    def finalize(self, dataset) -> Dict:
        """Post-training work that needs data with the final weights (e.g. normalization statistics); ``dataset``
        yields batches of transformed training examples. Returns a summary for ``train_summary.json``."""
        return {}

    def scenario_routing(self, inputs) -> tf.Tensor:
        """Routing weights ``[B, S]`` of each sample's scenario (``models.blocks.scenario.scenario_weights``)."""
        dims = self.embedding.dims
        return scenario_weights(inputs[dims.scenario], dims.num_scenarios)

    def shared_layer_variables(self) -> List[tf.Variable]:
        """The shared layer W on which GradNorm balances gradient norms."""
        raise NotImplementedError(f"{type(self).__name__} does not name a shared layer for GradNorm")

    # ----------------------------------------------------------------- keras API
    def call(self, inputs: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """``{head: probability}``; in training, a model with ``training_outputs`` also returns every edge's
        probability (``aux/edge/<edge>``) and the sigmoid of its auxiliary logits (``aux/<name>``), which its
        :meth:`auxiliary_loss` reads: Keras outputs rather than state kept between calls."""
        raw = self.edge_logits(self.embedding(inputs), inputs, training=training)
        logits = self.calibration(self.edge_prior(raw), self.scenario_index(inputs))
        probs = {e: tf.sigmoid(z) for e, z in logits.items()}
        composed = self.compose(probs)
        out = {k: composed[k] for k in self.output_keys}
        if training and self.training_outputs:
            out.update({f"{AUX_PREFIX}edge/{e}": p for e, p in probs.items()})
            out.update({k: tf.sigmoid(tf.cast(v, tf.float32)) for k, v in raw.items() if k.startswith(AUX_PREFIX)})
        return out

    def uncalibrated_logits(self, inputs, training=None) -> Dict[str, tf.Tensor]:
        """``{edge: logit}`` before the calibration: the model's edge logits plus the edge priors."""
        return self.edge_prior(self.edge_logits(self.embedding(inputs), inputs, training=training))

    def scenario_index(self, inputs) -> tf.Tensor:
        """The transformed scenario id ``[B]`` (S = the unknown slot)."""
        return inputs[self.embedding.dims.scenario]

    def calibrate(self, dataset, steps: int = 400, learning_rate: float = 0.05, prior_rows: float = 1.0,
                  prior_positives: float = DEFAULT_CALIBRATION_PRIOR_POSITIVES, max_rows: int = 2_000_000,
                  objective: str = "edges") -> Dict:
        r"""Fit the per-scenario Platt scaling (:class:`ScenarioCalibration`) on held-out ``dataset``.

        ``dataset`` yields batches of transformed examples with their labels. The edge logits are computed once
        (inference mode, at most ``max_rows`` rows); then :math:`a, b` minimise, with full-batch Adam
        (``steps`` per stage, ``learning_rate``), a negative log-likelihood plus a penalty :math:`R` (below):

        * ``objective="edges"`` (default): the likelihood of the behaviour graph, every edge on the impressions
          where it applies (:meth:`edge_events`: click on all, action on clicks, conversion on clicks without
          and with action, view-through conversion on the unclicked ones):

          .. math::

             \frac{1}{N} \Big[\sum_{e} \sum_{n \in C_e} \mathrm{BCE}(y_{e,n}, \sigma(a_{s_n,e} z_{e,n} + b_{s_n,e}))
             + R\Big]

          It is the joint likelihood of the labels (each conversion counted once), its optimum is calibrated on
          every edge's population, and the heads composed from the edges keep the funnel order;
        * ``objective="heads"``: the sum of the BCE of every served impression head (ctr, ctavr, ctcvr, xcvr)
          composed from the calibrated edges. It counts a clicked conversion in both ctcvr and xcvr, and on the
          benchmark left ctcvr about 3-4 % under-calibrated on its own fit data (``docs/calibration.md``).

        Each scenario's parameters are the parameters pooled over all scenarios plus the scenario's deviation,
        :math:`a_{s,e} = \bar a_e + \delta^a_{s,e}` and :math:`b_{s,e} = \bar b_e + \delta^b_{s,e}`. The pooled
        map is fitted first (deviations at zero), then the deviations with the pooled map fixed; the penalty is
        :math:`R =`

        .. math::

           \lambda \sum_e \big((\bar a_e - 1)^2 + \bar b_e^2\big)
           + \frac{\tau}{2} \sum_{s,e} \big((\delta^a_{s,e})^2 + (\delta^b_{s,e})^2\big)

        with :math:`\lambda` = ``prior_rows`` (a weak pull of the pooled map towards the identity) and
        :math:`\tau` = ``prior_positives``. The curvature of the likelihood in a scenario's offset is
        :math:`H = \sum_n p_n (1 - p_n)`, about its number of positives :math:`P` for a rare event, so the
        scenario keeps :math:`H / (H + \tau) \approx P/(P+\tau)` of its own offset correction and takes the
        rest from the pooled one: a thin slice of the held-out data no longer sets its scenario's level from a
        hundred positives. ``prior_positives=0`` fits every scenario freely (``docs/calibration.md`` has the
        measurements behind the default 100). Offsets are fitted at each edge's mean logit, so a scenario's
        offset deviation is its change of level. The unknown-scenario slot gets the pooled parameters.
        Returns a summary: rows, objective, loss and calibration (mean prediction / mean label) per head before
        and after.
        """
        if objective not in ("edges", "heads"):
            raise ValueError(f"calibrate: objective must be 'edges' or 'heads', got {objective!r}")
        if prior_positives < 0 or prior_rows < 0:
            raise ValueError(f"calibrate: prior_rows and prior_positives must be >= 0, got {prior_rows}, "
                             f"{prior_positives}")
        heads = list(self.impression_heads)
        edges = list(self.edge_names)
        cols: Dict[str, List] = {"scenario": [], **{f"z_{e}": [] for e in edges}, **{h: [] for h in heads},
                                 **{f"event_{e}": [] for e in edges}, **{f"cond_{e}": [] for e in edges}}
        rows = 0
        for batch in dataset:
            logits = self.uncalibrated_logits(batch, training=False)
            for e, (hit, cond) in self.edge_masks(batch).items():
                cols[f"event_{e}"].append(tf.reshape(tf.cast(hit, tf.float32), [-1, 1]))
                cols[f"cond_{e}"].append(tf.reshape(tf.cast(cond, tf.float32), [-1, 1]))
            for e in edges:
                cols[f"z_{e}"].append(tf.reshape(tf.cast(logits[e], tf.float32), [-1, 1]))
            cols["scenario"].append(tf.reshape(tf.cast(self.scenario_index(batch), tf.int64), [-1]))
            for h in heads:
                cols[h].append(tf.reshape(tf.cast(batch[label_key(self.head_target(h))], tf.float32), [-1, 1]))
            rows += int(cols["scenario"][-1].shape[0])
            if rows >= max_rows:
                break
        if not rows:
            raise ValueError("calibrate: the calibration data is empty")
        data = {k: tf.concat(v, axis=0) for k, v in cols.items()}
        z = {e: data[f"z_{e}"] for e in edges}
        layer = self.calibration
        known = layer.num_scenarios
        pooled_slope = tf.Variable(tf.ones([1, len(edges)]))
        pooled_offset = tf.Variable(tf.zeros([1, len(edges)]))
        slope_deviation = tf.Variable(tf.zeros([known, len(edges)]))
        offset_deviation = tf.Variable(tf.zeros([known, len(edges)]))
        n = float(rows)
        # Offsets act at each edge's mean logit (over the impressions where the edge applies), so a
        # scenario's offset deviation is its level change, not entangled with its slope.
        center = tf.reshape(tf.stack([tf.reduce_sum(data[f"cond_{e}"] * z[e]) / tf.maximum(
            tf.reduce_sum(data[f"cond_{e}"]), 1.0) for e in edges]), [1, -1])

        def parameters():
            """``(a, b)`` ``[S + 1, E]`` of the layer (``a z + b``): pooled + deviation for the known scenarios,
            pooled for the unknown slot; the fitted offsets are at the centre logit ``c``: b = b_c + c (1 - a)."""
            a = tf.concat([pooled_slope + slope_deviation, pooled_slope], axis=0)
            b_centered = tf.concat([pooled_offset + offset_deviation, pooled_offset], axis=0)
            return a, b_centered + center * (1.0 - a)

        def head_probs(a, b):
            cal = layer.apply(z, data["scenario"], a, b)
            return self.compose({e: tf.sigmoid(v) for e, v in cal.items()})

        def loss_fn():
            slope, offset = parameters()
            if objective == "edges":
                cal = layer.apply(z, data["scenario"], slope, offset)
                nll = tf.add_n([tf.reduce_sum(data[f"cond_{e}"] * tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=data[f"event_{e}"], logits=cal[e])) for e in edges])
            else:
                out = head_probs(slope, offset)
                nll = tf.add_n([tf.reduce_sum(keras.losses.binary_crossentropy(data[h], out[h])) for h in heads])
            ridge = (prior_rows * (tf.reduce_sum(tf.square(pooled_slope - 1.0))
                                   + tf.reduce_sum(tf.square(pooled_offset)))
                     + 0.5 * prior_positives * (tf.reduce_sum(tf.square(slope_deviation))
                                                + tf.reduce_sum(tf.square(offset_deviation))))
            return (nll + ridge) / n

        def fit(trainable):
            optimizer = keras.optimizers.Adam(learning_rate)

            @tf.function
            def step():
                with tf.GradientTape() as tape:
                    loss = loss_fn()
                optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))

            for _ in range(steps):
                step()

        def calibration_ratios(out):
            return {h: float(tf.reduce_mean(out[h]) / tf.maximum(tf.reduce_mean(data[h]), 1e-12)) for h in heads}

        before_loss = float(loss_fn())
        before = calibration_ratios(head_probs(layer.slope, layer.offset))
        fit([pooled_slope, pooled_offset])  # one map for all scenarios, then each scenario's shrunk deviation
        fit([slope_deviation, offset_deviation])
        slope, offset = parameters()
        layer.slope.assign(slope)
        layer.offset.assign(offset)
        return {"rows": rows, "objective": objective,
                "prior_positives": float(prior_positives), "heads": heads,
                "edges": edges, "loss_before": before_loss,
                "loss_after": float(loss_fn()), "calibration_before": before,
                "calibration_after": calibration_ratios(head_probs(layer.slope, layer.offset)),
                "slope": layer.slope.numpy().tolist(), "offset": layer.offset.numpy().tolist()}

    def head_losses(self, inputs, outputs) -> Dict[str, tf.Tensor]:
        """Batch-mean BCE of every supervised head over this replica's batch (updates the tasks' AUC metrics)."""
        losses = {}
        for h in self.supervised_heads:
            labels = tf.reshape(tf.cast(inputs[label_key(self.head_target(h))], tf.float32), [-1, 1])
            per_example = self.tasks[h](labels=labels, predictions=tf.cast(outputs[h], tf.float32))
            losses[h] = tf.reduce_mean(per_example)
        return losses

    def _batch_share(self, inputs):
        """(:math:`b_r / B`, R): this replica's share of the global batch and the number of replicas.

        ``(1.0, 1)`` without a distribution strategy (or with one replica)."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return 1.0, 1
        local = tf.cast(tf.shape(inputs[label_key(self.head_target(self.supervised_heads[0]))])[0], tf.float32)
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

    def get_config(self):
        return {"input_dims": self.input_dims, "config": to_dict(self.config), "with_action": self.with_action,
                "view_through": self.view_through, "supervised_heads": list(self.supervised_heads),
                "weighting": to_dict(self.weighting_config),
                "tasks": None if self.task_graph is None else [list(t) for t in self.task_graph]}

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
