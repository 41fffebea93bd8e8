"""Models over declared tasks (not the funnel): TaskChainHeads' formula, and every zoo model (AEM2TL with and
without its entire-space module) builds, serves one head per task with the right edge priors and round-trips
its config; a chained and an AIT model train, calibrate and round-trip a SavedModel; a config naming an
undeclared task is refused, naming it."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from features.labels import label_key
from models.blocks.heads import TaskChainHeads
from models.config import ConfigError, TaskMismatchError
from models.registry import MODELS, build_model, model_outputs
from models.testing import savedmodel_round_trip, tiny_batch, tiny_dims
from models.zoo_test import _config

TASKS = (("click", None), ("like", "click"), ("follow", "like"), ("long_view", None))


def _batch(n=128, seed=0):
    """tiny_batch's features with four task labels: like only after click, follow only after like."""
    batch = {k: v for k, v in tiny_batch(n, seed).items() if not k.startswith("label_")}
    rng = np.random.default_rng(seed + 1)
    click = (batch["item_id"] % 2 == 0).astype(np.float32)
    like = click * (batch["price"] > 0)
    follow = like * (rng.random(n) < 0.5)
    long_view = (batch["price"] > 0.5).astype(np.float32)
    return dict(batch, **{label_key("click"): click, label_key("like"): like.astype(np.float32),
                          label_key("follow"): follow.astype(np.float32), label_key("long_view"): long_view})


def test_task_chain_heads_multiply_the_edges_along_each_chain():
    heads = TaskChainHeads(TASKS)
    edges = {"click": tf.constant([[0.5], [0.2]]), "like": tf.constant([[0.4], [1.0]]),
             "follow": tf.constant([[0.5], [0.25]]), "long_view": tf.constant([[0.3], [0.9]])}
    out = heads(edges)
    expected = {"click": [0.5, 0.2], "like": [0.2, 0.2], "follow": [0.1, 0.05], "long_view": [0.3, 0.9]}
    assert list(out) == list(expected)
    for k, v in expected.items():
        assert out[k].numpy().ravel().tolist() == pytest.approx(v), k
    assert heads.edges == heads.output_keys == ("click", "like", "follow", "long_view")
    assert heads.edge_events() == {"click": (("+click",), ()), "like": (("+like",), ("+click",)),
                                   "follow": (("+follow",), ("+like",)), "long_view": (("+long_view",), ())}
    assert TaskChainHeads.from_config(heads.get_config()).tasks == TASKS
    with pytest.raises(ValueError, match="whose 'after' is one of them"):
        TaskChainHeads((("like", "click"),))


def test_every_model_serves_declared_tasks_and_a_config_naming_an_undeclared_task_is_refused():
    assert model_outputs("mmoe", None, False, True, tasks=TASKS) == ("click", "like", "follow", "long_view")
    with pytest.raises(TaskMismatchError, match="names the task 'purchase'") as e:
        model_outputs("ektm", {"transmit_to": ["like", "purchase"]}, False, True, tasks=TASKS)
    assert "like (after click), follow (after like)" in str(e.value)
    with pytest.raises(ConfigError, match="unknown edge 'like'"):  # the funnel's names are its edges
        build_model("ektm", tiny_dims().to_dict(), dict(_config("ektm"), transmit_to=["like"]))


# Models whose edge is the task over all impressions (not given the task before): AITM's end-to-end outputs and
# AEM2TL's direct towers (entire_space: false).
DIRECT = ("aitm", "aem2tl_direct")


def _task_model(name):
    if name == "aem2tl_direct":
        return build_model("aem2tl", tiny_dims().to_dict(), dict(_config("aem2tl"), entire_space=False), tasks=TASKS)
    return build_model(name, tiny_dims().to_dict(), _config(name), tasks=TASKS)


@pytest.fixture(params=sorted(MODELS) + ["aem2tl_direct"])
def name(request):
    return request.param


def test_a_task_model_serves_one_head_per_task_with_its_edge_priors(name):
    keras.utils.set_random_seed(1)
    model = _task_model(name)
    batch = _batch()
    out = model(batch)
    assert set(out) == set(model.output_keys) == set(model.impression_heads) == {"click", "like", "follow",
                                                                                 "long_view"}
    assert model.supervised_heads == model.output_keys
    rates = model.initialize_edge_priors([batch])
    if name in DIRECT:  # the edge is the task over all impressions
        assert rates["like"] == pytest.approx((batch["label_like"].sum() + 0.5) / (len(batch["label_like"]) + 1))
    else:  # the edge is the task given the one before
        assert rates["like"] == pytest.approx((batch["label_like"].sum() + 0.5) / (batch["label_click"].sum() + 1))
    if name != "aem2tl_direct":  # chained or projected: a task is never above the one it comes after
        p = {k: model(batch)[k].numpy() for k in out}
        assert np.all(p["follow"] <= p["like"] + 1e-7) and np.all(p["like"] <= p["click"] + 1e-7)
    cfg = model.get_config()
    assert type(model).from_config(cfg).get_config() == cfg and cfg["tasks"] == [list(t) for t in TASKS]


# Chained edges and AIT's end-to-end outputs: training, calibration and serving go through the shared base class,
# so these two cover the rest (AEM2TL's direct towers, whose outputs and edge priors the test above checks, take
# 23 s here: suite time).
@pytest.mark.parametrize("name", ["shared_bottom", "aitm"])
def test_a_task_model_trains_calibrates_and_round_trips_through_a_savedmodel(name, tmp_path):
    keras.utils.set_random_seed(1)
    model, batch = _task_model(name), _batch()
    model.initialize_edge_priors([batch])
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensors(batch)
    before = model.evaluate(ds, return_dict=True, verbose=0)["total_loss"]
    model.fit(ds.repeat(12), verbose=0)
    assert model.evaluate(ds, return_dict=True, verbose=0)["total_loss"] < before
    summary = model.calibrate([batch], steps=20)
    assert summary["heads"] == ["click", "like", "follow", "long_view"]
    expected, got = savedmodel_round_trip(model, _batch(8), tmp_path / "sm")
    assert set(expected) == {"click", "like", "follow", "long_view"}
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)
