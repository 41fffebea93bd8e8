"""Edge logits start at the edge base rates counted on the training labels."""

import math

import numpy as np
import pytest
import tensorflow as tf

from features.labels import label_key
from models.blocks.edge_prior import EdgePrior, logit
from models.registry import build_model
from models.testing import tiny_batch, tiny_dims

SMALL = {"embedding_dim": 4, "bottom_units": [8], "tower_units": [8]}


def test_layer_adds_logit_of_the_rate():
    layer = EdgePrior(["a", "b"])
    z = {"a": tf.constant([[0.5]]), "b": tf.constant([[-1.0]])}
    np.testing.assert_allclose(layer(z)["a"].numpy(), [[0.5]])  # starts at 0
    assert layer.set_base_rates({"a": 0.2}) == {"a": pytest.approx(math.log(0.25)), "b": 0.0}
    np.testing.assert_allclose(layer(z)["a"].numpy(), [[0.5 + math.log(0.2 / 0.8)]], rtol=1e-6)
    assert EdgePrior.from_config(layer.get_config()).edges == ["a", "b"]
    assert logit(0.0) == pytest.approx(math.log(1e-6 / (1 - 1e-6)))


def _labelled(click, action, conv):
    batch = tiny_batch(len(click))
    f = lambda x: np.array(x, np.float32)  # noqa: E731
    batch.update({label_key("click"): f(click), label_key("raction"): f(action), label_key("conversion"): f(conv)})
    return batch


def test_base_rates_are_conditional_label_rates():
    #              rows:  1  2  3  4  5  6  7  8  9 10
    batch = _labelled([1, 1, 1, 1, 0, 0, 0, 0, 0, 0],    # click
                      [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],    # action (after a click)
                      [1, 0, 1, 0, 1, 0, 0, 0, 0, 0])    # conversion (row 5: view-through)
    model = build_model("shared_bottom", tiny_dims().to_dict(), SMALL, with_action=True)
    rates = model.initialize_edge_priors(tf.data.Dataset.from_tensors(batch).repeat(2))
    s = lambda k, n: (2 * k + 0.5) / (2 * n + 1)  # noqa: E731 - two copies of the batch, Laplace 1/2
    assert rates == {"click": pytest.approx(s(4, 10)),         # 4 clicks of 10
                     "action": pytest.approx(s(2, 4)),         # 2 actions of 4 clicks
                     "conv_action": pytest.approx(s(1, 2)),    # row 1 of rows 1-2
                     "conv_click": pytest.approx(s(1, 2)),     # row 3 of rows 3-4 (click, no action)
                     "conv_unclick": pytest.approx(s(1, 6))}   # row 5 of rows 5-10
    beta = dict(zip(model.edge_prior.edges, model.edge_prior.beta.numpy()))
    assert beta["conv_unclick"] == pytest.approx(logit(s(1, 6)), rel=1e-5)


def test_funnel_and_direct_heads_have_their_own_events():
    batch = _labelled([1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0])
    aitm = build_model("aitm", tiny_dims().to_dict(), {"embedding_dim": 4, "tower_units": [8]}, with_action=True)
    rates = aitm.initialize_edge_priors(tf.data.Dataset.from_tensors(batch))
    assert rates == {"click": pytest.approx(2.5 / 5), "action": pytest.approx(1.5 / 5),
                     "conversion": pytest.approx(1.5 / 5)}  # entire-space: P(click, conversion) = 1/4
    direct = build_model("aem2tl", tiny_dims().to_dict(),
                         {"embedding_dim": 4, "tower_units": [8], "scenario_expert_units": [8],
                          "task_expert_units": [8], "entire_space": False}, with_action=True)
    assert direct.initialize_edge_priors(tf.data.Dataset.from_tensors(batch)) == {
        "ctr": pytest.approx(2.5 / 5), "xcvr": pytest.approx(2.5 / 5)}
