"""Trainer warm start: the last blessed model's variables are restored when they fit, skipped otherwise.
Determinism: the same seed gives the same initial weights, shuffles and trained weights; a seeded input."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.registry import build_model
from models.testing import savedmodel_round_trip, tiny_batch, tiny_dims
from models.trainer import file_sha256, input_dataset, make_deterministic, warm_start

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


class _TransformOutput:
    """The one method of ``tft.TFTransformOutput`` that ``input_dataset`` reads."""

    @staticmethod
    def transformed_feature_spec():
        return {"x": tf.io.FixedLenFeature([], tf.int64), "tags": tf.io.VarLenFeature(tf.int64)}


def _write_examples(path, values):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
        for v in values:
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[v])),
                "tags": tf.train.Feature(int64_list=tf.train.Int64List(value=list(range(v % 3))))})
            ).SerializeToString())


def _xs(ds):
    return [int(v) for batch in ds for v in batch["x"].numpy()]


def test_input_dataset_parses_batches_in_a_seeded_order(tmp_path):
    _write_examples(tmp_path / "a.gz", range(0, 50))
    _write_examples(tmp_path / "b.gz", range(50, 100))
    files = [str(tmp_path / "*.gz")]
    # no shuffle: sorted files, reading order; the last batch is partial; VarLen features stay sparse
    plain = list(input_dataset(files, _TransformOutput(), 16, False, 1, 0))
    assert [int(b["x"].shape[0]) for b in plain] == [16] * 6 + [4]
    assert _xs(plain) == list(range(100))
    first = plain[0]["tags"]
    assert isinstance(first, tf.SparseTensor) and first.dense_shape.numpy().tolist() == [16, 2]
    # shuffled: every record once per epoch, the same order for the same seed, another for another seed
    a, again, other = (_xs(input_dataset(files, _TransformOutput(), 16, True, 2, seed)) for seed in (123, 123, 7))
    assert sorted(a) == sorted(list(range(100)) * 2)
    assert a == again and a != other and a[:100] != list(range(100))
    with pytest.raises(ValueError, match="no transformed examples"):
        input_dataset([str(tmp_path / "missing*")], _TransformOutput(), 16, False, 1, 0)


def test_file_sha256(tmp_path):
    path = tmp_path / "requirements.lock"
    path.write_bytes(b"tensorflow==2.21.0\n")
    assert file_sha256(str(path)) == hashlib.sha256(b"tensorflow==2.21.0\n").hexdigest()
    assert file_sha256(str(tmp_path / "missing")) is None
