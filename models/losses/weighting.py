r"""Multi-task loss weighting: fixed, uncertainty (Kendall et al. 2018), GradNorm (Chen et al. 2018), DWA
(Liu et al. 2019). Every strategy combines the per-task losses :math:`L_i` of one step into the total loss
and may update its weights after the step; the model's ``train_step`` reports each weight and loss, so the
Keras TensorBoard callback logs them every ``update_freq`` batches.

* **fixed**: :math:`L = \sum_i w_i L_i` with constant :math:`w_i` (default 1).
* **uncertainty**: learned log-variances :math:`s_i`: :math:`L = \sum_i e^{-s_i} L_i + s_i`
  (Kendall, Gal, Cipolla, CVPR 2018); the effective weight is :math:`e^{-s_i}`.
* **gradnorm**: weights :math:`w_i(t)` trained so that the gradient norms on a shared layer W,
  :math:`G_i = \lVert \nabla_W w_i L_i \rVert_2`, approach :math:`\bar G \cdot r_i^\alpha` with
  :math:`r_i = \tilde L_i / \mathrm{mean}_j \tilde L_j`, :math:`\tilde L_i = L_i(t) / L_i(0)`:
  :math:`L_{grad} = \sum_i |G_i - \bar G r_i^\alpha|` (target held constant), differentiated only w.r.t.
  :math:`w_i`, one Adam step, then renormalised to :math:`\sum_i w_i = n` and clamped at :math:`w_i \ge 10^{-3}`
  (Chen et al., ICML 2018; docs/models.md) as :math:`w = \epsilon + n(1-\epsilon)\,
  \mathrm{relu}(w)/\sum_j \mathrm{relu}(w_j)`.
* **dwa**: :math:`w_i = n \exp(r_i / T) / \sum_j \exp(r_j / T)` with :math:`r_i = \bar L_i(k-1) / \bar L_i(k-2)`,
  the ratio of the task's mean loss over the last two windows of ``window`` steps (Liu, Johns, Davison,
  CVPR 2019; their window is an epoch); weights are 1 for the first two windows.

Under a ``tf.distribute`` strategy the model passes global-batch losses (and GradNorm's shared-layer
gradients) summed over the replicas, so every replica computes the same update: the strategies' own state
is created with ``ONLY_FIRST_REPLICA`` aggregation and GradNorm's optimizer skips gradient aggregation.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

STRATEGIES = ("fixed", "uncertainty", "gradnorm", "dwa")


def _state(initial, name: str, trainable: bool = False, dtype=None) -> tf.Variable:
    """A weighting-state variable that every replica updates identically (from cross-replica sums)."""
    return tf.Variable(initial, trainable=trainable, dtype=dtype, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


@dataclasses.dataclass(frozen=True)
class WeightingConfig:
    """``strategy``: fixed | uncertainty | gradnorm | dwa. ``weights``: fixed weights per head.
    ``alpha``, ``learning_rate``: GradNorm. ``temperature``, ``window``: DWA."""

    strategy: str = "fixed"
    weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    alpha: float = 1.5
    learning_rate: float = 1e-3
    temperature: float = 2.0
    window: int = 100

    def validate(self, source: str) -> None:
        from models.config import ConfigError

        if self.strategy not in STRATEGIES:
            raise ConfigError(f"{source}: strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.window < 1 or self.temperature <= 0 or self.learning_rate <= 0:
            raise ConfigError(f"{source}: window >= 1, temperature > 0 and learning_rate > 0 are required")


class LossWeighting(tf.Module):
    """Base: fixed weights. ``combine(losses)`` -> total; ``after_step(...)`` updates the weights."""

    needs_shared_gradients = False

    def __init__(self, heads: Sequence[str], config: WeightingConfig, name: Optional[str] = None):
        super().__init__(name=name or type(self).__name__)
        self.heads = list(heads)
        self.config = config
        init = [float(config.weights.get(h, 1.0)) for h in self.heads]
        self.weights = _state(init, "task_weights", dtype=tf.float32)

    def effective_weights(self) -> tf.Tensor:
        return self.weights

    def combine(self, losses: Dict[str, tf.Tensor]) -> tf.Tensor:
        stacked = tf.stack([losses[h] for h in self.heads])
        return tf.reduce_sum(tf.stop_gradient(self.effective_weights()) * stacked)

    @property
    def trainable(self) -> List[tf.Variable]:
        """Variables trained by the model's optimizer together with the model (uncertainty's s_i)."""
        return []

    @property
    def internal_refs(self) -> set:
        """Refs of variables this strategy updates itself; the model's optimizer must not touch them."""
        return set()

    def after_step(self, losses: Dict[str, tf.Tensor], shared_grads: Optional[List[tf.Tensor]] = None) -> None:
        """Update internal state after the model's step (GradNorm gets each task's shared-layer gradient)."""

    def report(self, losses: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        w = self.effective_weights()
        out = {}
        for i, h in enumerate(self.heads):
            out[f"loss_{h}"] = losses[h]
            out[f"weight_{h}"] = w[i]
        return out


class UncertaintyWeighting(LossWeighting):
    def __init__(self, heads, config, name=None):
        super().__init__(heads, config, name)
        self.log_vars = tf.Variable(tf.zeros([len(self.heads)]), trainable=True, name="log_variances")

    def effective_weights(self):
        return tf.exp(-self.log_vars)

    def combine(self, losses):
        stacked = tf.stack([losses[h] for h in self.heads])
        return tf.reduce_sum(tf.exp(-self.log_vars) * stacked + self.log_vars)

    @property
    def trainable(self):
        return [self.log_vars]


class GradNorm(LossWeighting):
    needs_shared_gradients = True

    def __init__(self, heads, config, name=None):
        super().__init__(heads, config, name)
        n = len(self.heads)
        self.initial_losses = _state(tf.zeros([n]), "initial_losses")
        self.started = _state(False, "started")
        self.w_var = _state(self.weights.read_value(), "gradnorm_w", trainable=True)
        self.optimizer = keras.optimizers.Adam(config.learning_rate)
        self.optimizer.build([self.w_var])  # slots now, not inside the traced train step

    def gradnorm_step(self, losses: tf.Tensor, grad_norms: tf.Tensor) -> tf.Tensor:
        """One GradNorm update from per-task losses ``L_i`` and unweighted gradient norms ``||grad_W L_i||``.

        Returns :math:`L_{grad}`. Exposed for tests (hand-computed cases)."""
        n = tf.cast(tf.size(losses), tf.float32)
        self.initial_losses.assign(tf.where(self.started, self.initial_losses, losses))
        self.started.assign(True)
        ratio = losses / tf.maximum(self.initial_losses, 1e-12)
        r = ratio / tf.reduce_mean(ratio)
        with tf.GradientTape() as tape:
            g = self.w_var * grad_norms
            target = tf.stop_gradient(tf.reduce_mean(g) * tf.pow(r, self.config.alpha))
            l_grad = tf.reduce_sum(tf.abs(g - target))
        grad = tape.gradient(l_grad, self.w_var)
        self.optimizer.apply_gradients([(grad, self.w_var)], skip_gradients_aggregation=True)
        # Renormalise to sum n with every weight >= eps: w = eps + n (1 - eps) relu(w) / sum(relu(w)).
        eps = 1e-3
        w = tf.nn.relu(self.w_var)
        w = eps + n * (1.0 - eps) * w / tf.maximum(tf.reduce_sum(w), 1e-12)
        self.w_var.assign(w)
        self.weights.assign(w)
        return l_grad

    @property
    def internal_refs(self):
        return {self.w_var.ref()}

    def after_step(self, losses, shared_grads=None):
        if shared_grads is None:
            return
        norms = tf.stack([tf.norm(g) for g in shared_grads])
        self.gradnorm_step(tf.stack([tf.stop_gradient(losses[h]) for h in self.heads]), norms)


class DWA(LossWeighting):
    def __init__(self, heads, config, name=None):
        super().__init__(heads, config, name)
        n = len(self.heads)
        self.sums = _state(tf.zeros([n]), "window_sums")
        self.prev = _state(tf.zeros([2, n]), "previous_window_means")
        self.step = _state(0, "step", dtype=tf.int64)
        self.windows = _state(0, "windows_done", dtype=tf.int64)

    def after_step(self, losses, shared_grads=None):
        self.sums.assign_add(tf.stack([tf.stop_gradient(losses[h]) for h in self.heads]))
        self.step.assign_add(1)
        if self.step % self.config.window == 0:
            mean = self.sums / float(self.config.window)
            self.prev.assign(tf.stack([self.prev[1], mean]))
            self.sums.assign(tf.zeros_like(self.sums))
            self.windows.assign_add(1)
            if self.windows >= 2:
                r = self.prev[1] / tf.maximum(self.prev[0], 1e-12)
                n = float(len(self.heads))
                self.weights.assign(n * tf.nn.softmax(r / self.config.temperature))


def make_weighting(heads: Sequence[str], config: WeightingConfig) -> LossWeighting:
    cls = {"fixed": LossWeighting, "uncertainty": UncertaintyWeighting, "gradnorm": GradNorm, "dwa": DWA}
    return cls[config.strategy](heads, config, name=f"weighting_{config.strategy}")
