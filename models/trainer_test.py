"""Trainer warm start: the last blessed model's variables are restored when they fit, skipped otherwise.
Determinism: the same seed gives the same initial weights, shuffles and trained weights; a seeded input."""

import hashlib

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.registry import build_model
from models.testing import savedmodel_round_trip, tiny_batch, tiny_dims
from models.trainer import _dataset, file_sha256, make_deterministic, warm_start

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


def _train_once(seed: int, dropout: float = 0.2):
    """Seed, build, shuffle and fit a small model for a few steps (dropout adds random ops to every step)."""
    make_deterministic(seed)
    model = build_model("shared_bottom", tiny_dims().to_dict(), dict(CONFIG, dropout=dropout), with_action=True)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    batches = tf.data.Dataset.from_tensor_slices(tiny_batch(256)).shuffle(256, seed=seed).batch(32)
    history = model.fit(batches, epochs=2, verbose=0).history
    return [w.numpy() for w in model.weights], history["loss"]


def test_same_seed_same_weights_and_losses_other_seed_differs():
    weights, losses = _train_once(7)
    again_weights, again_losses = _train_once(7)
    assert losses == again_losses  # bit-identical on CPU
    assert len(weights) == len(again_weights)
    for a, b in zip(weights, again_weights):
        np.testing.assert_array_equal(a, b)
    other_weights, _ = _train_once(8)
    assert any(not np.array_equal(a, b) for a, b in zip(weights, other_weights))


def test_input_is_seeded_and_ordered():
    seen = {}

    class Accessor:
        def tf_dataset_factory(self, files, options, schema):
            seen.update(files=files, options=options)
            return tf.data.Dataset.range(3)

    class Args:
        data_accessor = Accessor()

    class TransformOutput:
        class transformed_metadata:
            schema = None

    _dataset(Args(), ["f"], TransformOutput(), 64, True, 2, 123)
    opts = seen["options"]
    assert opts.shuffle and opts.shuffle_seed == 123 and not opts.sloppy_ordering
    assert opts.batch_size == 64 and opts.num_epochs == 2


def test_file_sha256(tmp_path):
    path = tmp_path / "requirements.lock"
    path.write_bytes(b"tensorflow==2.21.0\n")
    assert file_sha256(str(path)) == hashlib.sha256(b"tensorflow==2.21.0\n").hexdigest()
    assert file_sha256(str(tmp_path / "missing")) is None
