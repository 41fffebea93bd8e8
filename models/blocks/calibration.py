r"""Per-scenario Platt scaling of edge logits, fitted after training on held-out data.

For a sample of scenario :math:`s` (the unknown-scenario slot included) and every edge logit :math:`z_e` of
the model (the conditional edges of :class:`~models.blocks.heads.EntireSpaceHeads`, or a model's direct
heads):

.. math::

   z'_e = a_{s,e}\, z_e + b_{s,e}, \qquad p_e = \sigma(z'_e)

(Platt, "Probabilistic Outputs for Support Vector Machines", 1999, applied per scenario and edge). The layer
starts as the identity (:math:`a = 1`, :math:`b = 0`) and is **not** trained with the model: its weights are
non-trainable, and ``models.base.MultiTaskRanker.calibrate`` fits them afterwards on data that neither the
training nor the evaluation uses, by minimising the binary cross-entropy of every served head over all
impressions (the heads are composed from the calibrated edges, so the funnel :math:`ctcvr \le ctr` still holds
by construction). A monotone map per scenario keeps the ranking inside a scenario unchanged.

The calibration is part of the model, so the exported SavedModel (``serving_default``, ``predict_raw``),
TF Serving and ``msmt score`` all return calibrated probabilities.
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="msmt")
class ScenarioCalibration(keras.layers.Layer):
    """``call(logits: {edge: [B, 1]}, scenario_idx [B] or [B, 1]) -> {edge: [B, 1]}`` (calibrated logits).

    Args:
      edges: the edge names, in a fixed order.
      num_scenarios: S known scenarios; row S of the parameters is the unknown-scenario slot.
    """

    def __init__(self, edges: Sequence[str], num_scenarios: int, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.edges = [str(e) for e in edges]
        self.num_scenarios = int(num_scenarios)

    def build(self, input_shape=None):
        shape = [self.num_scenarios + 1, len(self.edges)]
        f32 = dict(dtype=tf.float32, experimental_autocast=False, trainable=False)
        self.slope = self.add_weight("slope", shape, initializer="ones", **f32)
        self.offset = self.add_weight("offset", shape, initializer="zeros", **f32)
        super().build(input_shape)

    def scenario_parameters(self, scenario_idx: tf.Tensor, slope=None, offset=None):
        """``(a, b)``, each ``[B, E]``: the parameters of every sample's scenario (unknown ids -> slot S)."""
        idx = tf.reshape(tf.cast(scenario_idx, tf.int64), [-1])
        idx = tf.clip_by_value(idx, 0, self.num_scenarios)
        slope = self.slope if slope is None else slope
        offset = self.offset if offset is None else offset
        return tf.gather(slope, idx), tf.gather(offset, idx)

    def apply(self, logits: Dict[str, tf.Tensor], scenario_idx, slope=None, offset=None) -> Dict[str, tf.Tensor]:
        """Calibrated logits with the given parameters (default: the layer's own)."""
        a, b = self.scenario_parameters(scenario_idx, slope, offset)
        return {e: tf.cast(logits[e], tf.float32) * a[:, i:i + 1] + b[:, i:i + 1]
                for i, e in enumerate(self.edges)}

    def call(self, logits: Dict[str, tf.Tensor], scenario_idx) -> Dict[str, tf.Tensor]:
        if not self.built:
            self.build()
        return self.apply(logits, scenario_idx)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(edges=list(self.edges), num_scenarios=self.num_scenarios)
        return cfg
