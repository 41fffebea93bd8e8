"""Experts, softmax gates, CGC and PLE against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.blocks.cgc import CGC, PLE
from models.blocks.experts import ExpertSet, SoftmaxGate
from models.blocks.scenario import ScenarioCGC, route, scenario_weights


def _set_linear_expert(expert, matrix):
    """Make a one-layer linear expert compute x @ matrix."""
    dense = expert.hidden[0]
    dense.activation = keras.activations.linear
    dense.set_weights([np.asarray(matrix, np.float32), np.zeros(np.shape(matrix)[1], np.float32)])


def test_softmax_gate_mixture_hand_computed():
    gate = SoftmaxGate(2, use_bias=False)
    x = tf.constant([[1.0, 0.0]])
    gate(x)
    gate.dense.set_weights([np.array([[np.log(3.0), 0.0], [0.0, 0.0]], np.float32)])  # logits (ln 3, 0)
    w = gate(x).numpy()
    np.testing.assert_allclose(w, [[0.75, 0.25]], rtol=1e-6)
    experts = tf.constant([[[4.0, 0.0], [0.0, 8.0]]])
    np.testing.assert_allclose(gate(x, experts).numpy(), [[3.0, 2.0]], rtol=1e-6)


def test_cgc_task_gate_mixes_shared_and_own_experts_only():
    layer = CGC(num_tasks=2, num_shared=1, num_specific=1, expert_units=[2], gate_bias=False)
    x = tf.constant([[1.0, 2.0]])
    layer(x)
    _set_linear_expert(layer.shared_experts.experts[0], np.eye(2))           # shared: [1, 2]
    _set_linear_expert(layer.task_experts[0].experts[0], 2 * np.eye(2))      # task 0: [2, 4]
    _set_linear_expert(layer.task_experts[1].experts[0], -np.eye(2))         # task 1: [-1, -2]
    for g in layer.task_gates:
        g.dense.set_weights([np.zeros((2, 2), np.float32)])                  # uniform 1/2, 1/2
    t0, t1 = (o.numpy() for o in layer(x))
    np.testing.assert_allclose(t0, [[1.5, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(t1, [[0.0, 0.0]], atol=1e-6)


def test_ple_shapes_and_levels():
    block = PLE(num_tasks=3, num_levels=2, num_shared=2, num_specific=1, expert_units=[8, 4])
    outs = block(tf.random.normal([5, 6]))
    assert len(outs) == 3 and all(o.shape == (5, 4) for o in outs)
    assert block.levels[0].output_shared and not block.levels[1].output_shared
    again = PLE.from_config(block.get_config())
    assert again.num_levels == 2


def test_expert_set_stacks():
    out = ExpertSet(3, [4])(tf.ones([2, 5]))
    assert out.shape == (2, 3, 4)


def test_scenario_routing_known_and_unknown():
    w = scenario_weights(tf.constant([0, 2, 3]), 3).numpy()
    np.testing.assert_allclose(w, [[1, 0, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    outs = [tf.constant([[1.0]] * 3), tf.constant([[2.0]] * 3), tf.constant([[6.0]] * 3)]
    np.testing.assert_allclose(route(outs, w).numpy(), [[1.0], [6.0], [3.0]], rtol=1e-6)


def test_scenario_cgc_uses_own_scenario_experts():
    layer = ScenarioCGC(num_scenarios=2, num_shared=1, num_specific=1, expert_units=[2])
    x = tf.constant([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    w = scenario_weights(tf.constant([0, 1, 2]), 2)
    layer(x, w)
    _set_linear_expert(layer.shared_experts.experts[0], np.eye(2))
    _set_linear_expert(layer.specific_experts[0].experts[0], 10 * np.eye(2))
    _set_linear_expert(layer.specific_experts[1].experts[0], 20 * np.eye(2))
    m = layer(x, w).numpy()
    np.testing.assert_allclose(m[:, :2], np.ones((3, 2)), rtol=1e-6)       # G: the shared expert
    np.testing.assert_allclose(m[:, 2:], [[10, 10], [20, 20], [15, 15]], rtol=1e-6)  # S_i; unknown -> mean
    assert len(layer.shared_layer_variables()) == 2  # kernel + bias of the shared expert's last layer


@pytest.mark.parametrize("layer", [
    ExpertSet(2, [3]), SoftmaxGate(3, use_bias=False), CGC(2, 1, 1, [4], output_shared=True),
    ScenarioCGC(3, 2, 1, [4], per_scenario_shared_gate=True)])
def test_get_config_round_trip(layer):
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
