"""EntireSpaceHeads against hand-computed compositions and the entire-space identities."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.blocks.heads import EntireSpaceHeads


def _edges(y1, y2, y3, y4=None, y5=None):
    d = {"click": y1, "conv_click": y2, "conv_unclick": y3}
    if y4 is not None:
        d.update(action=y4, conv_action=y5)
    return {k: tf.constant([[v]], tf.float32) for k, v in d.items()}


def test_five_edge_composition_hand_computed():
    y1, y2, y3, y4, y5 = 0.2, 0.1, 0.01, 0.3, 0.5
    out = {k: float(v.numpy()[0, 0]) for k, v in EntireSpaceHeads(with_action=True)(_edges(y1, y2, y3, y4, y5)).items()}
    cvr = 0.1 * 0.7 + 0.3 * 0.5  # 0.22
    assert out["ctr"] == pytest.approx(0.2)
    assert out["cvr"] == pytest.approx(cvr)
    assert out["ctcvr"] == pytest.approx(0.2 * cvr)  # 0.044
    assert out["ctavr"] == pytest.approx(0.06)
    assert out["xcvr"] == pytest.approx(0.044 + 0.8 * 0.01)  # y1*(y2*(1-y4)+y4*y5) + (1-y1)*y3 = 0.052


def test_three_edge_composition_hand_computed():
    out = EntireSpaceHeads()(_edges(0.5, 0.2, 0.04))
    assert set(out) == {"ctr", "cvr", "ctcvr", "xcvr"}
    assert float(out["ctcvr"][0, 0]) == pytest.approx(0.1)
    assert float(out["xcvr"][0, 0]) == pytest.approx(0.1 + 0.5 * 0.04)


def test_identities_on_random_edges():
    rng = np.random.default_rng(0)
    edges = {k: tf.constant(rng.random((500, 1)), tf.float32)
             for k in ("click", "conv_click", "conv_unclick", "action", "conv_action")}
    out = {k: v.numpy() for k, v in EntireSpaceHeads(with_action=True)(edges).items()}
    assert np.all(out["ctcvr"] <= out["ctr"] + 1e-7)
    assert np.all(out["ctcvr"] <= out["xcvr"] + 1e-7)
    assert np.all(out["ctavr"] <= out["ctr"] + 1e-7)
    for v in out.values():
        assert np.all((v >= 0) & (v <= 1))


def test_get_config_round_trip():
    layer = EntireSpaceHeads(with_action=True, name="h")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, EntireSpaceHeads) and again.with_action and again.name == "h"
