"""AEM2TL specifics: the five entire-space heads, the supervised set, and the ablation switches."""

import numpy as np
import pytest
import tensorflow as tf

from models.registry import build_model
from models.testing import tiny_batch, tiny_dims

SMALL = {"embedding_dim": 4, "tower_units": [8], "scenario_expert_units": [8], "task_expert_units": [8],
         "scenario_shared_experts": 2}


def _model(with_action=True, supervised_heads=None, **switches):
    return build_model("aem2tl", tiny_dims().to_dict(), dict(SMALL, **switches), with_action=with_action,
                       supervised_heads=supervised_heads)


def _names(model):
    model(tiny_batch(4))
    return {v.name for v in model.trainable_variables}


def _gate_inputs(gate, n, backbone_width=8):
    """Random (prior, backbone) inputs of the widths the built gate expects (tower input width 8)."""
    in_width = int(gate.hidden.kernel.shape[0])
    return tf.random.normal([n, in_width - backbone_width]), tf.random.normal([n, backbone_width])


def test_five_edges_and_supervised_heads():
    model = _model()
    assert set(model.heads.edges) == {"click", "conv_click", "conv_unclick", "action", "conv_action"}
    # Default: every head the entire-space module composes is supervised (ctcvr included, unlike the paper).
    assert model.supervised_heads == ("ctr", "ctavr", "ctcvr", "xcvr")
    out = model(tiny_batch(8))
    # xcvr - ctcvr = (1 - y1) y3 >= 0
    assert np.all(out["xcvr"].numpy() >= out["ctcvr"].numpy() - 1e-7)


def test_without_action_label_drops_ctavr():
    model = _model(with_action=False)
    assert set(model.heads.edges) == {"click", "conv_click", "conv_unclick"}
    assert model.supervised_heads == ("ctr", "ctcvr", "xcvr")


def test_paper_losses_are_one_setting_away():
    model = _model(supervised_heads=("ctr", "ctavr", "xcvr"))
    assert model.supervised_heads == ("ctr", "ctavr", "xcvr")
    assert set(model.tasks) == {"ctr", "ctavr", "xcvr"}


def test_one_tower_per_scenario_and_task():
    model = _model()
    model(tiny_batch(4))
    assert len(model.towers.towers) == 3 and all(len(t) == 5 for t in model.towers.towers)


@pytest.mark.parametrize("switch, absent", [
    ("scenario_cgc", "scenario_cgc/"),
    ("task_cgc", "task_cgc/"),
    ("personalized_gate", "gate_hidden"),
])
def test_ablation_switch_removes_module(switch, absent):
    full = _names(_model())
    ablated = _names(_model(**{switch: False}))
    assert any(absent in n for n in full)
    assert not any(absent in n for n in ablated), [n for n in ablated if absent in n][:3]


def test_without_entire_space_two_direct_heads():
    model = _model(entire_space=False)
    out = model(tiny_batch(4))
    assert set(out) == {"ctr", "xcvr"}
    assert model.supervised_heads == ("ctr", "xcvr")


def test_gates_start_near_one_and_stay_in_range():
    model = _model()
    model(tiny_batch(4))
    gate = model.towers.towers[0][0].gates[0]
    prior, backbone = _gate_inputs(gate, 6)
    delta = gate(prior, backbone).numpy()
    assert np.all((delta > 0) & (delta < 2.0))
    np.testing.assert_allclose(delta, 1.0, atol=0.1)


def test_gate_does_not_backpropagate_into_backbone():
    model = _model()
    model(tiny_batch(4))
    gate = model.towers.towers[0][0].gates[0]
    prior, backbone = _gate_inputs(gate, 3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([prior, backbone])
        out = tf.reduce_sum(gate(prior, backbone))
    assert tape.gradient(out, backbone) is None
    assert tape.gradient(out, prior) is not None
