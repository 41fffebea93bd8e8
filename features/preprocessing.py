"""TensorFlow Transform ``preprocessing_fn`` generated from a feature spec (docs/spec.md).

The TFX Transform component calls :func:`preprocessing_fn` with ``custom_config={'spec': spec.to_dict()}``.
Outputs (one dense tensor of shape ``[batch]`` per feature unless noted):

* id / categorical / categorical prior -> ``int64`` index. ``vocab`` encoding:
  ``tft.compute_and_apply_vocabulary`` (top_k, frequency_threshold, ``num_oov_buckets`` OOV slots after the
  vocabulary). ``hash`` encoding: ``to_hash_bucket_fast(value) in [0, hash_buckets)``. Missing -> ``""``.
* numeric / float prior -> ``float32``: :math:`x' = x` if finite else ``default``; then
  :math:`z = (x' - \\mu) / \\sigma` (``zscore``) or :math:`z = (\\log(1 + \\max(x', 0)) - \\mu) / \\sigma`
  (``log1p_zscore``), clipped to :math:`[-Z_{max}, Z_{max}]` (``Z_MAX`` = 8) so that an absurd value at serving
  time (1e30) cannot saturate every head; plus ``<name>__bucket`` (quantile bucket index) when ``buckets > 0``.
* multivalent -> ``int64 [batch, MULTIVALENT_MAX_VALUES]`` vocabulary ids, padded with ``-1``.
* sequence -> ``int64 [batch, length]``: the first ``length`` items of the cell (most recent first), encoded
  with the ``item`` feature's own vocabulary (the same ``vocab_filename``, so history and candidate share ids;
  an item never seen as a candidate takes an OOV slot) or hash buckets; padded with ``-1``.
* scenario -> ``int64`` index into the spec's ``values``; any other value (or missing) -> ``len(values)``,
  the unknown-scenario slot.
* labels -> ``float32`` ``label_<task>`` for every declared task; for the click -> conversion funnel also
  ``label_ctcvr`` (= click * conversion) and, when the spec has ``raction``, ``label_ctavr`` (= click *
  raction). Missing -> 0.
"""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from features.labels import label_key
from features.spec import Feature, FeatureSpec, spec_from_dict

MULTIVALENT_MAX_VALUES = 8
Z_MAX = 8.0


def _to_dense_1d(x, default):
    """A raw input (dense ``[batch]``/``[batch, 1]`` or sparse ``[batch, <=1]``) as dense ``[batch]``."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1])), default_value=default)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value=default, shape=[None, 1])
    if x.shape.rank == 2:
        x = x[:, 0]
    return x


def _as_string(x):
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def _missing_default(x_dtype):
    if x_dtype == tf.string:
        return b""
    if x_dtype.is_integer:
        return tf.cast(0, x_dtype)
    return tf.cast(float("nan"), x_dtype)


def _categorical(f: Feature, x) -> tf.Tensor:
    x = _as_string(_to_dense_1d(x, _missing_default(x.dtype)))
    if f.encoding == "hash":
        return tf.strings.to_hash_bucket_fast(x, f.hash_buckets)
    return tft.compute_and_apply_vocabulary(
        x, top_k=f.vocab_top_k, frequency_threshold=f.frequency_threshold,
        num_oov_buckets=f.num_oov_buckets, vocab_filename=f.name)


def _categorical_with_vocabulary(f: Feature, x):
    """``f``'s ids (as :func:`_categorical`) and its deferred vocabulary file, for sequences that share it."""
    x = _as_string(_to_dense_1d(x, _missing_default(x.dtype)))
    vocabulary = tft.vocabulary(x, top_k=f.vocab_top_k, frequency_threshold=f.frequency_threshold,
                                vocab_filename=f.name)
    return tft.apply_vocabulary(x, vocabulary, num_oov_buckets=f.num_oov_buckets), vocabulary


def _tokens(f: Feature, x):
    """The non-empty items of a separator-joined cell: ragged ``[batch, None]``."""
    tokens = tf.strings.split(_to_dense_1d(x, b""), sep=f.separator)
    return tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)


def _sequence(f: Feature, item: Feature, x, vocabulary) -> tf.Tensor:
    tokens = _tokens(f, x)[:, :f.length]
    if item.encoding == "hash":
        ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, tokens, item.hash_buckets)
    else:
        ids = tf.ragged.map_flat_values(
            lambda t: tft.apply_vocabulary(t, vocabulary, num_oov_buckets=item.num_oov_buckets), tokens)
    return ids.to_tensor(default_value=-1, shape=[None, f.length])


def _numeric(f: Feature, x) -> Dict[str, tf.Tensor]:
    x = tf.cast(_to_dense_1d(x, _missing_default(x.dtype)), tf.float32)
    x = tf.where(tf.math.is_finite(x), x, tf.constant(f.default, tf.float32))
    if f.transform == "log1p_zscore":
        x = tf.math.log1p(tf.maximum(x, 0.0))
    out = {f.name: x if f.transform == "none" else tf.clip_by_value(tft.scale_to_z_score(x), -Z_MAX, Z_MAX)}
    if f.buckets:
        out[f.name + "__bucket"] = tft.bucketize(x, f.buckets)
    return out


def _multivalent(f: Feature, x) -> tf.Tensor:
    tokens = _tokens(f, x)
    if f.encoding == "hash":
        ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, tokens, f.hash_buckets)
    else:
        ids = tf.ragged.map_flat_values(
            lambda t: tft.compute_and_apply_vocabulary(
                t, top_k=f.vocab_top_k, frequency_threshold=f.frequency_threshold,
                num_oov_buckets=f.num_oov_buckets, vocab_filename=f.name), tokens)
    return ids.to_tensor(default_value=-1, shape=[None, MULTIVALENT_MAX_VALUES])


def scenario_index(values, x) -> tf.Tensor:
    """Index of ``x`` in the known scenario ``values``; ``len(values)`` (unknown slot) otherwise."""
    x = _as_string(_to_dense_1d(x, _missing_default(x.dtype)))
    known = tf.constant([str(v) for v in values])
    eq = tf.equal(x[:, None], known[None, :])
    return tf.where(tf.reduce_any(eq, axis=1), tf.argmax(tf.cast(eq, tf.int32), axis=1, output_type=tf.int64),
                    tf.constant(len(values), tf.int64))


def _label(x) -> tf.Tensor:
    return tf.cast(_to_dense_1d(x, tf.cast(0, x.dtype)), tf.float32)


def build_preprocessing_fn(spec: FeatureSpec):
    """The TFT preprocessing function for ``spec`` (a closure over the validated spec)."""

    def fn(inputs: Dict[str, Any]) -> Dict[str, tf.Tensor]:
        missing = [c for c in [f.name for f in spec.features] + list(spec.label_columns.values())
                   if c not in inputs]
        if missing:
            raise ValueError(f"spec {spec.source}: columns {missing} are not in the data's schema "
                             f"(available: {sorted(inputs)})")
        outputs: Dict[str, tf.Tensor] = {}
        shared_items = {f.item for f in spec.features if f.is_sequence}
        vocabularies = {}
        for f in spec.features:
            x = inputs[f.name]
            if f.is_sequence:
                continue  # after its item's vocabulary
            if f.name in shared_items and f.encoding == "vocab":
                outputs[f.name], vocabularies[f.name] = _categorical_with_vocabulary(f, x)
            elif f.is_scenario:
                outputs[f.name] = scenario_index(f.values, x)
            elif f.is_multivalent:
                outputs[f.name] = _multivalent(f, x)
            elif f.is_numeric:
                outputs.update(_numeric(f, x))
            else:
                outputs[f.name] = _categorical(f, x)
        for f in spec.by_role("sequence"):
            outputs[f.name] = _sequence(f, spec.feature(f.item), inputs[f.name], vocabularies.get(f.item))
        for task in spec.tasks:
            outputs[label_key(task.name)] = _label(inputs[task.label])
        if spec.is_funnel:  # the funnel's impression-level targets of its composed heads
            click = outputs[label_key("click")]
            outputs[label_key("ctcvr")] = click * outputs[label_key("conversion")]
            if "raction" in spec.label_columns:
                outputs[label_key("ctavr")] = click * outputs[label_key("raction")]
        return outputs

    return fn


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """TFX Transform entry point: ``custom_config['spec']`` is ``FeatureSpec.to_dict()``."""
    if not custom_config or "spec" not in custom_config:
        raise ValueError("Transform custom_config must carry the feature spec under 'spec'")
    spec = spec_from_dict(custom_config["spec"], source="Transform custom_config['spec']")
    return build_preprocessing_fn(spec)(inputs)
