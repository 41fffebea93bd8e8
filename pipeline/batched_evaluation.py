"""TFMA's metrics, plots and validations computed on record batches: the models run once per batch, every
metric is a vectorised update per batch and slice.

TFMA 0.52 evaluates one example at a time: after its batched extractors, every example is unbatched, fanned out
to its slices and fed to every metric combiner (``to_label_prediction_example_weight`` for each example, head,
slice and model). That per-example work bounds the Evaluator at about 650 eval rows/s here, and at half that
with a baseline (docs/benchmarks.md#evaluator), whether TFMA runs the SavedModels or reads materialized
predictions. This module replaces only that per-example part, as one TFMA extractor and one TFMA evaluator:

* :func:`batched_predictions_extractor`: record batches (as TFX's Evaluator reads them, raw records included)
  are grouped into batches of :data:`BATCH_ROWS` rows; each model of the EvalConfig runs its signature and its
  preprocessing (labels) function once per batch; the slice of every row is found with TFMA's own slicer, once
  per distinct value of the slicing features; GAUC's user ids are hashed once per distinct id.
* :func:`batched_metrics_evaluator`: the metric computations TFMA builds from the EvalConfig
  (``metric_specs.to_computations``) are split as TFMA splits them. Each non-derived computation's combiner is
  replaced by a batched counterpart (:data:`_BATCHED`) whose accumulator is the one TFMA's combiner would
  have built (or dense numpy arrays that become it) and whose output is that combiner's own ``extract_output``:

  ==========================================  ======================================================
  TFMA combiner                               per batch and slice
  ==========================================  ======================================================
  calibration histogram (AUC, both plots)     ``np.bincount`` of TFMA's bucket index of every row
  weighted labels/predictions (calibration)   three sums
  example count                               a sum
  compilable Keras metrics (logloss)          the combiner's own Keras metric, one update per batch
  GAUC (``pipeline.gauc``)                    the rows appended to its accumulator as numpy chunks
  ==========================================  ======================================================

  Everything after the combiners is TFMA's own code, unchanged: derived metrics (AUC, calibration, the plots),
  candidate - baseline diffs, private-metric removal, ``metrics_validator.validate_metrics`` and the writers.

So the metrics, plots, validation result and blessing are TFMA's, to float rounding;
``tests/evaluator_e2e_test.py`` checks that they equal TFX's own path to 1e-6. What the batched path does not
cover (query keys, confidence intervals, cross slices, example weights, multi-valued slice features, other
combiners) is refused by :func:`check_supported`, before anything runs, with the reason. This is written for
TFMA 0.52 (TFX 1.21) and uses its evaluator's stage functions: :func:`check_tfma_version` guards them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np

SUPPORTED_TFMA = "0.52."
# Rows per model call and per metric update: large enough that the per-call costs (a signature call, one
# Keras metric update per head, slice and model) stay a few microseconds per row.
BATCH_ROWS = 32768
COLUMNS_KEY = "msmt_eval_columns"
STAGE_PREDICT = "BatchedPredictions"
STAGE_METRICS = "BatchedMetricsPlotsAndValidations"


class UnsupportedEvalConfig(ValueError):
    """The EvalConfig asks for something the batched Evaluator does not compute; the message says what."""


def check_tfma_version(version: Optional[str] = None) -> str:
    """The installed TFMA version; RuntimeError unless it is a :data:`SUPPORTED_TFMA` release."""
    if version is None:
        import tensorflow_model_analysis as tfma

        version = tfma.__version__
    if not version.startswith(SUPPORTED_TFMA):
        raise RuntimeError(f"pipeline/batched_evaluation.py was written for TFMA {SUPPORTED_TFMA}x and TFMA "
                           f"{version} is installed: check it against tests/evaluator_e2e_test.py first")
    return version


# ------------------------------------------------------------------------------------ what is supported
def slicing_features(eval_config) -> List[str]:
    """The features the EvalConfig's slicing specs read."""
    return sorted({k for s in eval_config.slicing_specs for k in list(s.feature_keys) + list(s.feature_values)})


def check_supported(eval_config, computations) -> None:
    """:class:`UnsupportedEvalConfig` unless every computation and option of ``eval_config`` is covered."""
    options = eval_config.options
    problems = []
    if eval_config.cross_slicing_specs:
        problems.append("cross_slicing_specs")
    if any(s.slice_keys_sql for s in eval_config.slicing_specs):
        problems.append("slicing_specs with slice_keys_sql")
    if options.compute_confidence_intervals.value:
        problems.append("options.compute_confidence_intervals")
    if options.min_slice_size.value > 1:
        problems.append("options.min_slice_size")
    for spec in eval_config.metrics_specs:
        if spec.query_key:
            problems.append(f"metrics_specs query_key {spec.query_key!r}")
    for spec in eval_config.model_specs:
        if spec.example_weight_key or spec.example_weight_keys:
            problems.append(f"model spec {spec.name!r}: example weights")
        if spec.prediction_key or spec.prediction_keys:
            problems.append(f"model spec {spec.name!r}: prediction keys (materialized predictions)")
        if len(spec.preprocessing_function_names) != 1 or not spec.label_keys:
            problems.append(f"model spec {spec.name!r}: needs label_keys and one labels preprocessing function")
    for c in computations:
        for key in c.keys:
            if key.sub_key or getattr(key, "aggregation_type", None):
                problems.append(f"{key.name}: sub keys and aggregation types")
        if type(c.combiner) not in _batched_combiners():
            problems.append(f"{', '.join(k.name for k in c.keys)}: TFMA combiner {type(c.combiner).__name__}")
    if problems:
        raise UnsupportedEvalConfig("the batched Evaluator does not compute: " + "; ".join(sorted(set(problems)))
                                    + " (evaluate with evaluate_from='models', TFMA's own path)")


def computations_of(eval_config):
    """TFMA's computations for ``eval_config``, split as its evaluator splits them (non-derived, derived,
    cross-slice, confidence-interval derived)."""
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpve
    from tensorflow_model_analysis.metrics import metric_specs

    return mpve._filter_and_separate_computations(  # noqa: SLF001 - TFMA's own split, TFMA 0.52
        metric_specs.to_computations(list(eval_config.metrics_specs), eval_config=eval_config))


# ------------------------------------------------------------------------------------ one batch as columns
@dataclasses.dataclass
class EvalColumns:
    """The evaluated rows of one batch, as columns.

    ``labels`` and ``predictions`` are keyed by (model name, output name) and hold float64 values (a float32
    model output converted exactly, as TFMA's ``.item()`` does); ``users`` holds GAUC's 64-bit user hashes
    (``pipeline.gauc.user_hash``) and ``has_user`` which rows have one; ``slices`` maps each TFMA slice key
    to the indices of its rows.
    """

    rows: int
    labels: Dict[Tuple[str, str], np.ndarray]
    predictions: Dict[Tuple[str, str], np.ndarray]
    users: Optional[np.ndarray] = None
    has_user: Optional[np.ndarray] = None
    slices: Dict[Any, np.ndarray] = dataclasses.field(default_factory=dict)

    def take(self, rows: np.ndarray) -> "EvalColumns":
        """These columns for ``rows`` only (no slices)."""
        pick = (lambda a: None if a is None else a[rows])
        return EvalColumns(len(rows), {k: v[rows] for k, v in self.labels.items()},
                           {k: v[rows] for k, v in self.predictions.items()}, pick(self.users), pick(self.has_user))

    def label_prediction(self, model_name: str, output_name: str) -> Tuple[np.ndarray, np.ndarray]:
        key = (model_name, output_name)
        if key not in self.predictions:
            raise KeyError(f"model {model_name!r} returned no output {output_name!r}")
        return self.labels[key], self.predictions[key]


def _single_values(column, name: str) -> np.ndarray:
    """A list column with at most one value per row -> an object array of that value or None."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = np.asarray(column.value_lengths().fill_null(0))
    if (lengths > 1).any():
        row = int(np.flatnonzero(lengths > 1)[0])
        raise UnsupportedEvalConfig(f"slice feature {name!r} holds {int(lengths[row])} values in row {row}; the "
                                    f"batched Evaluator slices on single-valued features (evaluate_from='models')")
    out = np.full(len(column), None, dtype=object)
    present = np.flatnonzero(lengths == 1)
    if len(present):
        out[present] = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=object)
    return out


def _group_rows(values: np.ndarray) -> List[Tuple[Any, np.ndarray]]:
    """(value, row indices) for every distinct value (None included) of an object array."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return [(None if pd.isna(u) else u, order[bounds[i]:bounds[i + 1]]) for i, u in enumerate(uniques)]


# ------------------------------------------------------------------------------------ extractor
class _PredictBatches(beam.DoFn):
    """TFMA batched extracts -> one ``{COLUMNS_KEY: EvalColumns}`` extract per :data:`BATCH_ROWS` rows."""

    def __init__(self, models: Mapping[str, str], eval_config, user_key: Optional[str]):
        from apache_beam.utils import shared

        self._models = dict(models)
        self._config_bytes = eval_config.SerializeToString()
        self._user_key = user_key
        self._shared = {name: shared.Shared() for name in models}
        self._rows_counter = beam.metrics.Metrics.counter("msmt", "evaluator_batched_rows")

    def setup(self):
        import tensorflow as tf
        from tensorflow_model_analysis.proto import config_pb2

        self._config = config_pb2.EvalConfig.FromString(self._config_bytes)
        self._specs = {s.name: s for s in self._config.model_specs}
        self._slice_specs = _slice_specs(self._config)
        self._slice_features = slicing_features(self._config)
        self._slice_cache: Dict[Tuple, List] = {}

        class _Loaded:  # a weak-referenceable holder for Shared
            def __init__(self, path):
                self.model = tf.saved_model.load(path)

        self._loaded = {name: self._shared[name].acquire(lambda p=path: _Loaded(p)).model
                        for name, path in self._models.items()}

    def start_bundle(self):
        self._pending: List = []
        self._pending_rows = 0

    def process(self, extracts):
        from tensorflow_model_analysis import constants

        batch = extracts[constants.ARROW_RECORD_BATCH_KEY]
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= BATCH_ROWS:
            yield self._flush()

    def finish_bundle(self):
        from apache_beam.transforms import window
        from apache_beam.utils.windowed_value import WindowedValue

        if self._pending_rows:
            yield WindowedValue(self._flush(), window.GlobalWindow().max_timestamp(), [window.GlobalWindow()])

    def _flush(self) -> Dict[str, EvalColumns]:
        batches, self._pending, self._pending_rows = self._pending, [], 0
        columns = self._columns(batches)
        self._rows_counter.inc(columns.rows)
        return {COLUMNS_KEY: columns}

    def _columns(self, batches) -> EvalColumns:
        import pyarrow as pa
        import tensorflow as tf
        from tensorflow_model_analysis import constants

        from pipeline.gauc import user_hash

        records = [_raw_records(b.column(constants.ARROW_INPUT_COLUMN)) for b in batches]
        rows = sum(len(r) for r in records)
        examples = tf.constant(np.concatenate(records) if records else np.zeros(0, object))
        labels, predictions = {}, {}
        for name, model in self._loaded.items():
            spec = self._specs[name]
            outputs = _call(model, spec.signature_name or "serving_default", examples)
            targets = _call(model, spec.preprocessing_function_names[0], examples)
            for output_name, label_key in spec.label_keys.items():
                if output_name in outputs:
                    predictions[(name, output_name)] = _per_row(outputs[output_name], rows, output_name)
                if label_key not in targets:
                    raise KeyError(f"{spec.preprocessing_function_names[0]} of model {name!r} returned no "
                                   f"{label_key!r} (label of {output_name!r})")
                labels[(name, output_name)] = _per_row(targets[label_key], rows, label_key)
        cols = EvalColumns(rows, labels, predictions)

        def column(name):
            parts = [b.column(name) if name in b.schema.names else pa.nulls(b.num_rows, pa.large_list(pa.null()))
                     for b in batches]
            return np.concatenate([_single_values(p, name) for p in parts]) if parts else np.zeros(0, object)

        if self._user_key:
            ids = column(self._user_key)
            cols.users = np.zeros(rows, np.int64)
            cols.has_user = np.zeros(rows, bool)
            for value, idx in _group_rows(ids):
                if value is not None:
                    cols.users[idx] = user_hash(np.array([_python(value)], dtype=object))
                    cols.has_user[idx] = True
        cols.slices = self._slice_rows([column(f) for f in self._slice_features], rows)
        return cols

    def _slice_rows(self, values: List[np.ndarray], rows: int) -> Dict[Any, np.ndarray]:
        """{TFMA slice key: row indices}, with TFMA's slicer run once per distinct tuple of slice features."""
        from tensorflow_model_analysis.slicer import slicer_lib

        combos: List[Tuple[Tuple, np.ndarray]] = [((), np.arange(rows))]
        for v in values:
            combos = [(key + (value,), idx[sub]) for key, idx in combos
                      for value, sub in _group_rows(v[idx])]
        out: Dict[Any, List[np.ndarray]] = {}
        for key, idx in combos:
            if key not in self._slice_cache:
                features = {f: np.array([_python(v)], dtype=object) for f, v in zip(self._slice_features, key)
                            if v is not None}
                self._slice_cache[key] = list(slicer_lib.get_slices_for_features_dicts([features], None,
                                                                                        self._slice_specs))
            for slice_key in self._slice_cache[key]:
                out.setdefault(slice_key, []).append(idx)
        return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def _raw_records(column) -> np.ndarray:
    """TFX's raw record column (one serialized example per row, in a list or not) as an object array."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        if (np.asarray(column.value_lengths().fill_null(0)) != 1).any():
            raise ValueError("the raw record column must hold one serialized example per row")
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False)


def _python(value):
    """A numpy scalar from a column as the Python value TFMA's features hold (bytes, int or float)."""
    return value.item() if isinstance(value, np.generic) and not isinstance(value, np.bytes_) else \
        bytes(value) if isinstance(value, np.bytes_) else value


def _slice_specs(eval_config):
    from tensorflow_model_analysis.slicer import slicer_lib

    return [slicer_lib.SingleSliceSpec(spec=s) for s in eval_config.slicing_specs]


def _call(model, signature: str, examples):
    """``model``'s ``signature`` on a batch of serialized examples (its one string input)."""
    if signature not in model.signatures:
        raise KeyError(f"the model has no signature {signature!r} (it has {sorted(model.signatures)})")
    fn = model.signatures[signature]
    inputs = list(fn.structured_input_signature[1])
    if len(inputs) != 1:
        raise UnsupportedEvalConfig(f"signature {signature!r} takes {inputs}; the batched Evaluator feeds one "
                                    f"input of serialized examples")
    return fn(**{inputs[0]: examples})


def _per_row(values, rows: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size != rows:
        raise ValueError(f"{name}: {values.size} values for {rows} examples; the Evaluator needs one per example")
    return values.reshape(-1).astype(np.float64)


def batched_predictions_extractor(models: Mapping[str, str], eval_config, user_key: Optional[str]):
    """The TFMA extractor: batched extracts -> :class:`EvalColumns` per :data:`BATCH_ROWS` rows.

    Args:
      models: ``{model spec name: SavedModel directory}``.
      eval_config: the EvalConfig TFMA evaluates (after ``update_eval_config_with_defaults``).
      user_key: the raw user id feature of GAUC, or None.
    """
    from tensorflow_model_analysis.extractors import extractor

    return extractor.Extractor(stage_name=STAGE_PREDICT,
                               ptransform=beam.ParDo(_PredictBatches(models, eval_config, user_key)))


# ------------------------------------------------------------------------------------ batched combiners
class _Histogram:
    """TFMA's calibration histogram: dense per-bucket sums, TFMA's bucket index, TFMA's Bucket list out."""

    def __init__(self, computation):
        c = computation.combiner
        self.key = computation.keys[0]
        self.num_buckets, self.left, self.range = c._num_buckets, c._left, c._range  # noqa: SLF001
        self.by_prediction = c._prediction_based_bucketing  # noqa: SLF001

    def create(self):
        return np.zeros((4, self.num_buckets + 2))  # weighted labels, predictions, examples; rows seen

    def add(self, acc, cols: EvalColumns):
        y, p = cols.label_prediction(self.key.model_name, self.key.output_name)
        # TFMA: int((value - left) / range * num_buckets + 1), below 0 -> 0, at or above num_buckets + 1 -> that.
        index = (p if self.by_prediction else y) - self.left
        index = np.clip(index / self.range * self.num_buckets + 1, 0, self.num_buckets + 1).astype(np.int64)
        n = self.num_buckets + 2
        acc[0] += np.bincount(index, y, n)
        acc[1] += np.bincount(index, p, n)
        acc[2] += np.bincount(index, None, n)
        acc[3] += np.bincount(index, None, n)
        return acc

    def merge(self, accs):
        return sum(accs)

    def extract(self, acc):
        from tensorflow_model_analysis.metrics.calibration_histogram import Bucket

        return {self.key: [Bucket(int(i), float(acc[0, i]), float(acc[1, i]), float(acc[2, i]))
                           for i in np.flatnonzero(acc[3])]}


class _WeightedSums:
    """TFMA's total weighted labels, predictions and examples (the calibration metric's input)."""

    def __init__(self, computation):
        self.key = computation.keys[0]

    def create(self):
        return np.zeros(3)

    def add(self, acc, cols: EvalColumns):
        y, p = cols.label_prediction(self.key.model_name, self.key.output_name)
        acc += (y.sum(), p.sum(), float(len(y)))
        return acc

    def merge(self, accs):
        return sum(accs)

    def extract(self, acc):
        from tensorflow_model_analysis.metrics import calibration

        out = calibration._WeightedLabelsPredictionsExamples()  # noqa: SLF001 - the type TFMA's combiner outputs
        out.total_weighted_labels, out.total_weighted_predictions, out.total_weighted_examples = map(float, acc)
        return {self.key: out}


class _ExampleCount:
    """TFMA's example count (unweighted: one per row)."""

    def __init__(self, computation):
        self.combiner = computation.combiner

    def create(self):
        return 0.0

    def add(self, acc, cols: EvalColumns):
        return acc + np.float64(cols.rows)

    def merge(self, accs):
        return self.combiner.merge_accumulators(accs)

    def extract(self, acc):
        return self.combiner.extract_output(acc)


class _KerasMetrics:
    """TFMA's compilable Keras metrics (e.g. BinaryCrossentropy): the combiner's own metrics, accumulator and
    output; each metric is updated once per batch and slice, where TFMA updates it once per 1,000 examples."""

    def __init__(self, computation):
        self.combiner = computation.combiner
        self.combiner.setup()
        self.model_name = self.combiner._model_name  # noqa: SLF001
        self.output_names = self.combiner._output_names  # noqa: SLF001

    def create(self):
        return self.combiner.create_accumulator()

    def add(self, acc, cols: EvalColumns):
        for i, output_name in enumerate(self.output_names):
            y, p = cols.label_prediction(self.model_name, output_name)
            args = (y.reshape(-1, 1), p.astype(np.float32).reshape(-1, 1), np.ones((len(y), 1)))
            for j, metric in enumerate(self.combiner._metrics[output_name]):  # noqa: SLF001
                metric.reset_states()
                metric.update_state(*args)
                acc.add_weights(i, j, metric.get_weights())
        return acc

    def merge(self, accs):
        return self.combiner.merge_accumulators(accs)

    def extract(self, acc):
        return self.combiner.extract_output(acc)


class _GAUC:
    """``pipeline.gauc``'s combiner, fed numpy chunks of (user, label, prediction, weight)."""

    def __init__(self, computation):
        self.combiner = computation.combiner
        self.key = computation.keys[0]

    def create(self):
        return self.combiner.create_accumulator()

    def add(self, acc, cols: EvalColumns):
        y, p = cols.label_prediction(self.key.model_name, self.key.output_name)
        if cols.users is None:
            acc.missing_user += cols.rows
            return acc
        has = cols.has_user
        acc.missing_user += int((~has).sum())
        if has.any():
            acc.chunks.append((cols.users[has], y[has].astype(np.float32), p[has], np.ones(int(has.sum()))))
        return acc

    def merge(self, accs):
        return self.combiner.merge_accumulators(accs)

    def extract(self, acc):
        return self.combiner.extract_output(acc)


def _batched_combiners() -> Dict[type, Callable]:
    """TFMA combiner type -> its batched counterpart."""
    from tensorflow_model_analysis.metrics import calibration, calibration_histogram, example_count
    from tensorflow_model_analysis.metrics import tf_metric_wrapper

    from pipeline import gauc

    return {calibration_histogram._CalibrationHistogramCombiner: _Histogram,  # noqa: SLF001
            calibration._WeightedLabelsPredictionsExamplesCombiner: _WeightedSums,  # noqa: SLF001
            example_count._ExampleCountCombiner: _ExampleCount,  # noqa: SLF001
            tf_metric_wrapper._CompilableMetricsCombiner: _KerasMetrics,  # noqa: SLF001
            gauc._GAUCCombiner: _GAUC}  # noqa: SLF001


class _BatchedComputationsCombineFn(beam.CombineFn):
    """(slice key, EvalColumns of that slice) -> TFMA's combiner outputs for the slice (a MetricsDict)."""

    def __init__(self, computations):
        self._computations = computations
        self._parts = None

    def setup(self):
        if self._parts is None:
            kinds = _batched_combiners()
            self._parts = [kinds[type(c.combiner)](c) for c in self._computations]

    def create_accumulator(self):
        self.setup()
        return [p.create() for p in self._parts]

    def add_input(self, accumulator, cols: EvalColumns):
        self.setup()
        return [p.add(a, cols) for p, a in zip(self._parts, accumulator)]

    def merge_accumulators(self, accumulators: Iterable):
        self.setup()
        return [p.merge(list(accs)) for p, accs in zip(self._parts, zip(*accumulators))]

    def extract_output(self, accumulator):
        self.setup()
        out = {}
        for p, a in zip(self._parts, accumulator):
            out.update(p.extract(a))
        return out


def _per_slice(extracts) -> Iterable[Tuple[Any, EvalColumns]]:
    cols = extracts[COLUMNS_KEY]
    for slice_key, rows in cols.slices.items():
        yield slice_key, cols.take(rows)


@beam.ptransform_fn
def _EvaluateBatched(extracts, eval_config):  # noqa: N802 - Beam's PTransform naming
    """Extracts of :class:`EvalColumns` -> TFMA's ``metrics``, ``plots``, ``attributions`` and ``validations``."""
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpve
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types
    from tensorflow_model_analysis.utils import model_util

    computations = computations_of(eval_config)
    baseline = model_util.get_baseline_model_spec(eval_config)
    # TFMA 0.52's stages after its CombinePerKey, as in _ComputeMetricsAndPlots and
    # _EvaluateMetricsPlotsAndValidations.
    results = (extracts
               | "PerSlice" >> beam.FlatMap(_per_slice)
               | "CombinePerSlice" >> beam.CombinePerKey(
                   _BatchedComputationsCombineFn(computations.non_derived_computations))
               | "AddDerivedAndDiffMetrics" >> mpve._AddDerivedCrossSliceAndDiffMetrics(  # noqa: SLF001
                   computations.derived_computations, computations.cross_slice_computations, [],
                   baseline.name if baseline else None)
               | "AddCIDerivedMetrics" >> beam.Map(mpve._add_ci_derived_metrics,  # noqa: SLF001
                                                   computations.ci_derived_computations)
               | "RemovePrivateMetrics" >> beam.MapTuple(mpve._remove_private_metrics))  # noqa: SLF001
    metrics = results | "Metrics" >> beam.Map(mpve._filter_by_key_type, metric_types.MetricKey)  # noqa: SLF001
    return {constants.METRICS_KEY: metrics,
            constants.PLOTS_KEY: results | "Plots" >> beam.Map(mpve._filter_by_key_type,  # noqa: SLF001
                                                                 metric_types.PlotKey),
            constants.ATTRIBUTIONS_KEY: results | "Attributions" >> beam.Map(
                mpve._filter_by_key_type, metric_types.AttributionsKey),  # noqa: SLF001
            constants.VALIDATIONS_KEY: metrics | "ValidateMetrics" >> beam.Map(metrics_validator.validate_metrics,
                                                                               eval_config)}


def batched_metrics_evaluator(eval_config):
    """The TFMA evaluator over :func:`batched_predictions_extractor`'s extracts."""
    from tensorflow_model_analysis.evaluators import evaluator
    from tensorflow_model_analysis.extractors import extractor

    return evaluator.Evaluator(stage_name=STAGE_METRICS, run_after=extractor.LAST_EXTRACTOR_STAGE_NAME,
                               ptransform=_EvaluateBatched(eval_config))  # pylint: disable=no-value-for-parameter


def evaluation_stages(eval_shared_model, eval_config, user_key: Optional[str]) -> Dict[str, List]:
    """``extractors`` and ``evaluators`` for TFMA's ``ExtractEvaluateAndWriteResults``, from the shared model(s)
    TFX built for the EvalConfig; :class:`UnsupportedEvalConfig` first when the config is not covered."""
    check_tfma_version()
    # One EvalSharedModel (a NamedTuple) or a list of them.
    shared = [eval_shared_model] if hasattr(eval_shared_model, "model_path") else list(eval_shared_model)
    models = {m.model_name: m.model_path for m in shared}
    check_supported(eval_config, computations_of(eval_config).non_derived_computations)
    return {"extractors": [batched_predictions_extractor(models, eval_config, user_key)],
            "evaluators": [batched_metrics_evaluator(eval_config)]}


def gauc_user_key(eval_config) -> Optional[str]:
    """The user id feature of the EvalConfig's GAUC metrics (None without GAUC); one for all of them."""
    import json

    from pipeline.gauc import DEFAULT_USER_KEY

    keys = {json.loads(m.config or "{}").get("user_key", DEFAULT_USER_KEY)
            for spec in eval_config.metrics_specs for m in spec.metrics if m.class_name == "GAUC"}
    if len(keys) > 1:
        raise UnsupportedEvalConfig(f"GAUC metrics read different user keys {sorted(keys)}")
    return next(iter(keys), None)
