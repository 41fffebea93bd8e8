"""Hyperparameter search for the zoo: KerasTuner trials that train exactly as the Trainer does.

Every model's config dataclass declares its search space (``ModelConfig.search_space``, extended by a model's
own config), and so does :class:`models.config.TrainConfig` (learning rate, epochs, loss weighting). A trial
samples one point, builds the model, trains it with :func:`models.trainer.fit_model` (base-rate start, fit,
finalize, calibration) on the training examples, and scores it on held-out examples with the mean
**normalized cross-entropy** of the served heads,

.. math::

   NE = \\frac{1}{|H|} \\sum_{h \\in H} \\frac{\\mathrm{logloss}_h}{H(\\bar y_h)}, \\qquad
   H(\\bar y) = -\\bar y \\log \\bar y - (1 - \\bar y) \\log(1 - \\bar y)

(He et al., "Practical Lessons from Predicting Clicks on Ads at Facebook", ADKDD 2014): a proper scoring rule,
so it rewards ranking *and* calibration, normalised so that a rare head (ctcvr) weighs as much as ctr.

The same search runs in two places: the pipeline's TFX ``Tuner`` component (``msmt run --tune``:
:func:`tuner_fn`, whose best point the Trainer reads from ``fn_args.hyperparameters``), and the quality
benchmark (:func:`search`), which gives every model the same budget (``max_trials``) on the same data.
Hyperparameter names are ``model.<field>`` and ``train.<field>``; keys a user sets explicitly in the model or
train config are held fixed and not searched.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from features.labels import label_key, model_label_arguments

OBJECTIVE = "val_normalized_entropy"
DEFAULT_MAX_TRIALS = 8
MODEL_PREFIX, TRAIN_PREFIX = "model.", "train."


def normalized_entropy(model, dataset) -> Tuple[float, Dict[str, float]]:
    """(mean NE over the served impression heads, NE per head) of ``model`` on ``dataset``."""
    heads = list(model.impression_heads)
    ll = {h: 0.0 for h in heads}
    pos = {h: 0.0 for h in heads}
    n = 0
    for batch in dataset:
        out = model(batch, training=False)
        for h in heads:
            y = tf.reshape(tf.cast(batch[label_key(model.head_target(h))], tf.float32), [-1])
            p = tf.clip_by_value(tf.reshape(out[h], [-1]), 1e-7, 1 - 1e-7)
            ll[h] += float(-tf.reduce_sum(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)))
            pos[h] += float(tf.reduce_sum(y))
        n += int(tf.shape(out[heads[0]])[0])
    per_head = {}
    for h in heads:
        rate = min(max(pos[h] / max(n, 1), 1e-7), 1 - 1e-7)
        entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
        per_head[h] = (ll[h] / max(n, 1)) / entropy
    return float(np.mean(list(per_head.values()))), per_head


def sample(model_name: str, hp, fixed_model: Dict, fixed_train: Dict) -> Tuple[Dict, Dict]:
    """(model config, train config) of the point ``hp`` (a ``keras_tuner.HyperParameters``), over the fixed
    keys; declares the search space in ``hp`` on first use."""
    from models.config import TrainConfig
    from models.registry import model_class

    def choice(name, choices):
        # KerasTuner's Choice turns (False, True) into 0 / 1; its Boolean keeps the type the config checks
        if all(isinstance(c, bool) for c in choices):
            return hp.Boolean(name)
        return hp.Choice(name, list(choices))

    cls = model_class(model_name)
    model_cfg = dict(fixed_model)
    for key, choices in cls.config_class.search_space().items():
        if key not in fixed_model:
            model_cfg[key] = choice(MODEL_PREFIX + key, choices)
    train = dict(fixed_train)
    for key, choices in TrainConfig.search_space().items():
        if key not in fixed_train:
            train[key] = choice(TRAIN_PREFIX + key, choices)
    if isinstance(train.get("weighting"), str):
        train["weighting"] = {"strategy": train["weighting"]}
    return model_cfg, train


def apply_hyperparameters(values: Dict[str, Any], model_cfg: Dict, train: Dict) -> Tuple[Dict, Dict]:
    """The model and train config dicts with the tuned ``values`` (``keras_tuner.HyperParameters.values``)."""
    model_cfg, train = dict(model_cfg), dict(train)
    for name, value in values.items():
        if name.startswith(MODEL_PREFIX):
            model_cfg[name[len(MODEL_PREFIX):]] = value
        elif name.startswith(TRAIN_PREFIX):
            key = name[len(TRAIN_PREFIX):]
            train[key] = {"strategy": value} if key == "weighting" else value
    return model_cfg, train


def _tuner_class():
    import keras_tuner

    class ZooTuner(keras_tuner.Tuner):
        """A KerasTuner ``Tuner`` whose trial trains a zoo model as the Trainer does (no Keras-3 hypermodel)."""

        def __init__(self, oracle, trial_fn: Callable, **kwargs):
            super().__init__(oracle, **kwargs)
            self.trial_fn = trial_fn

        def run_trial(self, trial, *args, **kwargs):
            return {OBJECTIVE: self.trial_fn(trial.hyperparameters)}

        def save_model(self, trial_id, model, step=0):  # the best point is what is kept, not a model
            pass

        def load_model(self, trial):
            raise NotImplementedError("msmt tuning keeps the best hyperparameters, not models")

    return ZooTuner


def make_tuner(model_name: str, spec, input_dims: Dict, train_ds_fn: Callable, validation_ds: Iterable,
               finalize_ds: Iterable, fixed_model: Optional[Dict] = None, fixed_train: Optional[Dict] = None,
               max_trials: int = DEFAULT_MAX_TRIALS, seed: int = 0, directory: str = "tuning",
               log: Callable[[str], None] = print, resume: bool = False):
    """A KerasTuner random search over model ``model_name``'s space; ``tuner.search()`` runs it.

    ``resume=True`` keeps the trials already in ``directory`` (KerasTuner reloads its oracle and re-runs an
    interrupted trial) instead of starting over.

    ``train_ds_fn(train_config)`` returns the training batches for a trial's train config (batch size and
    epochs), ``validation_ds`` the held-out batches (calibration and score), ``finalize_ds`` training batches
    in file order."""
    import keras_tuner

    from models.registry import build_model, train_config
    from models.trainer import fit_model

    fixed_model, fixed_train = dict(fixed_model or {}), dict(fixed_train or {})

    def trial(hp) -> float:
        model_cfg, train = sample(model_name, hp, fixed_model, fixed_train)
        cfg = train_config(model_name, dict(train, seed=seed), source="tuning trial")
        keras.utils.set_random_seed(seed)
        model = build_model(model_name, input_dims, model_cfg, weighting=cfg.weighting,
                            supervised_heads=cfg.supervised_heads, source="tuning trial",
                            **model_label_arguments(spec))
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
        fitted = fit_model(model, cfg, train_ds_fn(cfg), validation_ds, finalize_ds, verbose=0)
        ne, per_head = normalized_entropy(model, validation_ds)
        log(f"tuning {model_name}: NE {ne:.5f} ({', '.join(f'{h} {v:.4f}' for h, v in per_head.items())}) "
            f"in {fitted['train_seconds']:.0f}s with {dict(hp.values)}")
        return ne

    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective(OBJECTIVE, direction="min"),
                                                    max_trials=max_trials, seed=seed)
    return _tuner_class()(oracle, trial, directory=directory, project_name=model_name, overwrite=not resume)


def search(model_name: str, spec, input_dims: Dict, train_ds_fn: Callable, validation_ds: Iterable,
           finalize_ds: Iterable, fixed_model: Optional[Dict] = None, fixed_train: Optional[Dict] = None,
           max_trials: int = DEFAULT_MAX_TRIALS, seed: int = 0, directory: str = "tuning",
           log: Callable[[str], None] = print, resume: bool = False) -> Dict[str, Any]:
    """Run the search; returns ``{"values": best point, "objective": its NE, "trials": [(values, NE)]}``."""
    tuner = make_tuner(model_name, spec, input_dims, train_ds_fn, validation_ds, finalize_ds, fixed_model,
                       fixed_train, max_trials, seed, directory, log, resume)
    tuner.search()
    trials = [(dict(t.hyperparameters.values), t.score) for t in tuner.oracle.trials.values() if t.score is not None]
    best = tuner.get_best_hyperparameters(1)[0]
    return {"values": dict(best.values), "objective": min(s for _, s in trials), "trials": trials}


def tuner_fn(fn_args):
    """TFX Tuner entry point (``custom_config`` as the Trainer's, plus ``max_trials``)."""
    import tensorflow_transform as tft
    from tfx.components.tuner.component import TunerFnResult

    from features.dims import input_dims
    from features.spec import spec_from_dict
    from models.registry import train_config
    from models.trainer import input_dataset

    custom = fn_args.custom_config or {}
    spec = spec_from_dict(custom["spec"], source="Tuner custom_config['spec']")
    model_name = custom.get("model", "shared_bottom")
    fixed_train = dict(custom.get("train") or {})
    seed = train_config(model_name, fixed_train).seed
    tfo = tft.TFTransformOutput(fn_args.transform_graph_path)
    dims = input_dims(spec, tfo.vocabulary_size_by_name).to_dict()

    def train_ds_fn(cfg):
        return input_dataset(fn_args.train_files, tfo, cfg.batch_size, True, 1, cfg.seed)

    validation = input_dataset(fn_args.eval_files, tfo, 1024, False, 1, seed)
    finalize = input_dataset(fn_args.train_files, tfo, 1024, False, 1, seed)
    tuner = make_tuner(model_name, spec, dims, train_ds_fn, validation, finalize, custom.get("model_config"),
                       fixed_train, int(custom.get("max_trials", DEFAULT_MAX_TRIALS)), seed,
                       directory=os.path.join(fn_args.working_dir or ".", "tuning"),
                       log=lambda m: print(m, flush=True))
    return TunerFnResult(tuner=tuner, fit_kwargs={})
