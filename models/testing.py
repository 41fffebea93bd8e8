"""Small fixed inputs for model unit tests: InputDims and a batch of transformed features with labels."""

from __future__ import annotations

import numpy as np

from features.dims import InputDims, SparseInput
from features.labels import label_key
from features.preprocessing import MULTIVALENT_MAX_VALUES


SEQUENCE_LENGTH = 5


def tiny_dims(with_prior: bool = True, sequence_pooling: str = "") -> InputDims:
    """With ``sequence_pooling`` (``attention`` / ``mean``), also a behaviour sequence ``recent_items`` that
    shares ``item_id``'s table."""
    sparse = [SparseInput("user_id", 50), SparseInput("item_id", 40), SparseInput("scenario", 4),
              SparseInput("tags", 10, multivalent=True)]
    if sequence_pooling:
        sparse.append(SparseInput("recent_items", 40, multivalent=True, pooling=sequence_pooling, shares="item_id"))
    return InputDims(sparse=tuple(sparse), dense=("price", "activity") if with_prior else ("price",),
                     scenario="scenario", num_scenarios=3,
                     priors={"user": ("user_id", "activity") if with_prior else ("user_id",), "item": ("item_id",),
                             "scenario": ("scenario",)},
                     prior_only=("activity",) if with_prior else ())


def tiny_batch(n: int = 64, seed: int = 0, with_action: bool = True):
    """Transformed features with learnable labels (click depends on item parity and price)."""
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 40, n)
    price = rng.standard_normal(n).astype(np.float32)
    click = ((item % 2 == 0) ^ (price > 1.0)).astype(np.float32)
    conv = (click * (item % 4 == 0)).astype(np.float32)
    action = (click * (price > 0)).astype(np.float32)
    tags = rng.integers(-1, 10, (n, MULTIVALENT_MAX_VALUES)).astype(np.int64)
    batch = {
        "user_id": rng.integers(0, 50, n).astype(np.int64), "item_id": item.astype(np.int64),
        "scenario": rng.integers(0, 4, n).astype(np.int64), "tags": tags, "price": price,
        "activity": rng.standard_normal(n).astype(np.float32),
        "recent_items": np.where(rng.random((n, SEQUENCE_LENGTH)) < 0.7,
                                 rng.integers(0, 40, (n, SEQUENCE_LENGTH)), -1).astype(np.int64),
        label_key("click"): click, label_key("conversion"): conv, label_key("ctcvr"): click * conv,
    }
    if with_action:
        batch[label_key("raction")] = action
        batch[label_key("ctavr")] = click * action
    return batch


def savedmodel_round_trip(model, batch, export_dir):
    """Save ``model`` with a tf.function over the feature dict, reload it; return (expected, reloaded) outputs."""
    import tensorflow as tf

    batch = {k: tf.constant(v) for k, v in batch.items()}
    expected = {k: v.numpy() for k, v in model(batch).items()}

    @tf.function(input_signature=[{k: tf.TensorSpec([None] + list(v.shape[1:]), v.dtype) for k, v in batch.items()}])
    def predict(features):
        return model(features, training=False)

    model.predict_features = predict
    model.save(str(export_dir), save_format="tf")
    loaded = tf.saved_model.load(str(export_dir))  # keep a reference: its variables die with it
    got = {k: v.numpy() for k, v in loaded.predict_features(batch).items()}
    return expected, got


def gradnorm_weight_sum(model, steps: int = 2) -> float:
    """Fit ``model`` (built with GradNorm) a few steps on a fixed batch; the sum of the reported weights."""
    import tensorflow as tf
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(0.01))
    hist = model.fit(tf.data.Dataset.from_tensors(tiny_batch(64)).repeat(steps), verbose=0).history
    return sum(hist[f"weight_{h}"][-1] for h in model.supervised_heads)
