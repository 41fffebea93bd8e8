r"""STAR partitioned layers (Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender
for Multi-Domain CTR Prediction", CIKM 2021).

Every scenario (domain) :math:`p \in \{1..S\}` owns a copy of the layer's parameters that is combined with
the copy shared by all scenarios.

**Partitioned dense layer** (star topology FCN, Eq. 3-4 of the paper): for a sample :math:`x` of scenario p

.. math::

   W_p^\star = W \odot W_p, \qquad b_p^\star = b + b_p, \qquad
   out_p(x) = \phi\big(x^\top W_p^\star + b_p^\star\big)

with :math:`\odot` the element-wise product, :math:`W, b` the centred (shared) parameters and
:math:`W_p, b_p` scenario p's own parameters (:math:`W_p = 1`, :math:`b_p = 0` at initialisation, so
training starts from the shared network).

**Partitioned normalization** (PN, Eq. 1-2):

.. math::

   z' = (\gamma \odot \gamma_p) \frac{z - \mu}{\sqrt{\sigma^2 + \epsilon}} + (\beta + \beta_p)

with :math:`\mu, \sigma^2` the batch statistics during training and moving averages at inference. In the
paper every mini-batch holds one domain, so the batch statistics are domain statistics and inference uses
the domain's own moving averages :math:`E_p, Var_p`. Our batches mix scenarios, so by default
(``scenario_statistics=True``) :math:`\mu_p, \sigma_p^2` are the moments of the batch's samples of
scenario p (the whole batch's moments when it has none) and one moving average is kept per scenario;
``scenario_statistics=False`` uses one set of statistics for all scenarios.

**Unknown scenario.** Routing follows :func:`models.blocks.scenario.scenario_weights` /
:func:`~models.blocks.scenario.route`: a sample of the unknown slot (index S) gets the mean over the S
scenarios of the per-scenario outputs, :math:`\frac{1}{S}\sum_p out_p(x)` (after the activation).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from models.blocks.scenario import route, scenario_weights


def _per_scenario_route(per_scenario: tf.Tensor, scenario_idx: tf.Tensor, num_scenarios: int) -> tf.Tensor:
    """``[B, S, d]`` per-scenario outputs -> ``[B, d]`` with the scenario routing weights."""
    return route(tf.unstack(per_scenario, num=num_scenarios, axis=1), scenario_weights(scenario_idx, num_scenarios))


@keras.utils.register_keras_serializable(package="msmt")
class PartitionedDense(keras.layers.Layer):
    r"""STAR partitioned fully connected layer (Sheng et al. CIKM 2021, Eq. 3-4).

    .. math::

       out(x) = \phi\big(x^\top (W \odot W_p) + b + b_p\big) \quad \text{for a sample of scenario } p, \qquad
       out(x) = \frac{1}{S} \sum_{p=1}^{S} \phi\big(x^\top (W \odot W_p) + b + b_p\big) \quad
       \text{for the unknown scenario}

    ``call(x, scenario_idx)``: ``x`` ``[B, d]``, ``scenario_idx`` ``[B]`` or ``[B, 1]`` int (S = unknown).
    ``l2`` regularises the shared kernel W only (the scenario kernels start at 1, not 0).
    """

    def __init__(self, units: int, num_scenarios: int, activation="relu", l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.num_scenarios = int(num_scenarios)
        self.activation = keras.activations.get(activation)
        self._activation_name = (activation if activation is None or isinstance(activation, str)
                                 else keras.activations.serialize(self.activation))
        self.l2 = float(l2)

    def build(self, input_shape):
        d = int(input_shape[-1])
        s, u = self.num_scenarios, self.units
        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        self.shared_kernel = self.add_weight("shared_kernel", [d, u], initializer="glorot_uniform", regularizer=reg)
        self.shared_bias = self.add_weight("shared_bias", [u], initializer="zeros")
        self.scenario_kernel = self.add_weight("scenario_kernel", [s, d, u], initializer="ones")
        self.scenario_bias = self.add_weight("scenario_bias", [s, u], initializer="zeros")
        super().build(input_shape)

    def scenario_outputs(self, x):
        r"""Every scenario's output ``[B, S, units]``: :math:`\phi(x^\top (W \odot W_p) + b + b_p)`."""
        kernel = self.shared_kernel[None] * self.scenario_kernel  # [S, d, u]
        bias = self.shared_bias[None] + self.scenario_bias  # [S, u]
        return self.activation(tf.einsum("bd,sdu->bsu", x, kernel) + bias[None])

    def call(self, x, scenario_idx):
        return _per_scenario_route(self.scenario_outputs(x), scenario_idx, self.num_scenarios)

    @property
    def shared_variables(self):
        """The centred parameters W, b shared by every scenario."""
        return [self.shared_kernel, self.shared_bias]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, num_scenarios=self.num_scenarios, activation=self._activation_name, l2=self.l2)
        return cfg


@keras.utils.register_keras_serializable(package="msmt")
class PartitionedNormalization(keras.layers.Layer):
    r"""STAR partitioned normalization (Sheng et al. CIKM 2021, Eq. 1-2).

    .. math::

       z' = (\gamma \odot \gamma_p) \frac{z - \mu_p}{\sqrt{\sigma_p^2 + \epsilon}} + (\beta + \beta_p)

    Training: :math:`\mu_p, \sigma_p^2` are the (biased) moments of the batch's samples of scenario p (the
    whole batch's when it has none; the whole batch's for every p with ``scenario_statistics=False``), and
    the moving averages :math:`\bar\mu_p \leftarrow m \bar\mu_p + (1 - m) \mu_p` (same for the variance)
    are updated for the scenarios present. Inference: :math:`\mu_p = \bar\mu_p`,
    :math:`\sigma_p^2 = \bar\sigma_p^2`. An unknown-scenario sample gets :math:`\frac{1}{S}\sum_p z'_p`.
    Computed in float32 (also under mixed precision), like ``BatchNormalization``.

    ``call(x, scenario_idx, training=None)``.
    """

    def __init__(self, num_scenarios: int, momentum: float = 0.99, epsilon: float = 1e-3,
                 scenario_statistics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_scenarios = int(num_scenarios)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.scenario_statistics = bool(scenario_statistics)

    def build(self, input_shape):
        d = int(input_shape[-1])
        s = self.num_scenarios
        rows = s if self.scenario_statistics else 1
        f32 = dict(dtype=tf.float32, experimental_autocast=False)
        self.gamma = self.add_weight("gamma", [d], initializer="ones", **f32)
        self.beta = self.add_weight("beta", [d], initializer="zeros", **f32)
        self.scenario_gamma = self.add_weight("scenario_gamma", [s, d], initializer="ones", **f32)
        self.scenario_beta = self.add_weight("scenario_beta", [s, d], initializer="zeros", **f32)
        stat = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN, **f32)
        self.moving_mean = self.add_weight("moving_mean", [rows, d], initializer="zeros", **stat)
        self.moving_variance = self.add_weight("moving_variance", [rows, d], initializer="ones", **stat)
        super().build(input_shape)

    def batch_statistics(self, x, scenario_idx):
        """``(mean, variance, present)``: ``[rows, d]`` moments and ``[rows]`` bool (rows = S or 1)."""
        batch_mean = tf.reduce_mean(x, axis=0)
        batch_var = tf.reduce_mean(tf.square(x - batch_mean), axis=0)
        if not self.scenario_statistics:
            return batch_mean[None], batch_var[None], tf.size(x[:, 0]) > 0
        idx = tf.reshape(tf.cast(scenario_idx, tf.int64), [-1])
        member = tf.one_hot(idx, self.num_scenarios, dtype=x.dtype)  # [B, S]; zeros for the unknown slot
        count = tf.reduce_sum(member, axis=0)  # [S]
        denom = tf.maximum(count, 1.0)[:, None]
        mean = tf.matmul(member, x, transpose_a=True) / denom  # [S, d]
        var = tf.einsum("bs,bsd->sd", member, tf.square(x[:, None, :] - mean[None])) / denom
        present = count > 0
        mean = tf.where(present[:, None], mean, batch_mean[None])
        var = tf.where(present[:, None], var, batch_var[None])
        return mean, var, present

    def _train_statistics(self, x, scenario_idx):
        mean, var, present = self.batch_statistics(x, scenario_idx)
        m = self.momentum
        keep = present[:, None] if self.scenario_statistics else tf.reshape(present, [1, 1])
        self.moving_mean.assign(tf.where(keep, m * self.moving_mean + (1.0 - m) * mean, self.moving_mean))
        self.moving_variance.assign(tf.where(keep, m * self.moving_variance + (1.0 - m) * var,
                                             self.moving_variance))
        return mean, var

    def estimate_statistics(self, batches) -> int:
        r"""Replace the moving averages with the population moments of ``batches`` of ``(x, scenario_idx)``.

        .. math::

           \bar\mu_p = \frac{1}{n_p} \sum_{i \in p} x_i, \qquad
           \bar\sigma_p^2 = \frac{1}{n_p} \sum_{i \in p} x_i^2 - \bar\mu_p^2

        over the samples of each scenario p (all samples with ``scenario_statistics=False``). Run after training
        with the final weights ("precise" statistics, Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021):
        a moving average over the last batches lags behind embeddings that are still moving, which at inference
        shifts every normalized input and with it the probabilities. A scenario with no sample keeps its
        moving average. Returns the number of samples read.
        """
        rows = self.num_scenarios if self.scenario_statistics else 1
        count = tf.zeros([rows], tf.float64)
        total, squares = None, None
        n = 0
        for x, scenario_idx in batches:
            x = tf.cast(x, tf.float64)
            if self.scenario_statistics:
                idx = tf.reshape(tf.cast(scenario_idx, tf.int64), [-1])
                member = tf.one_hot(idx, self.num_scenarios, dtype=tf.float64)  # unknown slot: all zeros
            else:
                member = tf.ones([tf.shape(x)[0], 1], tf.float64)
            count += tf.reduce_sum(member, axis=0)
            t = tf.matmul(member, x, transpose_a=True)
            q = tf.matmul(member, tf.square(x), transpose_a=True)
            total, squares = (t, q) if total is None else (total + t, squares + q)
            n += int(x.shape[0])
        if total is None:
            return 0
        present = count > 0
        denom = tf.maximum(count, 1.0)[:, None]
        mean = total / denom
        var = tf.maximum(squares / denom - tf.square(mean), 0.0)
        keep = present[:, None]
        self.moving_mean.assign(tf.where(keep, tf.cast(mean, tf.float32), self.moving_mean))
        self.moving_variance.assign(tf.where(keep, tf.cast(var, tf.float32), self.moving_variance))
        return n

    def _inference_statistics(self):
        return tf.identity(self.moving_mean), tf.identity(self.moving_variance)

    def call(self, x, scenario_idx, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        if isinstance(training, int):
            training = bool(training)
        in_dtype = x.dtype
        x = tf.cast(x, tf.float32)
        if tf.is_tensor(training):
            mean, var = tf.cond(tf.cast(training, tf.bool), lambda: self._train_statistics(x, scenario_idx),
                                self._inference_statistics)
        elif training:
            mean, var = self._train_statistics(x, scenario_idx)
        else:
            mean, var = self._inference_statistics()
        x_hat = (x[:, None, :] - mean[None]) * tf.math.rsqrt(var[None] + self.epsilon)  # [B, S or 1, d]
        scale = self.gamma[None] * self.scenario_gamma  # [S, d]
        shift = self.beta[None] + self.scenario_beta
        z = x_hat * scale[None] + shift[None]  # [B, S, d]
        return tf.cast(_per_scenario_route(z, scenario_idx, self.num_scenarios), in_dtype)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_scenarios=self.num_scenarios, momentum=self.momentum, epsilon=self.epsilon,
                   scenario_statistics=self.scenario_statistics)
        return cfg
