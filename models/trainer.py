"""TFX Trainer entry point: ``run_fn`` builds a zoo model from ``custom_config``, trains it on the
transformed examples and exports a SavedModel with the serving signatures (``serving.signatures``).

``custom_config`` keys (set by ``pipeline.create_pipeline``):
  ``spec``: ``FeatureSpec.to_dict()``; ``model``: zoo model name; ``model_config``: the model's config dict;
  ``train``: :class:`models.config.TrainConfig` as a dict; ``warm_start``: start from ``fn_args.base_model``
  (the last blessed model, given by the pipeline's resolver) when its variables fit this model.

Warm start restores the base model's variables by their object path. It succeeds only when the model and its
config are unchanged and every table has the same shape (hashed ids, or vocabularies of the same size);
otherwise the Trainer trains from scratch and says why in the log and in ``train_summary.json``.

Distribution (``TrainConfig.distribution``, ``models.distribution``): the strategy is created first, before
any other TensorFlow op (``MultiWorkerMirroredStrategy`` configures the collective ops at start-up). The input
is sharded by example (``AutoShardPolicy.DATA``: the Transform output has fewer files than a cluster has
workers); ``batch_size`` stays the global batch. In a multi-worker cluster every worker trains and saves (the
save is collective), but only the chief writes ``serving_model_dir`` and ``train_summary.json``; the others
save into a scratch directory that is removed, and write ``worker-<task>-<id>/train_summary.json`` under
``model_run_dir``.

Determinism: :func:`make_deterministic` seeds Python, NumPy and TensorFlow with ``TrainConfig.seed`` and turns on
TensorFlow op determinism (which also makes every ``tf.data`` transformation keep its order); the input files are
listed and shuffled with the same seed, and read in order (:func:`input_dataset`). The same data, config and
seed then give the same weights and metrics on the same machine (CPU). ``train_summary.json`` records the seed
and the sha256 of the repository's ``requirements.lock`` (the pinned environment), when it is there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from typing import Any, Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from features.dims import input_dims
from features.fingerprint import LOCK_FILE, file_sha256
from features.labels import model_label_arguments
from features.spec import spec_from_dict
from models.config import TRAIN_SUMMARY_FILE, to_dict
from models.distribution import choose_strategy, set_mixed_precision, worker_role
from models.registry import build_model, train_config
from models.tuning import apply_hyperparameters
from serving.signatures import export_saved_model

SHUFFLE_BUFFER = 20_000
FINALIZE_BATCHES = 200  # training batches read by MultiTaskRanker.finalize (e.g. normalization statistics)


def make_deterministic(seed: int) -> None:
    """Seed Python's ``random``, NumPy and TensorFlow's global seed, and enable TF op determinism.

    Op determinism makes every op pick a deterministic kernel (or fail loudly when there is none) and forces
    ``tf.data.Options.deterministic``; on CPU it costs next to nothing. It is process-wide and stays on.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def warm_start(model, base_model_dir: str, sample_batch) -> str:
    """Restore ``model``'s variables from the base SavedModel directory; returns a one-line outcome."""
    path = os.path.join(base_model_dir, "variables", "variables")
    if not tf.io.gfile.exists(path + ".index"):
        return f"skipped: no SavedModel variables at {path}"
    model(sample_batch, training=True)  # create every variable (training-only heads too) before restoring
    try:
        model.load_weights(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        reason = str(err).strip().splitlines()[0][:300]
        return f"skipped: the base model does not fit ({reason}); trained from scratch"
    return f"warm-started from {base_model_dir}"


def input_dataset(file_patterns: Sequence[str], tf_transform_output, batch_size: int, shuffle: bool, epochs,
                  seed: int) -> tf.data.Dataset:
    """Batches of transformed examples, parsed batch-first.

    The Transform output's TFRecord files (gzipped, as Transform writes them) are listed and sorted; with
    ``shuffle`` their order is shuffled with ``seed`` and the records go through a seeded shuffle buffer
    (``SHUFFLE_BUFFER``) after ``repeat(epochs)`` (None = forever, for step-based training). Keras' ``fit``
    iterates the whole dataset in every epoch, so epoch-based training passes ``epochs=1`` here and the epochs
    to ``fit``. Then a batch of serialized records is parsed
    with one ``tf.io.parse_example`` against the transformed feature spec. That gives the same tensors as TFX's
    ``data_accessor.tf_dataset_factory`` (TFXIO) at 4.5 instead of 10.6 ms per batch of 1024, so ``run_fn`` does
    not use ``fn_args.data_accessor``. Under a multi-worker strategy each worker takes its share of every global
    batch (``DATA`` sharding).
    """
    paths = sorted({p for pattern in file_patterns for p in tf.io.gfile.glob(pattern)})
    if not paths:
        raise ValueError(f"no transformed examples match {list(file_patterns)}")
    if shuffle:
        random.Random(seed).shuffle(paths)
    compression = "GZIP" if all(p.endswith(".gz") for p in paths) else ""
    ds = tf.data.TFRecordDataset(paths, compression_type=compression).repeat(epochs)
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    feature_spec = tf_transform_output.transformed_feature_spec()
    ds = ds.batch(batch_size).map(lambda records: tf.io.parse_example(records, feature_spec),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def fit_model(model, train_cfg, train_ds, validation_ds, finalize_ds, steps_per_epoch=None, validation_steps=None,
              callbacks=(), verbose=2, warm_started: bool = False) -> Dict[str, Any]:
    """Train ``model`` and make it ready to serve; the one training path of the Trainer and the benchmarks.

    0. with ``train_cfg.base_rate_init`` (and not ``warm_started``), start the edge logits at their base rates
       counted on up to ``FINALIZE_BATCHES`` batches of ``finalize_ds`` (training data, in file order);
    1. ``model.fit`` on ``train_ds`` (``train_cfg.epochs``, or one pass of ``steps_per_epoch`` steps),
       validated on ``validation_ds``;
    2. :meth:`~models.base.MultiTaskRanker.finalize` on up to ``FINALIZE_BATCHES`` batches of ``finalize_ds``
       (training data with the final weights, e.g. normalization statistics);
    3. with ``train_cfg.calibrate``, :meth:`~models.base.MultiTaskRanker.calibrate` on ``validation_ds``
       (held out from training and from the evaluation).

    Returns ``train_seconds``, ``history``, ``edge_base_rates``, ``finalize`` and ``calibration`` (``fitted``
    False when off).
    """
    rates = {}
    if train_cfg.base_rate_init and not warm_started:
        rates = model.initialize_edge_priors(finalize_ds.take(FINALIZE_BATCHES))
    t0 = time.time()
    history = model.fit(train_ds, epochs=1 if steps_per_epoch else train_cfg.epochs, steps_per_epoch=steps_per_epoch,
                        validation_data=validation_ds, validation_steps=validation_steps, callbacks=list(callbacks),
                        verbose=verbose)
    train_seconds = time.time() - t0
    finalized = model.finalize(finalize_ds.take(FINALIZE_BATCHES))
    calibration: Dict[str, Any] = {"fitted": False}
    if train_cfg.calibrate:
        held_out = validation_ds.take(validation_steps) if validation_steps else validation_ds
        calibration = dict(model.calibrate(held_out, prior_positives=train_cfg.calibration_prior_positives),
                           fitted=True)
    return {"train_seconds": train_seconds, "edge_base_rates": rates,
            "history": {k: [float(x) for x in v] for k, v in history.history.items()},
            "finalize": finalized, "calibration": calibration}


def run_fn(fn_args) -> None:
    """Train and export. Called by the TFX Trainer (GenericExecutor)."""
    custom: Dict[str, Any] = dict(fn_args.custom_config or {})
    spec = spec_from_dict(custom["spec"], source="Trainer custom_config['spec']")
    tuned = (getattr(fn_args, "hyperparameters", None) or {}).get("values", {})
    if tuned:  # the Tuner's best point (msmt run --tune)
        custom["model_config"], custom["train"] = apply_hyperparameters(tuned, custom.get("model_config") or {},
                                                                custom.get("train") or {})
        print(f"Trainer: tuned hyperparameters {tuned}", flush=True)
    train_cfg = train_config(custom.get("model", "shared_bottom"), custom.get("train"),
                             source="Trainer custom_config['train']")
    strategy = choose_strategy(train_cfg.distribution)  # first: multi-worker collectives are set up at start
    task_type, task_id, is_chief = worker_role(strategy)
    make_deterministic(train_cfg.seed)
    set_mixed_precision(train_cfg.mixed_precision)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    dims = input_dims(spec, tf_transform_output.vocabulary_size_by_name)

    train_steps = fn_args.train_steps or None
    eval_steps = fn_args.eval_steps or train_cfg.eval_steps
    train_ds = input_dataset(fn_args.train_files, tf_transform_output, train_cfg.batch_size, True,
                             None if train_steps else 1, train_cfg.seed)  # fit() makes the epochs
    eval_ds = input_dataset(fn_args.eval_files, tf_transform_output, train_cfg.batch_size, False, 1,
                            train_cfg.seed)

    with strategy.scope():
        model = build_model(custom.get("model", "shared_bottom"), dims.to_dict(), custom.get("model_config"),
                            weighting=train_cfg.weighting, supervised_heads=train_cfg.supervised_heads,
                            **model_label_arguments(spec))
        model.compile(optimizer=keras.optimizers.Adam(train_cfg.learning_rate))
        warm = "off"
        if custom.get("warm_start"):
            base = getattr(fn_args, "base_model", None)
            warm = warm_start(model, base, next(iter(eval_ds))) if base else "skipped: no blessed model yet"
            print(f"Trainer warm start: {warm}", flush=True)

    log_dir = fn_args.model_run_dir if is_chief else os.path.join(fn_args.model_run_dir,
                                                                   f"worker-{task_type}-{task_id}")
    callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=100)]
    fitted = fit_model(model, train_cfg, train_ds, eval_ds,
                       input_dataset(fn_args.train_files, tf_transform_output, train_cfg.batch_size, False, 1,
                                     train_cfg.seed),
                       steps_per_epoch=train_steps, validation_steps=eval_steps, callbacks=callbacks,
                       warm_started=warm.startswith("warm-started"))
    if fitted["calibration"]["fitted"]:
        cal = fitted["calibration"]
        print("Trainer calibration (mean prediction / mean label on the calibration split): "
              + ", ".join(f"{h} {cal['calibration_before'][h]:.3f} -> {cal['calibration_after'][h]:.3f}"
                          for h in cal["heads"]), flush=True)
    # The serving graph's Transform layer is created at export: under mixed_float16 it would cast the raw
    # float32 features to float16. The trained layers keep the policy they were built with.
    set_mixed_precision(False)
    if is_chief:
        export_saved_model(model, tf_transform_output, spec, fn_args.serving_model_dir)
    else:  # the save is collective: every worker saves, the non-chief ones into a scratch directory
        scratch = tempfile.mkdtemp(prefix=f"msmt-{task_type}-{task_id}-")
        try:
            export_saved_model(model, tf_transform_output, spec, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    summary = {
        "model": custom.get("model", "shared_bottom"),
        "train_seconds": fitted["train_seconds"],
        "history": fitted["history"],
        "steps": int(model.optimizer.iterations.numpy()),
        "input_dims": dims.to_dict(),
        "outputs": list(model.output_keys),
        "supervised_heads": list(model.supervised_heads),
        "model_config": to_dict(model.config),
        "train_config": dataclasses.asdict(train_cfg),
        "tuned_hyperparameters": tuned,
        "edge_base_rates": fitted["edge_base_rates"],
        "finalize": fitted["finalize"],
        "calibration": fitted["calibration"],
        "warm_start": warm,
        "seed": train_cfg.seed,
        "lock_sha256": file_sha256(LOCK_FILE),
        "distribution": {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                         "task_type": task_type, "task_id": task_id, "chief": is_chief,
                         "mixed_precision": train_cfg.mixed_precision},
    }
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, TRAIN_SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2)
