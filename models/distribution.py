"""Device-agnostic training: the ``tf.distribute`` strategy and mixed-precision policy chosen by config."""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tf_keras as keras


def choose_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over all GPUs when there are several, else the default strategy;
    ``mirrored``: MirroredStrategy over the visible devices (GPUs, or logical CPUs);
    ``multi_worker``: MultiWorkerMirroredStrategy configured from ``TF_CONFIG``; ``default``: no distribution."""
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("distribution 'multi_worker' needs the TF_CONFIG environment variable")
        json.loads(os.environ["TF_CONFIG"])  # fail early on malformed TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_mixed_precision(enabled: bool) -> None:
    """Switch the global Keras policy; model outputs are cast to float32 by the heads either way."""
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")


def worker_role(strategy: tf.distribute.Strategy):
    """``(task_type, task_id, is_chief)`` of this process in a multi-worker cluster; ``(None, None, True)``
    otherwise. The chief is the ``chief`` task, or worker 0 when the cluster has no ``chief`` task (the
    ``TF_CONFIG`` convention of ``MultiWorkerMirroredStrategy``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, None, True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return task_type, task_id, chief
