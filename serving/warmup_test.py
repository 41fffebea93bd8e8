"""Tests of serving.warmup: the TF Serving warm-up file round trip, and publishing with warm-up records."""

import os

import pytest
import tensorflow as tf

from serving import warmup
from serving.publish import publish_version
from serving.testing import fake_saved_model


def _example(i):
    return tf.train.Example(features=tf.train.Features(feature={
        "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"u{i}".encode()])),
        "item_price": tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)])),
    })).SerializeToString()


def test_round_trip_one_request_per_batch_size(tmp_path):
    examples = [_example(i) for i in range(3)]
    path = warmup.write_warmup_requests(str(tmp_path), examples, model_name="ranker", batch_sizes=(1, 8))
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    logs = warmup.read_warmup_requests(str(tmp_path))
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert all(r.model_spec.name == "ranker" and r.model_spec.signature_name == "serving_default"
               for r in requests)
    assert all(list(r.inputs) == ["examples"] and r.inputs["examples"].dtype == tf.string.as_datatype_enum
               for r in requests)
    batches = [list(tf.make_ndarray(r.inputs["examples"])) for r in requests]
    assert batches == [examples[:1], [examples[i % 3] for i in range(8)]]
    assert tf.train.Example.FromString(batches[1][4]).features.feature["user_id"].bytes_list.value == [b"u1"]


def test_invalid_inputs_and_missing_file_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no serialized examples"):
        warmup.write_warmup_requests(str(tmp_path), [])
    with pytest.raises(ValueError, match="batch sizes must be >= 1"):
        warmup.write_warmup_requests(str(tmp_path), [b"x"], batch_sizes=(0,))
    with pytest.raises(FileNotFoundError, match="tf_serving_warmup_requests: no TF Serving warm-up file"):
        warmup.read_warmup_requests(str(tmp_path))


def test_publish_writes_warmup_into_the_version(tmp_path):
    model_dir = fake_saved_model(tmp_path / "export")
    final = publish_version(model_dir, str(tmp_path / "serving"), "msmt", warmup_examples=[_example(0)], version=4)
    logs = warmup.read_warmup_requests(final)
    assert [log.predict_log.request.model_spec.name for log in logs] == ["msmt", "msmt"]
    assert not os.path.exists(os.path.join(model_dir, "assets.extra")), "the source export stays untouched"
