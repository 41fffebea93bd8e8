"""Tests of serving.signatures: predict_raw against serving_default on a stub transform, raw decoding, metadata."""

import numpy as np
import pytest
import tensorflow as tf

from serving import signatures
from serving.testing import EXAMPLES, RAW_FEATURES, RAW_SPEC, SPEC, StubModel, StubTransformOutput



@pytest.fixture(scope="module")
def sigs():
    return signatures.build_signatures(StubModel(), StubTransformOutput(), SPEC)


def test_predict_raw_has_one_named_input_per_raw_feature(sigs):
    inputs = sigs["predict_raw"].structured_input_signature[0][0]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "user_id": (tf.string, [None]), "scenario": (tf.string, [None]), "age": (tf.int64, [None]),
        "price": (tf.float32, [None]), "tags": (tf.string, [None])}
    assert set(sigs) == {"serving_default", "predict_raw", "transform_features", "eval_labels"}


def test_predict_raw_matches_serving_default_including_a_missing_float(sigs):
    raw = signatures.raw_inputs_from_examples(EXAMPLES, RAW_FEATURES)
    assert np.isnan(raw["price"][1]) and raw["tags"][1] == b"" and raw["age"].dtype == np.int64
    served = sigs["serving_default"](tf.constant(EXAMPLES))
    predicted = sigs["predict_raw"]({k: tf.constant(v) for k, v in raw.items()})
    assert set(served) == set(predicted) == {"ctr", "ctcvr"}
    for head in served:
        assert served[head].shape == (3,)
        np.testing.assert_allclose(predicted[head].numpy(), served[head].numpy(), atol=1e-6)


def test_examples_missing_a_feature_decode_to_the_missing_value():
    ex = tf.train.Example()
    ex.features.feature["age"].int64_list.value.append(4)
    raw = signatures.raw_inputs_from_examples([ex.SerializeToString()], RAW_FEATURES)
    assert raw["user_id"].tolist() == [b""] and raw["age"].tolist() == [4] and np.isnan(raw["price"][0])


def test_export_metadata_round_trip_and_missing_file(tmp_path):
    meta = signatures.export_metadata(SPEC, ["ctr", "ctcvr"], {k: RAW_SPEC[k] for k in RAW_FEATURES})
    assert set(meta) == {"spec", "heads", "raw_features", "required_features"}
    assert meta["required_features"] == ["user_id", "scenario"]  # both always present in the stub's schema
    assert meta["heads"] == ["ctcvr", "ctr"] and meta["raw_features"] == RAW_FEATURES
    signatures.write_export_metadata(str(tmp_path), meta)
    assert signatures.read_export_metadata(str(tmp_path)) == meta
    with pytest.raises(FileNotFoundError, match=r"nothing/assets.extra/msmt_export.json: no export metadata"):
        signatures.read_export_metadata(str(tmp_path / "nothing"))


def test_serving_default_requires_only_ids_and_scenario(sigs):
    assert signatures.required_features(SPEC, RAW_FEATURES) == ["user_id", "scenario"]
    parse = signatures.serving_feature_spec(StubTransformOutput(), SPEC)
    assert parse["user_id"] == RAW_SPEC["user_id"] and parse["scenario"] == RAW_SPEC["scenario"]
    assert parse["age"] == tf.io.FixedLenFeature([1], tf.int64, default_value=[0])
    assert parse["tags"] == tf.io.FixedLenFeature([1], tf.string, default_value=[b""])
    assert parse["price"] == RAW_SPEC["price"] and "click" not in parse


def test_a_missing_optional_feature_is_scored_like_its_missing_value(sigs):
    ex = tf.train.Example.FromString(EXAMPLES[0])
    for name in ("age", "tags", "price"):
        del ex.features.feature[name]
    served = sigs["serving_default"](tf.constant([ex.SerializeToString()]))
    raw = signatures.raw_inputs_from_examples([ex.SerializeToString()], RAW_FEATURES)
    assert raw["age"].tolist() == [0] and raw["tags"].tolist() == [b""] and np.isnan(raw["price"][0])
    predicted = sigs["predict_raw"]({k: tf.constant(v) for k, v in raw.items()})
    for head in served:
        assert np.isfinite(served[head].numpy()).all()
        np.testing.assert_allclose(predicted[head].numpy(), served[head].numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["user_id", "scenario"])
def test_a_missing_required_feature_fails_clearly_and_the_next_request_is_served(sigs, name):
    ex = tf.train.Example.FromString(EXAMPLES[0])
    del ex.features.feature[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Feature: {name} \(data type: string\) is required"):
        sigs["serving_default"](tf.constant([EXAMPLES[1], ex.SerializeToString()]))
    assert sigs["serving_default"](tf.constant(EXAMPLES))["ctr"].shape == (3,)


def test_predict_raw_inputs_with_different_row_counts_fail_naming_the_input(sigs):
    raw = signatures.raw_inputs_from_examples(EXAMPLES, RAW_FEATURES)
    raw["user_id"] = raw["user_id"][:2]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="predict_raw: input user_id has a different number of rows than input age"):
        sigs["predict_raw"]({k: tf.constant(v) for k, v in raw.items()})


def test_predict_raw_inputs_are_the_column_names_even_when_they_are_not_identifiers(tmp_path):
    """A loaded signature renames column ``121`` to ``arg_121`` and lower-cases ``D150_14`` in its TensorSpecs;
    keyed on those, scoring fed the missing value instead of the column. The metadata's names are taken,
    and the loaded function accepts them."""
    inputs = {"121": tf.TensorSpec([None], tf.int64, name="121"),
              "D150_14": tf.TensorSpec([None], tf.float32, name="D150_14")}
    module = tf.Module()
    module.f = tf.function(lambda features: {"out": tf.cast(features["121"], tf.float32) * 10.0
                                             + features["D150_14"]}, input_signature=[inputs])
    tf.saved_model.save(module, str(tmp_path), signatures={"predict_raw": module.f.get_concrete_function()})
    fn = tf.saved_model.load(str(tmp_path)).signatures["predict_raw"]
    assert "121" not in fn.structured_input_signature[1]  # what a caller keyed on these would have missed
    metadata = {"raw_features": {"121": "int64", "D150_14": "float32"}}
    found = signatures.predict_raw_inputs(fn, metadata)
    assert found == {"121": tf.int64, "D150_14": tf.float32}
    out = fn(**{"121": tf.constant([3, 4], tf.int64), "D150_14": tf.constant([0.5, 0.25])})["out"].numpy()
    np.testing.assert_allclose(out, [30.5, 40.25])
    with pytest.raises(ValueError, match="predict_raw takes 2 inputs, the export metadata lists 1"):
        signatures.predict_raw_inputs(fn, {"raw_features": {"121": "int64"}})
