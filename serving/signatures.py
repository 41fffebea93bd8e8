"""SavedModel serving signatures with the TFT transform graph inside (DESIGN.md section 8).

* ``serving_default``: one string input ``examples`` (serialized ``tf.Example``) -> ``{head: [batch]}``
  probabilities. This is the signature TF Serving, BulkInferrer and RunInference call.
* ``transform_features``: serialized examples (features and labels) -> every transformed feature.
* ``eval_labels``: serialized examples -> only the transformed label targets (``label_ctcvr`` ...). TFMA runs
  it as a preprocessing function to get labels; it returns no features, so TFMA slices on the raw columns
  (e.g. the scenario name, not its index).

The model is any callable Keras model that takes the transformed feature dict and returns
``{head: [batch, 1]}``; this module does not import ``models`` (DESIGN.md section 2).
"""

from __future__ import annotations

import os
from typing import Dict, Iterable

import tensorflow as tf

from features.labels import is_label_feature
from features.spec import FeatureSpec

EXAMPLES_INPUT = "examples"
EVAL_LABELS_SIGNATURE = "eval_labels"


def raw_feature_spec(tf_transform_output, columns: Iterable[str]) -> Dict[str, object]:
    """The raw parsing spec restricted to ``columns`` that the data's schema has."""
    full = tf_transform_output.raw_feature_spec()
    return {c: full[c] for c in columns if c in full}


def build_signatures(model, tf_transform_output, spec: FeatureSpec) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Concrete functions for ``serving_default`` and ``transform_features``."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    feature_spec = raw_feature_spec(tf_transform_output, [f.name for f in spec.features])
    full_spec = raw_feature_spec(tf_transform_output, [f.name for f in spec.features]
                                 + list(spec.label_columns.values()))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(examples):
        raw = tf.io.parse_example(examples, feature_spec)
        transformed = model.tft_layer(raw)
        outputs = model(transformed, training=False)
        return {k: tf.reshape(tf.cast(v, tf.float32), [-1]) for k, v in outputs.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(examples):
        raw = tf.io.parse_example(examples, full_spec)
        return model.tft_layer(raw)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def eval_labels(examples):
        raw = tf.io.parse_example(examples, full_spec)
        return {k: v for k, v in model.tft_layer(raw).items() if is_label_feature(k)}

    return {
        "serving_default": serve_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
        EVAL_LABELS_SIGNATURE: eval_labels.get_concrete_function(),
    }


def export_saved_model(model, tf_transform_output, spec: FeatureSpec, export_dir: str) -> str:
    """Save ``model`` as a TF SavedModel with the serving signatures; returns ``export_dir``."""
    signatures = build_signatures(model, tf_transform_output, spec)
    os.makedirs(os.path.dirname(export_dir.rstrip("/")) or ".", exist_ok=True)
    model.save(export_dir, save_format="tf", signatures=signatures)
    return export_dir
