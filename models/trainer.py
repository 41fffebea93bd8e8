"""TFX Trainer entry point: ``run_fn`` builds a zoo model from ``custom_config``, trains it on the
transformed examples and exports a SavedModel with the serving signatures (``serving.signatures``).

``custom_config`` keys (set by ``pipeline.create_pipeline``):
  ``spec``: ``FeatureSpec.to_dict()``; ``model``: zoo model name; ``model_config``: the model's config dict;
  ``train``: :class:`models.config.TrainConfig` as a dict.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx_bsl.public import tfxio

from features.dims import input_dims
from features.spec import spec_from_dict
from models.config import TrainConfig, parse_config
from models.distribution import choose_strategy, set_mixed_precision
from models.registry import build_model
from serving.signatures import export_saved_model

TRAIN_SUMMARY_FILE = "train_summary.json"


def _dataset(fn_args, files, tf_transform_output, batch_size: int, shuffle: bool, epochs, seed: int):
    return fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=epochs, shuffle=shuffle,
                                       shuffle_seed=seed, shuffle_buffer_size=20_000),
        tf_transform_output.transformed_metadata.schema,
    ).prefetch(tf.data.AUTOTUNE)


def run_fn(fn_args) -> None:
    """Train and export. Called by the TFX Trainer (GenericExecutor)."""
    cc: Dict[str, Any] = fn_args.custom_config or {}
    spec = spec_from_dict(cc["spec"], source="Trainer custom_config['spec']")
    train_cfg = parse_config(TrainConfig, cc.get("train"), source="Trainer custom_config['train']")
    keras.utils.set_random_seed(train_cfg.seed)
    set_mixed_precision(train_cfg.mixed_precision)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    dims = input_dims(spec, tf_transform_output.vocabulary_size_by_name)

    train_steps = fn_args.train_steps or None
    eval_steps = fn_args.eval_steps or train_cfg.eval_steps
    train_ds = _dataset(fn_args, fn_args.train_files, tf_transform_output, train_cfg.batch_size, True,
                        None if train_steps else train_cfg.epochs, train_cfg.seed)
    eval_ds = _dataset(fn_args, fn_args.eval_files, tf_transform_output, train_cfg.batch_size, False, 1,
                       train_cfg.seed)

    strategy = choose_strategy(train_cfg.distribution)
    with strategy.scope():
        model = build_model(cc.get("model", "shared_bottom"), dims.to_dict(), cc.get("model_config"),
                            with_action=bool(spec.labels.raction), weighting=train_cfg.weighting)
        model.compile(optimizer=keras.optimizers.Adam(train_cfg.learning_rate))

    log_dir = fn_args.model_run_dir
    callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=100)]
    t0 = time.time()
    history = model.fit(train_ds, epochs=1 if train_steps else train_cfg.epochs, steps_per_epoch=train_steps,
                        validation_data=eval_ds, validation_steps=eval_steps, callbacks=callbacks, verbose=2)
    train_seconds = time.time() - t0
    export_saved_model(model, tf_transform_output, spec, fn_args.serving_model_dir)
    summary = {
        "model": cc.get("model", "shared_bottom"),
        "train_seconds": train_seconds,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "input_dims": dims.to_dict(),
        "outputs": list(model.output_keys),
    }
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, TRAIN_SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2)
