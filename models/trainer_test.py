"""Trainer warm start: the last blessed model's variables are restored when they fit, skipped otherwise."""

import numpy as np
import tensorflow as tf

from models.registry import build_model
from models.testing import savedmodel_round_trip, tiny_batch, tiny_dims
from models.trainer import warm_start

CONFIG = {"embedding_dim": 4, "tower_units": [8]}


def _batch():
    return {k: tf.constant(v) for k, v in tiny_batch(16).items()}


def test_warm_start_restores_identical_predictions(tmp_path):
    base = build_model("shared_bottom", tiny_dims().to_dict(), CONFIG, with_action=True)
    expected, _ = savedmodel_round_trip(base, tiny_batch(16), tmp_path / "base")
    fresh = build_model("shared_bottom", tiny_dims().to_dict(), CONFIG, with_action=True)
    before = fresh(_batch())["ctr"].numpy()
    assert not np.allclose(before, expected["ctr"])  # a different random initialisation
    outcome = warm_start(fresh, str(tmp_path / "base"), _batch())
    assert outcome.startswith("warm-started from"), outcome
    np.testing.assert_allclose(fresh(_batch())["ctr"].numpy(), expected["ctr"], rtol=1e-6)


def test_warm_start_skips_a_model_that_does_not_fit(tmp_path):
    base = build_model("shared_bottom", tiny_dims().to_dict(), CONFIG, with_action=True)
    savedmodel_round_trip(base, tiny_batch(16), tmp_path / "base")
    wider = build_model("shared_bottom", tiny_dims().to_dict(), dict(CONFIG, tower_units=[16]), with_action=True)
    outcome = warm_start(wider, str(tmp_path / "base"), _batch())
    assert outcome.startswith("skipped: the base model does not fit"), outcome
    assert warm_start(wider, str(tmp_path / "missing"), _batch()).startswith("skipped: no SavedModel variables")
