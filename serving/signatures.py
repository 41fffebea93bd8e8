"""SavedModel serving signatures with the TFT transform graph inside (docs/serving.md).

* ``serving_default``: one string input ``examples`` (serialized ``tf.Example``) -> ``{head: [batch]}``
  probabilities. This is the signature TF Serving, BulkInferrer and RunInference call. Parsed with
  :func:`serving_feature_spec`: only the id and scenario features (``REQUIRED_ROLES``) are required; a request
  without one fails with ``InvalidArgumentError: ... Feature: <name> (data type: ...) is required but could
  not be found``. Any other feature may be left out and is then the missing value (``""``, ``0``, NaN)
  that the transform imputes, exactly as ``predict_raw`` given that value.
* ``predict_raw``: one named input per raw feature column, shape ``[batch]``, with the dtype of the raw
  parsing spec (string / int64 / float32; a multivalent feature is its raw separator-joined string; a
  missing float is NaN) -> the same dict as ``serving_default``. Inputs with different numbers of rows
  fail with an ``InvalidArgumentError`` naming them.
* ``transform_features``: serialized examples (features and labels) -> every transformed feature.
* ``eval_labels``: serialized examples -> only the transformed label targets (``label_ctcvr`` ...). TFMA runs
  it as a preprocessing function to get labels; it returns no features, so TFMA slices on the raw columns
  (e.g. the scenario name, not its index).

:func:`export_saved_model` also writes ``assets.extra/msmt_export.json`` (``{"spec": FeatureSpec.to_dict(),
"heads": [sorted output keys of serving_default], "raw_features": {name: "string"|"int64"|"float32"},
"required_features": [names serving_default requires]}``),
which :func:`read_export_metadata` reads back for the model checks and batch scoring.

The model is any callable Keras model that takes the transformed feature dict and returns
``{head: [batch, 1]}``; this module does not import ``models`` (docs/architecture.md).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from features.labels import is_label_feature
from features.records import MISSING_VALUES
from features.spec import FeatureSpec
from serving.interface import (EVAL_LABELS_SIGNATURE, EXAMPLES_INPUT, PREDICT_RAW_SIGNATURE, REQUIRED_ROLES,
                               SERVING_SIGNATURE, TRANSFORM_SIGNATURE, export_metadata_path)

RAW_DTYPES = {tf.string: "string", tf.int64: "int64", tf.float32: "float32"}
_MISSING = {k: v.encode() if isinstance(v, str) else v for k, v in MISSING_VALUES.items()}  # bytes for strings


def raw_feature_spec(tf_transform_output, columns: Iterable[str]) -> Dict[str, object]:
    """The raw parsing spec restricted to ``columns`` that the data's schema has."""
    full = tf_transform_output.raw_feature_spec()
    return {c: full[c] for c in columns if c in full}


def required_features(spec: FeatureSpec, columns: Iterable[str]) -> List[str]:
    """The features of ``spec`` among ``columns`` whose role is in ``REQUIRED_ROLES`` (ids and scenario).

    A request without them cannot be attributed or routed, so it is refused; an unseen or empty value is a
    legitimate cold-start request and is scored.
    """
    columns = set(columns)
    return [f.name for f in spec.features if f.role in REQUIRED_ROLES and f.name in columns]


def serving_feature_spec(tf_transform_output, spec: FeatureSpec) -> Dict[str, object]:
    """The parsing spec of ``serving_default`` requests: the raw spec of the features, where every
    single-valued ``FixedLenFeature`` without a default, except :func:`required_features`, gets the missing
    value of its dtype (``""``, ``0``, NaN) as default. That is what ``predict_raw`` and
    :func:`raw_inputs_from_examples` use for a missing value, and what the transform treats as missing
    (NaN floats are imputed with the spec's ``default``). The schema infers ``FixedLenFeature`` for every
    column its training data always had, which would otherwise make a request lacking any of them fail.
    A required feature keeps its schema form: one the data always had stays required; one the data
    sometimes lacked (``VarLenFeature``) stays optional, as it was in training.
    """
    parse = raw_feature_spec(tf_transform_output, [f.name for f in spec.features])
    required = set(required_features(spec, parse))
    out = {}
    for name, s in parse.items():
        if (name not in required and isinstance(s, tf.io.FixedLenFeature) and s.default_value is None
                and list(s.shape) in ([], [1]) and s.dtype in RAW_DTYPES):
            missing = _MISSING[RAW_DTYPES[s.dtype]]
            s = tf.io.FixedLenFeature(s.shape, s.dtype, default_value=[missing] if s.shape else missing)
        out[name] = s
    return out


def _raw_dtype_name(name: str, parse_spec) -> str:
    if parse_spec.dtype not in RAW_DTYPES:
        raise ValueError(f"raw feature {name!r}: dtype {parse_spec.dtype.name} is not one of "
                         f"{sorted(RAW_DTYPES.values())}")
    return RAW_DTYPES[parse_spec.dtype]


def _as_parsed(name: str, x: tf.Tensor, parse_spec):
    """A ``[batch]`` raw input in the form ``tf.io.parse_example`` gives for ``parse_spec``."""
    if isinstance(parse_spec, tf.io.FixedLenFeature) and list(parse_spec.shape) in ([], [1]):
        return tf.reshape(x, [-1] + list(parse_spec.shape))
    if isinstance(parse_spec, tf.io.VarLenFeature):
        present = tf.math.is_finite(x) if x.dtype.is_floating else tf.fill(tf.shape(x), True)
        rows = tf.where(present)[:, 0]
        return tf.SparseTensor(tf.stack([rows, tf.zeros_like(rows)], axis=1), tf.boolean_mask(x, present),
                               tf.stack([tf.shape(x, out_type=tf.int64)[0], tf.constant(1, tf.int64)]))
    raise ValueError(f"raw feature {name!r}: predict_raw supports single-valued FixedLenFeature or "
                     f"VarLenFeature, not {parse_spec}")


def _same_batch_size(features: Mapping[str, tf.Tensor]) -> List[tf.Operation]:
    """Assertions that every ``predict_raw`` input has as many rows as the first one (in name order); a
    mismatch fails with an ``InvalidArgumentError`` naming both inputs instead of deep inside the model."""
    names = sorted(features)
    rows = tf.shape(features[names[0]])[0]
    return [tf.debugging.assert_equal(
        tf.shape(features[k])[0], rows,
        message=f"predict_raw: input {k} has a different number of rows than input {names[0]}; every raw "
                f"input must have one value per row")
        for k in names[1:]]


def _predict(model, raw) -> Dict[str, tf.Tensor]:
    outputs = model(model.tft_layer(raw), training=False)
    return {k: tf.reshape(tf.cast(v, tf.float32), [-1]) for k, v in outputs.items()}


def build_signatures(model, tf_transform_output, spec: FeatureSpec) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Concrete functions for ``serving_default``, ``predict_raw``, ``transform_features``, ``eval_labels``."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    feature_spec = raw_feature_spec(tf_transform_output, [f.name for f in spec.features])
    request_spec = serving_feature_spec(tf_transform_output, spec)
    full_spec = raw_feature_spec(tf_transform_output, [f.name for f in spec.features]
                                 + list(spec.label_columns.values()))
    raw_inputs = {name: tf.TensorSpec([None], s.dtype, name=name) for name, s in feature_spec.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(examples):
        return _predict(model, tf.io.parse_example(examples, request_spec))

    @tf.function(input_signature=[raw_inputs])
    def predict_raw(features):
        with tf.control_dependencies(_same_batch_size(features)):
            parsed = {k: _as_parsed(k, tf.identity(features[k]), s) for k, s in feature_spec.items()}
        return _predict(model, parsed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(examples):
        raw = tf.io.parse_example(examples, full_spec)
        return model.tft_layer(raw)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def eval_labels(examples):
        raw = tf.io.parse_example(examples, full_spec)
        return {k: v for k, v in model.tft_layer(raw).items() if is_label_feature(k)}

    return {
        SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        PREDICT_RAW_SIGNATURE: predict_raw.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
        EVAL_LABELS_SIGNATURE: eval_labels.get_concrete_function(),
    }


def export_metadata(spec: FeatureSpec, heads: Iterable[str], raw_spec: Mapping[str, object]) -> Dict:
    """The content of ``assets.extra/msmt_export.json``; ``required_features`` are the features without which
    ``serving_default`` refuses a request (:func:`serving_feature_spec`), so that batch scoring, which calls
    ``predict_raw``, refuses the same rows."""
    required = [n for n in required_features(spec, raw_spec)
                if isinstance(raw_spec[n], tf.io.FixedLenFeature) and raw_spec[n].default_value is None]
    return {"spec": spec.to_dict(), "heads": sorted(heads),
            "raw_features": {name: _raw_dtype_name(name, s) for name, s in raw_spec.items()},
            "required_features": required}


def write_export_metadata(model_dir: str, metadata: Mapping) -> str:
    path = export_metadata_path(model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(metadata, fh, indent=2, sort_keys=True)
    return path


def read_export_metadata(model_dir: str) -> Dict:
    """``assets.extra/msmt_export.json`` of an exported model: keys ``spec``, ``heads``, ``raw_features``."""
    path = export_metadata_path(model_dir)
    if not tf.io.gfile.exists(path):  # local paths and object stores (gs://, s3://, hdfs://)
        raise FileNotFoundError(f"{path}: no export metadata; was {model_dir} exported by "
                                f"serving.signatures.export_saved_model?")
    with tf.io.gfile.GFile(path) as fh:
        meta = json.loads(fh.read())
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object with 'spec', 'heads' and 'raw_features'")
    return meta


def export_saved_model(model, tf_transform_output, spec: FeatureSpec, export_dir: str) -> str:
    """Save ``model`` as a TF SavedModel with the serving signatures and export metadata; returns ``export_dir``."""
    signatures = build_signatures(model, tf_transform_output, spec)
    os.makedirs(os.path.dirname(export_dir.rstrip("/")) or ".", exist_ok=True)
    model.save(export_dir, save_format="tf", signatures=signatures)
    heads = signatures[SERVING_SIGNATURE].structured_outputs.keys()
    raw_spec = raw_feature_spec(tf_transform_output, [f.name for f in spec.features])
    write_export_metadata(export_dir, export_metadata(spec, heads, raw_spec))
    return export_dir


_NUMPY_DTYPES = {"string": object, "int64": np.int64, "float32": np.float32}


def predict_raw_inputs(signature, metadata: Optional[Mapping]) -> Dict[str, tf.DType]:
    """The inputs of a loaded ``predict_raw`` signature: raw column name -> dtype.

    The keys of the loaded function's ``structured_input_signature`` are not always the column names:
    TensorFlow renames a name that is not a Python identifier (column ``121`` becomes ``arg_121``), and a
    TensorSpec's own name is lower-cased. Keyed on those, a caller would feed the missing value instead of the
    column (the Ali-CCP spec, whose columns are numbers, showed it). The SignatureDef that TF Serving reads
    keeps the column names, and so does the export metadata (``raw_features``), which this reads; the loaded
    function takes the column names as keywords. Without metadata the structured keys are the best there is.
    """
    structured = signature.structured_input_signature[1]
    if not metadata or not metadata.get("raw_features"):
        return {k: s.dtype for k, s in structured.items()}
    inputs = {name: tf.as_dtype(dtype) for name, dtype in metadata["raw_features"].items()}
    if len(inputs) != len(structured):
        raise ValueError(f"predict_raw takes {len(structured)} inputs, the export metadata lists "
                         f"{len(inputs)} raw features: {sorted(inputs)}")
    return inputs


def _first_value(feature: tf.train.Feature, dtype: str):
    values = {"string": feature.bytes_list.value, "int64": feature.int64_list.value,
              "float32": feature.float_list.value}[dtype]
    return values[0] if values else _MISSING[dtype]


def raw_inputs_from_examples(serialized: Sequence[bytes], raw_features: Mapping[str, str]) -> Dict[str, np.ndarray]:
    """Decode serialized ``tf.Example``s into ``predict_raw`` inputs (``raw_features``: name -> dtype name).

    A value missing from an example becomes ``""`` (string), ``0`` (int64) or NaN (float32), which the
    transform treats like the missing value it is.
    """
    examples = [tf.train.Example.FromString(s) for s in serialized]
    out = {}
    for name, dtype in raw_features.items():
        col = [_first_value(e.features.feature[name], dtype) if name in e.features.feature else _MISSING[dtype]
               for e in examples]
        out[name] = np.array(col, dtype=_NUMPY_DTYPES[dtype])
    return out
