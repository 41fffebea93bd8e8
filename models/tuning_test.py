"""Hyperparameter search: the objective against hand-computed values, the search space, a two-trial search."""

import math

import numpy as np
import pytest
import tensorflow as tf

from features.labels import label_key
from features.spec import resolve_spec
from models.config import TrainConfig
from models.registry import model_class
from models.testing import tiny_batch, tiny_dims
from models.tuning import apply_hyperparameters, normalized_entropy, sample, search


class _Constant:
    """A 'model' that predicts the same probability for every row and head."""

    output_keys = ("ctr", "cvr", "ctcvr")
    impression_heads = ("ctr", "ctcvr")  # cvr is conditional on a click

    def __init__(self, p):
        self.p = p

    @staticmethod
    def head_target(head):
        return {"ctr": "click", "ctcvr": "ctcvr"}[head]

    def __call__(self, batch, training=False):
        n = len(batch[label_key("click")])
        return {k: tf.fill([n, 1], self.p[k]) for k in self.output_keys}


def test_normalized_entropy_is_one_at_the_base_rate_and_lower_when_better():
    click = np.array([1, 0, 0, 0] * 25, np.float32)      # base rate 0.25
    ctcvr = np.array([1, 0, 0, 0, 0] * 20, np.float32)   # base rate 0.2
    data = [{label_key("click"): click, label_key("ctcvr"): ctcvr}]
    ne, per_head = normalized_entropy(_Constant({"ctr": 0.25, "cvr": 0.5, "ctcvr": 0.2}), data)
    assert per_head == {"ctr": pytest.approx(1.0), "ctcvr": pytest.approx(1.0)}  # cvr: not an impression head
    assert ne == pytest.approx(1.0)
    # Predicting 0.5 for ctr: logloss log 2 over the entropy of 0.25.
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    _, worse = normalized_entropy(_Constant({"ctr": 0.5, "cvr": 0.5, "ctcvr": 0.2}), data)
    assert worse["ctr"] == pytest.approx(math.log(2) / h)


class _HP:
    """The part of keras_tuner.HyperParameters that ``sample`` uses: the first value of every choice."""

    def __init__(self):
        self.values = {}

    def Choice(self, name, values):
        self.values[name] = values[0]
        return values[0]


def test_search_space_names_and_fixed_keys():
    hp = _HP()
    model_cfg, train = sample("aem2tl", hp, {"embedding_dim": 12}, {"epochs": 3})
    space = model_class("aem2tl").config_class.search_space()
    assert {"scenario_shared_experts", "l2", "dropout"} <= set(space) and "embedding_dim" in space
    assert "model.embedding_dim" not in hp.values and "train.epochs" not in hp.values  # fixed: not searched
    assert model_cfg["embedding_dim"] == 12 and train["epochs"] == 3
    assert {"model.scenario_shared_experts", "train.learning_rate", "train.weighting"} <= set(hp.values)
    assert train["weighting"] == {"strategy": TrainConfig.search_space()["weighting"][0]}
    again = apply_hyperparameters(hp.values, {"embedding_dim": 12}, {"epochs": 3})
    assert again == (model_cfg, train)


def test_two_trial_search_returns_the_best_point(tmp_path):
    spec = resolve_spec("synthetic")
    data = tf.data.Dataset.from_tensors(tiny_batch(256)).cache()
    result = search("shared_bottom", spec, tiny_dims().to_dict(), lambda cfg: data, data, data,
                    fixed_model={"bottom_units": [8], "tower_units": [8]}, fixed_train={"epochs": 1},
                    max_trials=2, seed=1, directory=str(tmp_path), log=lambda m: None)
    assert len(result["trials"]) == 2
    assert result["objective"] == min(score for _, score in result["trials"])
    assert set(result["values"]) == {v for v in result["trials"][0][0]}
    assert "train.epochs" not in result["values"]


def test_a_boolean_search_choice_stays_boolean_and_passes_the_config_check():
    import keras_tuner

    from models.config import parse_config

    hp = keras_tuner.HyperParameters()
    model_cfg, _ = sample("ektm", hp, {}, {})
    assert model_cfg["enhance"] is False  # not 0: the config accepts only true or false
    hp.values["model.enhance"] = True
    model_cfg, _ = apply_hyperparameters(hp.values, {}, {})
    assert parse_config(model_class("ektm").config_class, model_cfg).enhance is True
