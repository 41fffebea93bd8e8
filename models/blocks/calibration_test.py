"""ScenarioCalibration against hand-computed values, and MultiTaskRanker.calibrate on data whose truth is known."""

import numpy as np
import pytest
import tensorflow as tf

from features.labels import label_key
from models.blocks.calibration import ScenarioCalibration
from models.registry import build_model
from models.testing import savedmodel_round_trip, tiny_batch, tiny_dims

SMALL = {"embedding_dim": 4, "bottom_units": [8], "tower_units": [8]}


def test_platt_scaling_per_scenario_and_unknown_slot():
    layer = ScenarioCalibration(["click", "conv"], num_scenarios=2)
    layer.build()
    layer.slope.assign([[1.0, 2.0], [0.5, 1.0], [3.0, 1.0]])   # rows: scenario 0, 1, unknown slot
    layer.offset.assign([[0.0, -1.0], [1.0, 0.0], [0.0, 0.5]])
    z = {"click": tf.constant([[2.0], [2.0], [2.0], [2.0]]), "conv": tf.constant([[1.0], [1.0], [1.0], [1.0]])}
    out = layer(z, tf.constant([0, 1, 2, 7]))  # 7: an id beyond the unknown slot is the unknown slot
    np.testing.assert_allclose(out["click"].numpy().ravel(), [2.0, 0.5 * 2 + 1, 3 * 2.0, 3 * 2.0])
    np.testing.assert_allclose(out["conv"].numpy().ravel(), [2 * 1 - 1, 1.0, 1 + 0.5, 1 + 0.5])


def test_identity_at_start_not_trainable_and_config_round_trip():
    layer = ScenarioCalibration(["a"], num_scenarios=3, name="cal")
    z = {"a": tf.constant([[0.3], [-1.2]])}
    np.testing.assert_allclose(layer(z, tf.constant([1, 3]))["a"].numpy(), z["a"].numpy())
    assert not layer.trainable_weights and len(layer.weights) == 2
    again = ScenarioCalibration.from_config(layer.get_config())
    assert again.edges == ["a"] and again.num_scenarios == 3 and not again.trainable


def _labels_drawn_from_model(model, n, seed, shift=None):
    """Features plus labels drawn from the model's own edge probabilities (so the model is calibrated), with
    every edge logit moved by ``shift[s]`` in scenario ``s``."""
    rng = np.random.default_rng(seed)
    batch = tiny_batch(n, seed=seed)
    moved = np.vectorize(lambda s: (shift or {}).get(int(s), 0.0))(batch["scenario"])
    p = {e: 1 / (1 + np.exp(-(v.numpy().ravel() + moved))) for e, v in
         model.uncalibrated_logits(batch, training=False).items()}
    click = rng.random(n) < p["click"]
    action = click & (rng.random(n) < p["action"])
    conv_given_click = np.where(action, p["conv_action"], p["conv_click"])
    conv = np.where(click, rng.random(n) < conv_given_click, rng.random(n) < p["conv_unclick"])
    f = lambda x: x.astype(np.float32)  # noqa: E731
    batch.update({label_key("click"): f(click), label_key("raction"): f(action), label_key("conversion"): f(conv),
                  label_key("ctcvr"): f(click & conv), label_key("ctavr"): f(action)})
    return batch


@pytest.mark.parametrize("objective", ["edges", "heads"])
def test_calibrate_recovers_the_probabilities_of_a_model_that_was_made_overconfident(objective):
    tf.keras.utils.set_random_seed(3)
    model = build_model("shared_bottom", tiny_dims().to_dict(), SMALL, with_action=True)
    model(tiny_batch(4))
    data = _labels_drawn_from_model(model, 30_000, seed=1)  # the identity calibration is the truth
    truth = {k: v.numpy().ravel() for k, v in model(data).items()}
    # Miscalibrate: every edge logit doubled and shifted by +1 in every scenario.
    model.calibration.slope.assign(2.0 * np.ones_like(model.calibration.slope.numpy()))
    model.calibration.offset.assign(np.ones_like(model.calibration.offset.numpy()))
    ds = tf.data.Dataset.from_tensor_slices(data).batch(4096)
    summary = model.calibrate(ds, objective=objective)
    assert summary["rows"] == 30_000 and summary["objective"] == objective and set(summary["heads"]) == {"ctr", "ctavr", "ctcvr", "xcvr"}
    assert summary["loss_after"] < summary["loss_before"]
    assert summary["calibration_before"]["ctr"] > 1.3  # doubled logits, +1: far too high
    for head, ratio in summary["calibration_after"].items():
        assert ratio == pytest.approx(1.0, abs=0.06), head
    fitted = {k: v.numpy().ravel() for k, v in model(data).items()}
    for head in ("ctr", "ctavr", "ctcvr", "xcvr"):
        assert np.mean(np.abs(fitted[head] - truth[head])) < 0.03, head
    assert summary["prior_positives"] == 100.0  # the default


def test_scenario_deviation_is_shrunk_by_prior_positives_and_the_unknown_slot_gets_the_pooled_map():
    """Scenario 0's labels come from logits 1.5 lower than the model's; the others match the model.

    A free fit (prior 0) moves scenario 0's click offset by about -1.5 and leaves the others at about 0. With
    the prior equal to the scenario's own curvature H = sum p (1 - p) (computed here from the free fit's
    probabilities), the scenario keeps H / (H + H) = half of its deviation from the pooled offset. With a huge
    prior every scenario takes the pooled map, which sits between the two truths. The unknown slot (row 3) is
    the pooled map in every case."""
    tf.keras.utils.set_random_seed(5)
    model = build_model("shared_bottom", tiny_dims().to_dict(), SMALL, with_action=True)
    model(tiny_batch(4))
    data = _labels_drawn_from_model(model, 40_000, seed=2, shift={0: -1.5})
    ds = tf.data.Dataset.from_tensor_slices(data).batch(8192)
    click = model.edge_names.index("click")
    in_scenario_0 = data["scenario"] == 0

    def fit(prior):
        s = model.calibrate(ds, prior_positives=prior)
        return np.array(s["slope"]), np.array(s["offset"])

    slope, offset = fit(0.0)
    assert offset[0, click] == pytest.approx(-1.5, abs=0.2)
    np.testing.assert_allclose(offset[1:3, click], 0.0, atol=0.2)
    z = model.uncalibrated_logits(data, training=False)["click"].numpy().ravel()[in_scenario_0]
    p = 1 / (1 + np.exp(-(slope[0, click] * z + offset[0, click])))
    curvature = float(np.sum(p * (1 - p)))
    free_deviation = offset[0, click] - offset[3, click]
    half_slope, half_offset = fit(curvature)
    assert (half_offset[0, click] - half_offset[3, click]) / free_deviation == pytest.approx(0.5, abs=0.12)
    pooled_slope, pooled_offset = fit(1e9)
    np.testing.assert_allclose(pooled_offset[:3], np.repeat(pooled_offset[3:], 3, axis=0), atol=1e-3)
    np.testing.assert_allclose(pooled_slope[:3], np.repeat(pooled_slope[3:], 3, axis=0), atol=1e-3)
    assert -1.5 < pooled_offset[3, click] < 0.0
    with pytest.raises(ValueError, match="prior_positives"):
        model.calibrate(ds, prior_positives=-1.0)


def test_fitted_calibration_is_saved_with_the_model(tmp_path):
    model = build_model("shared_bottom", tiny_dims().to_dict(), SMALL, with_action=True)
    model(tiny_batch(4))
    model.calibration.offset.assign(np.full_like(model.calibration.offset.numpy(), -2.0))
    expected, got = savedmodel_round_trip(model, tiny_batch(8), tmp_path / "sm")
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6)
    # -2 on every edge logit lowers ctr below the identity's.
    model.calibration.offset.assign(np.zeros_like(model.calibration.offset.numpy()))
    assert np.all(model(tiny_batch(8))["ctr"].numpy() > expected["ctr"])


def test_train_config_rejects_a_negative_calibration_prior_and_names_the_file():
    from models.config import ConfigError, TrainConfig, parse_config

    assert parse_config(TrainConfig, {"calibration_prior_positives": 0}).calibration_prior_positives == 0.0
    assert parse_config(TrainConfig, {}).calibration_prior_positives == 100.0
    with pytest.raises(ConfigError, match=r"train\.yaml: calibration_prior_positives must be >= 0, got -5"):
        parse_config(TrainConfig, {"calibration_prior_positives": -5}, source="train.yaml")
