"""TF Serving warm-up records (``assets.extra/tf_serving_warmup_requests``, docs/serving.md).

TF Serving replays these ``PredictionLog`` records when it loads a version, before the version takes traffic,
so the first real requests do not pay for graph tracing and table initialisation. One ``PredictRequest`` is
written per batch size, each calling ``serving_default`` with serialized ``tf.Example``s in ``examples``.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from serving.interface import ASSETS_EXTRA, EXAMPLES_INPUT, SERVING_SIGNATURE

WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_path(model_dir: str) -> str:
    return os.path.join(model_dir, ASSETS_EXTRA, WARMUP_FILE)


def predict_log(serialized_examples: Sequence[bytes], model_name: str,
                signature_name: str = SERVING_SIGNATURE) -> prediction_log_pb2.PredictionLog:
    """One ``PredictionLog`` whose request feeds ``serialized_examples`` to ``signature_name``."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    request.inputs[EXAMPLES_INPUT].CopyFrom(
        tf.make_tensor_proto(list(serialized_examples), dtype=tf.string, shape=[len(serialized_examples)]))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def _batches(examples: Sequence[bytes], batch_sizes: Sequence[int]) -> List[List[bytes]]:
    """For each batch size, the first ``size`` examples, cycling when there are fewer."""
    return [[examples[i % len(examples)] for i in range(size)] for size in batch_sizes]


def write_warmup_requests(model_dir: str, serialized_examples: Sequence[bytes], model_name: str = "msmt",
                          batch_sizes: Sequence[int] = (1, 8)) -> str:
    """Write ``<model_dir>/assets.extra/tf_serving_warmup_requests``; returns its path."""
    examples = list(serialized_examples)
    if not examples:
        raise ValueError("write_warmup_requests: no serialized examples given")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"write_warmup_requests: batch sizes must be >= 1, got {list(batch_sizes)}")
    path = warmup_path(model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in _batches(examples, batch_sizes):
            writer.write(predict_log(batch, model_name).SerializeToString())
    return path


def read_warmup_requests(model_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The ``PredictionLog`` records of a model's warm-up file (``FileNotFoundError`` naming it if absent)."""
    path = warmup_path(model_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no TF Serving warm-up file")
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
