"""Predictions materialized for the Evaluator: the models run once per batch, TFMA reads their outputs.

TFMA run on a SavedModel calls it for every example through its own extractors (about 600 eval rows/s
here, half that with a baseline, because both models run). Its model-agnostic mode instead reads
predictions and labels that are already columns of the examples (``ModelSpec.prediction_keys`` /
``label_keys`` with ``model_type: materialized_prediction``), which is TFMA's documented way to evaluate
precomputed predictions. This module produces those examples on Beam::

    eval split (tf.Example TFRecords)
      -> batches of BATCH_ROWS serialized examples
      -> every model's serving_default + the candidate's eval_labels, once per batch
      -> each example with ``__prediction__<model>__<head>`` and the label targets (``label_ctr`` ...) added
      -> TFRecords for TFMA

The predictions are what TFMA would compute (the same ``serving_default`` on the same serialized
examples) and the labels what its ``eval_labels`` preprocessing would give, so every metric, plot, slice,
threshold and blessing is unchanged; ``pipeline/evaluator_test.py`` checks both paths agree to 1e-6. The
added features are appended to each serialized example (two serialized ``tf.Example`` messages
concatenated are their merge), so the original features reach TFMA byte for byte, for slicing and GAUC.

:func:`materialized_eval_config` turns the pipeline's EvalConfig (``pipeline.eval_config``) into the
model-agnostic one: same metrics, slices and thresholds; each model spec reads its own prediction columns.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import apache_beam as beam
import numpy as np

from serving.interface import SERVING_SIGNATURE

PREDICTION_PREFIX = "__prediction__"
MATERIALIZED_PREDICTION = "materialized_prediction"  # tfma.constants.MATERIALIZED_PREDICTION
BATCH_ROWS = 4096
OUTPUT_SUFFIX = ".gz"


def prediction_feature(model_name: str, head: str) -> str:
    """The feature holding ``model_name``'s prediction of ``head``."""
    return f"{PREDICTION_PREFIX}{model_name}__{head}"


def materialized_eval_config(eval_config):
    """A copy of ``eval_config`` whose model specs read materialized predictions and labels.

    Each spec keeps its name, baseline flag and ``label_keys``; its predictions are the features
    :func:`prediction_feature` (name, head) for the heads of its ``label_keys``; no signature and no
    preprocessing function is called.
    """
    from tensorflow_model_analysis.proto import config_pb2

    out = config_pb2.EvalConfig()
    out.CopyFrom(eval_config)
    for spec in out.model_specs:
        heads = list(spec.label_keys)
        spec.ClearField("signature_name")
        spec.ClearField("preprocessing_function_names")
        spec.model_type = MATERIALIZED_PREDICTION
        spec.prediction_keys.clear()
        spec.prediction_keys.update({h: prediction_feature(spec.name, h) for h in heads})
    return out


def label_signature(eval_config) -> str:
    """The preprocessing function that gives the labels (``eval_labels``), from the candidate's model spec."""
    names = [n for spec in eval_config.model_specs if not spec.is_baseline for n in spec.preprocessing_function_names]
    if len(names) != 1:
        raise ValueError(f"the EvalConfig's candidate model spec must name one labels function, got {names}")
    return names[0]


def _column(values: np.ndarray, rows: int, name: str):
    """A per-row value array as a one-item-per-row Arrow list column (float32 or int64)."""
    import pyarrow as pa

    values = np.asarray(values)
    if values.size != rows:
        raise ValueError(f"{name}: {values.size} values for {rows} examples; the Evaluator needs one per example")
    values = values.reshape(-1)
    kind = pa.int64() if values.dtype.kind in "biu" else pa.float32()
    return pa.LargeListArray.from_arrays(pa.array(np.arange(rows + 1), pa.int64()), pa.array(values, kind))


class _AddPredictions(beam.DoFn):
    """A batch of serialized examples -> the same examples with every model's heads and the labels added.

    Models: ``{name: SavedModel dir}``; ``label_model`` names the one whose ``labels_signature`` gives the
    labels. Each worker loads each model once (``apache_beam.utils.shared``).
    """

    def __init__(self, models: Mapping[str, str], heads: Mapping[str, Sequence[str]], label_model: str,
                 labels_signature: str):
        from apache_beam.utils import shared

        self._models = dict(models)
        self._heads = {k: list(v) for k, v in heads.items()}
        self._label_model = label_model
        self._labels_signature = labels_signature
        self._shared = {name: shared.Shared() for name in models}
        self._rows = beam.metrics.Metrics.counter("msmt", "evaluator_materialized_rows")

    def setup(self):
        import tensorflow as tf

        class _Loaded:  # a weak-referenceable holder for Shared
            def __init__(self, path):
                self.model = tf.saved_model.load(path)

        self._loaded = {name: self._shared[name].acquire(lambda p=path: _Loaded(p)).model
                        for name, path in self._models.items()}

    def process(self, batch: List[bytes]):
        import pyarrow as pa
        import tensorflow as tf
        from tfx_bsl.coders import example_coder

        examples = tf.constant(batch)
        columns = {}
        for name, model in self._loaded.items():
            outputs = model.signatures[SERVING_SIGNATURE](examples=examples)
            for head in self._heads[name]:
                if head in outputs:
                    columns[prediction_feature(name, head)] = _column(outputs[head].numpy(), len(batch), head)
        labels = self._loaded[self._label_model].signatures[self._labels_signature](examples=examples)
        for key, values in labels.items():
            columns[key] = _column(values.numpy(), len(batch), key)
        extra = example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(list(columns.values()),
                                                                               list(columns)))
        self._rows.inc(len(batch))
        yield from (original + added for original, added in zip(batch, extra))


class MaterializePredictions(beam.PTransform):
    """file patterns (PBegin) -> examples of those files (gzipped or not) with the predictions of ``models``
    (``{name: SavedModel dir}``, heads ``heads[name]``) and the labels of ``label_model`` added, written to
    ``output_prefix-*-of-*.gz``."""

    def __init__(self, file_patterns: Sequence[str], output_prefix: str, models: Mapping[str, str],
                 heads: Mapping[str, Sequence[str]], label_model: str, labels_signature: str):
        super().__init__()
        self._patterns = list(file_patterns)
        self._prefix = output_prefix
        self._add = _AddPredictions(models, heads, label_model, labels_signature)

    def expand(self, pbegin):
        from apache_beam.io.filesystem import CompressionTypes

        return (pbegin
                | "Patterns" >> beam.Create(self._patterns)
                | "Read" >> beam.io.ReadAllFromTFRecord(compression_type=CompressionTypes.AUTO)
                | "Batch" >> beam.BatchElements(min_batch_size=BATCH_ROWS, max_batch_size=BATCH_ROWS)
                | "Predict" >> beam.ParDo(self._add)
                | "Write" >> beam.io.WriteToTFRecord(self._prefix, file_name_suffix=OUTPUT_SUFFIX,
                                                     compression_type=CompressionTypes.GZIP))


def heads_of(eval_config) -> Dict[str, List[str]]:
    """``{model spec name: the heads of its label_keys}``."""
    return {spec.name: list(spec.label_keys) for spec in eval_config.model_specs}
