"""Offline batch scoring: ``msmt score`` runs an exported model over raw impression logs on Beam.

docs/serving.md. The pipeline streams rows through tfx-bsl ``RunInference`` on the model's
``serving_default`` signature (serialized ``tf.Example`` in, one probability per head out) and writes one
output row per input row::

    files (CSV | TFRecord of tf.Example | Parquet)
      -> rows typed by the feature spec -> (key, serialized tf.Example)
      -> RunInference(serving_default)  -> (key, PredictionLog)
      -> {request id, user/item ids, scenario, every head}  -> Parquet | CSV | TFRecord

The key carries the id columns (the spec's ``id`` features, its ``request_id`` when it has one) and the
scenario, so nothing has to be joined back. Elements flow one by one through fused Beam stages (files are
read row by row, ``RunInference`` batches a bounded number of them), so memory does not grow with the
input. A progress line is printed every ``PROGRESS_EVERY`` scored rows, and the totals come from Beam
metrics.

Columns: the feature spec comes from ``--spec``, else from the model's export metadata
``assets.extra/msmt_export.json`` (``{"spec": ..., "heads": ..., "raw_features": {name: dtype}}``); the
columns written into each tf.Example and their dtypes are the metadata's ``raw_features`` when the model
has them, else the spec's features, plus the key columns. A CSV cell that does not parse as its column's
type stops the run with an error naming the file, the row and the column; an empty CSV cell (or a null /
NaN in Parquet) is a missing value, left out of the example. TFRecord rows go to the model unchanged.

Beam defaults to the DirectRunner ``in_memory`` with one worker (fits 2 cores); any ``--beam-arg`` or
trailing Beam option overrides them, e.g. ``--direct_running_mode=multi_processing --direct_num_workers=4``
or ``--runner=DataflowRunner``. Throughput per worker is bounded by tfx-bsl building one ``PredictionLog``
(a TensorProto per head) for every row, not by the model (``make bench-serving`` measures both).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import re
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from features import formats
from features import records
from features.labels import ordered_heads
from features.records import Column, to_example
from features.spec import DTYPES, FeatureSpec, resolve_spec, spec_from_dict

EXPORT_METADATA = os.path.join("assets.extra", "msmt_export.json")  # serving.signatures.export_metadata_path
SIGNATURE = "serving_default"
INPUT_FORMATS = formats.FORMATS
OUTPUT_FORMATS = ("parquet", "csv", "tfrecord")
OUTPUT_PREFIX = "scores"
OUTPUT_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "tfrecord": ".tfrecord.gz"}
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
MIN_BATCH_SIZE = 256  # RunInference batches: larger ones amortise the session call
MAX_BATCH_SIZE = 1024
PROGRESS_EVERY = 10_000
METRICS_NAMESPACE = "msmt.score"
_EXTENSIONS = ((".csv", "csv"), (".csv.gz", "csv"), (".parquet", "parquet"), (".pq", "parquet"),
               (".tfrecord", "tfrecord"), (".tfrecords", "tfrecord"), (".tfrecord.gz", "tfrecord"),
               (".tfrecords.gz", "tfrecord"), (".tfr", "tfrecord"))
# (key tuple, serialized tf.Example): the type hint makes RunInference keep the key next to each result.
KEYED_EXAMPLE = beam.typehints.Tuple[beam.typehints.Any, bytes]
_STEP_ANNOTATION = re.compile(r"\s*\[while running '[^']*'\]")
_REQUIRED_FEATURE = re.compile(r"Feature: (\S+) \(data type: (\w+)\) is required but could not be found")


class ScoringError(ValueError):
    """Bad scoring input (model, spec, file or row); the message says what and where."""


# ---------------------------------------------------------------------------- what the model reads
@dataclasses.dataclass(frozen=True)
class ScoringLayout:
    """Columns written into each tf.Example, the key columns carried to the output, and the heads."""

    columns: Tuple[Column, ...]
    key_names: Tuple[str, ...]
    heads: Tuple[str, ...]

    @property
    def output_names(self) -> Tuple[str, ...]:
        return self.key_names + self.heads

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def resolve_model_dir(path: str) -> str:
    """``path`` if it is a SavedModel, else its newest numeric version sub-directory (TF Serving layout)."""
    if FileSystems.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = []
    if os.path.isdir(path):
        versions = sorted((int(d) for d in os.listdir(path)
                           if d.isdigit() and os.path.exists(os.path.join(path, d, "saved_model.pb"))))
    if not versions:
        raise ScoringError(f"{path}: not a SavedModel (no saved_model.pb) and no version directory "
                           f"<n>/saved_model.pb inside; pass e.g. <run>/serving/msmt/<version>")
    return os.path.join(path, str(versions[-1]))


def read_export_metadata(model_dir: str) -> Optional[Dict[str, Any]]:
    """The model's export metadata (:func:`serving.signatures.read_export_metadata`), or None without one."""
    from serving import signatures

    try:
        return signatures.read_export_metadata(model_dir)
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ScoringError(f"{os.path.join(model_dir, EXPORT_METADATA)}: not valid JSON: {e}") from e


def spec_and_raw_features(model_dir: str, spec: Optional[str] = None) -> Tuple[FeatureSpec, Optional[Dict[str, str]]]:
    """The feature spec (``spec`` name/path wins, else the model's export metadata) and the model's raw
    feature dtypes from the metadata (None without metadata)."""
    meta = read_export_metadata(model_dir)
    raw_features = (meta or {}).get("raw_features") or None
    if spec:
        return resolve_spec(spec), raw_features
    if meta is None or "spec" not in meta:
        raise ScoringError(f"{model_dir}: the model carries no {EXPORT_METADATA} with its feature spec; "
                           f"pass the spec it was trained with, e.g. --spec synthetic or --spec path/to/spec.yaml")
    return spec_from_dict(meta["spec"], source=os.path.join(model_dir, EXPORT_METADATA) + ": spec"), raw_features


def serving_heads(model_dir: str) -> Tuple[str, ...]:
    """Output names of the model's ``serving_default`` signature, standard heads first."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with FileSystems.open(os.path.join(model_dir, "saved_model.pb")) as fh:
        saved.ParseFromString(fh.read())
    for graph in saved.meta_graphs:
        if "serve" in graph.meta_info_def.tags and SIGNATURE in graph.signature_def:
            names = list(graph.signature_def[SIGNATURE].outputs)
            return ordered_heads(names)
    raise ScoringError(f"{model_dir}: the SavedModel has no '{SIGNATURE}' signature under the 'serve' tag")


def build_layout(spec: FeatureSpec, heads: Sequence[str],
                 raw_features: Optional[Mapping[str, str]] = None) -> ScoringLayout:
    """Columns to type and carry: the model's raw features (from ``raw_features`` when known, else the
    spec's features) plus the key columns (request id, the ``id`` features, the scenario)."""
    by_name = {f.name: f for f in spec.features}
    features = dict(raw_features) if raw_features else {f.name: f.dtype for f in spec.features}
    keys = ([spec.request_id] if spec.request_id else []) + [f.name for f in spec.by_role("id")]
    keys.append(spec.scenario.name)
    names = list(features) + [k for k in keys if k not in features]

    def column(name: str) -> Column:
        f = by_name.get(name)
        dtype = features.get(name) or (f.dtype if f else "string")
        if dtype not in DTYPES:
            raise ScoringError(f"column {name!r}: raw dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        return Column(name, dtype, f.separator if f is not None and f.is_multivalent else None)

    clash = sorted(set(keys) & set(heads))
    if clash:
        raise ScoringError(f"model heads {clash} have the names of input columns")
    return ScoringLayout(tuple(column(n) for n in names), tuple(dict.fromkeys(keys)), tuple(heads))


def load_layout(model_dir: str, spec: Optional[str] = None) -> ScoringLayout:
    """:func:`build_layout` for an exported model directory."""
    feature_spec, raw_features = spec_and_raw_features(model_dir, spec)
    return build_layout(feature_spec, serving_heads(model_dir), raw_features)


# ---------------------------------------------------------------------------- typing values
def typed_value(value: Any, column: Column, where: str) -> Any:
    """:func:`features.records.typed_value`, raising ScoringError."""
    try:
        return records.typed_value(value, column, where)
    except records.CellError as e:
        raise ScoringError(str(e)) from None


def convert_row(row: Mapping[str, Any], layout: ScoringLayout, where: str) -> Tuple[tuple, bytes]:
    """One raw row -> (key tuple of the key columns, serialized tf.Example of the model's columns)."""
    values = {c.name: typed_value(row.get(c.name), c, where) for c in layout.columns}
    return tuple(values[k] for k in layout.key_names), to_example(values, layout.columns)


def example_key(serialized: bytes, layout: ScoringLayout) -> tuple:
    """The key tuple of a serialized tf.Example (TFRecord input, passed to the model unchanged)."""
    from tensorflow.core.example import example_pb2

    feature = example_pb2.Example.FromString(serialized).features.feature
    key = []
    for name in layout.key_names:
        values = None
        if name in feature:
            kind = feature[name].WhichOneof("kind")
            values = list(getattr(feature[name], kind).value) if kind else None
        key.append(typed_value(values, layout.column(name), f"tf.Example, feature {name!r}"))
    return tuple(key)


# ---------------------------------------------------------------------------- reading files
def iter_csv_rows(text: io.TextIOBase, path: str, layout: ScoringLayout) -> Iterator[Tuple[str, Dict[str, str]]]:
    """(where, row) for every data row of a CSV stream with a header; ``where`` = "PATH: row N (line L)".

    Raises ScoringError when the header lacks a column the model reads or a row has the wrong field count.
    """
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    _check_columns(path, header, layout)
    row_number = 0
    for fields in reader:
        if not fields:
            continue  # blank line
        row_number += 1
        where = f"{path}: row {row_number} (line {reader.line_num})"
        if len(fields) != len(header):
            raise ScoringError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        yield where, dict(zip(header, fields))


def iter_parquet_rows(fh, path: str, layout: ScoringLayout, batch_rows: int = 4096
                      ) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(where, row) for every row of a Parquet file, read in record batches of the needed columns only."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(fh)
    names = parquet.schema_arrow.names
    _check_columns(path, names, layout)
    wanted = [c.name for c in layout.columns]
    row_number = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
        for row in batch.to_pylist():
            row_number += 1
            yield f"{path}: row {row_number}", row


def _check_columns(path: str, present: Sequence[str], layout: ScoringLayout) -> None:
    missing = [c.name for c in layout.columns if c.name not in set(present)]
    if missing:
        raise ScoringError(f"{path}: no column {', '.join(missing)}, which the model or the output needs "
                           f"(columns: {', '.join(present)})")


def detect_input_format(pattern: str, paths: Sequence[str]) -> str:
    """``csv``, ``tfrecord`` or ``parquet`` of the input (``features.formats.detect_format``)."""
    try:
        return formats.detect_format(pattern, paths, option="--input-format")
    except formats.FormatError as e:
        raise ScoringError(str(e)) from None


def match_files(pattern: str) -> List[str]:
    """Files matching ``pattern`` (any Beam file system); ScoringError when there are none."""
    try:
        metadata = FileSystems.match([pattern])[0].metadata_list
    except Exception as e:  # noqa: BLE001 - Beam raises BeamIOError subclasses per file system
        raise ScoringError(f"{pattern}: cannot list files: {e}") from e
    paths = sorted(m.path for m in metadata if not m.path.endswith("/"))
    if not paths:
        raise ScoringError(f"{pattern}: no file matches")
    return paths


def _tfrecord_compression(path: str) -> str:
    """GZIP when the file starts with the gzip magic bytes, whatever its name."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        return CompressionTypes.GZIP if fh.read(2) == b"\x1f\x8b" else CompressionTypes.UNCOMPRESSED


# ---------------------------------------------------------------------------- model outputs -> rows
def _tensor_scalar(proto) -> float:
    """The one value of a per-row output TensorProto (float_val, or packed tensor_content)."""
    if len(proto.float_val) == 1:
        return float(proto.float_val[0])
    import tensorflow as tf

    values = tf.make_ndarray(proto).reshape(-1)
    if values.size != 1:
        raise ScoringError(f"a model output has {values.size} values per row; scoring writes one per head")
    return float(values[0])


def prediction_outputs(prediction_log) -> Dict[str, float]:
    """{head: probability} of one row's PredictionLog (a ``predict_log`` of ``serving_default``)."""
    return {name: _tensor_scalar(t) for name, t in prediction_log.predict_log.response.outputs.items()}


def output_row(key: tuple, outputs: Mapping[str, float], layout: ScoringLayout) -> Dict[str, Any]:
    """The output row: key columns then every head (None for a head the model did not return)."""
    row = dict(zip(layout.key_names, key))
    row.update((h, outputs.get(h)) for h in layout.heads)
    return row


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "%.9g" % value  # round-trips a float32
    return str(value)


def csv_line(row: Mapping[str, Any], names: Sequence[str]) -> str:
    """One CSV line (no newline) of ``row``'s values in ``names`` order; empty for None."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([_format_cell(row.get(n)) for n in names])
    return out.getvalue()


def row_to_output_example(row: Mapping[str, Any], layout: ScoringLayout) -> bytes:
    """An output row as a serialized tf.Example (heads as float features)."""
    columns = [layout.column(k) for k in layout.key_names] + [Column(h, "float32") for h in layout.heads]
    return to_example(row, columns)


def parquet_schema(layout: ScoringLayout):
    """pyarrow schema of the output rows: key columns with their dtype, heads float32."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float32": pa.float32()}
    return pa.schema([(n, types[layout.column(n).dtype]) for n in layout.key_names]
                     + [(h, pa.float32()) for h in layout.heads])


# ---------------------------------------------------------------------------- Beam
class _RowsFromFile(beam.DoFn):
    """A matched CSV or Parquet file -> (key, serialized tf.Example) per row, streamed."""

    def __init__(self, layout: ScoringLayout, input_format: str):
        self._layout = layout
        self._format = input_format

    def process(self, readable_file):
        path = readable_file.metadata.path
        if self._format == "csv":
            with readable_file.open(compression_type=CompressionTypes.AUTO) as raw:
                yield from self._convert(iter_csv_rows(io.TextIOWrapper(raw, encoding="utf-8", newline=""),
                                                       path, self._layout))
        else:
            with readable_file.open(compression_type=CompressionTypes.UNCOMPRESSED) as raw:
                yield from self._convert(iter_parquet_rows(raw, path, self._layout))

    def _convert(self, rows):
        for where, row in rows:
            yield convert_row(row, self._layout, where)


class _CountRows(beam.DoFn):
    """Pass-through counter (a Beam metric); prints progress every ``every`` rows when ``every`` is set."""

    def __init__(self, name: str, every: Optional[int] = None):
        self._name = name
        self._every = every
        self._counter = Metrics.counter(METRICS_NAMESPACE, name)

    def setup(self):
        self._seen = 0
        self._start = None

    def process(self, element):
        self._counter.inc()
        self._seen += 1
        if self._start is None:
            self._start = time.monotonic()
        if self._every and self._seen % self._every == 0:
            rate = self._seen / max(time.monotonic() - self._start, 1e-9)
            print(f"score: {self._seen:,} rows scored ({rate:,.0f} rows/s)", flush=True)
        yield element


class _FormatRow(beam.DoFn):
    """(key, PredictionLog) -> an output record: a dict (Parquet), a CSV line or a serialized tf.Example."""

    def __init__(self, layout: ScoringLayout, output_format: str):
        self._layout = layout
        self._format = output_format

    def process(self, keyed_log):
        key, log = keyed_log
        row = output_row(key, prediction_outputs(log), self._layout)
        if self._format == "csv":
            yield csv_line(row, self._layout.output_names)
        elif self._format == "tfrecord":
            yield row_to_output_example(row, self._layout)
        else:
            yield row


def inference_spec(model_dir: str):
    """tfx-bsl InferenceSpecType for ``serving_default`` of the SavedModel in ``model_dir``."""
    from tfx_bsl.public.proto import model_spec_pb2

    return model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_dir, signature_name=[SIGNATURE]),
        batch_parameters=model_spec_pb2.BatchParameters(min_batch_size=MIN_BATCH_SIZE, max_batch_size=MAX_BATCH_SIZE))


def _keyed_record(record: bytes, layout: ScoringLayout) -> Tuple[tuple, bytes]:
    return example_key(record, layout), record


def _read(pipeline, paths: Sequence[str], pattern: str, input_format: str, layout: ScoringLayout):
    if input_format == "tfrecord":
        return (pipeline
                | "ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern, compression_type=_tfrecord_compression(paths[0]))
                | "KeyExamples" >> beam.Map(_keyed_record, layout))
    return (pipeline
            | "MatchFiles" >> fileio.MatchFiles(pattern)
            | "ReadMatches" >> fileio.ReadMatches()
            | "ReadRows" >> beam.ParDo(_RowsFromFile(layout, input_format)))


def _write(rows, output_dir: str, output_format: str, layout: ScoringLayout):
    prefix = os.path.join(output_dir, OUTPUT_PREFIX)
    suffix = OUTPUT_SUFFIX[output_format]
    if output_format == "parquet":
        return rows | "WriteParquet" >> beam.io.WriteToParquet(prefix, parquet_schema(layout), file_name_suffix=suffix)
    if output_format == "csv":
        header = csv_line(dict(zip(layout.output_names, layout.output_names)), layout.output_names)
        return rows | "WriteCsv" >> beam.io.WriteToText(prefix, file_name_suffix=suffix, header=header)
    return rows | "WriteTFRecord" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=suffix,
                                                           compression_type=CompressionTypes.GZIP)


def build_scoring(pipeline, model_dir: str, paths: Sequence[str], pattern: str, input_format: str,
                  output_dir: str, output_format: str, layout: ScoringLayout):
    """Add read -> count -> RunInference -> count + progress -> format -> write to ``pipeline``."""
    from tfx_bsl.public.beam import RunInference

    rows = (_read(pipeline, paths, pattern, input_format, layout)
            | "CountIn" >> beam.ParDo(_CountRows("rows_in")).with_output_types(KEYED_EXAMPLE)
            | "RunInference" >> RunInference(inference_spec(model_dir))
            | "CountOut" >> beam.ParDo(_CountRows("rows_out", PROGRESS_EVERY))
            | "FormatRows" >> beam.ParDo(_FormatRow(layout, output_format)))
    return _write(rows, output_dir, output_format, layout)


def beam_options(beam_args: Sequence[str] = ()) -> List[str]:
    """``beam_args`` plus each DirectRunner default (``DEFAULT_BEAM_ARGS``) whose flag they do not set."""
    given = {a.split("=", 1)[0] for a in beam_args if a.startswith("--")}
    return [d for d in DEFAULT_BEAM_ARGS if d.split("=", 1)[0] not in given] + list(beam_args)


def _output_files(output_dir: str) -> List[str]:
    pattern = os.path.join(output_dir, OUTPUT_PREFIX + "-*")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _prepare_output(output_dir: str, overwrite: bool) -> None:
    """Create ``output_dir``; refuse (or with ``overwrite`` delete) the score files of an earlier run."""
    existing = _output_files(output_dir)
    if existing and not overwrite:
        raise ScoringError(f"{output_dir}: already holds {len(existing)} {OUTPUT_PREFIX}-* file(s) of an earlier "
                           f"run; remove them, choose another directory or pass --overwrite")
    if existing:
        FileSystems.delete(existing)
    if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)


def _run(pipeline):
    """Run and wait. A ScoringError raised in a DoFn comes back without Beam's step annotations, and the
    model's "required feature missing" error as a ScoringError that names the column."""
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except ScoringError as e:
        raise ScoringError(_STEP_ANNOTATION.sub("", str(e))) from None
    except Exception as e:  # noqa: BLE001 - Beam re-raises worker errors as RuntimeError
        missing = _REQUIRED_FEATURE.search(str(e))
        if not missing:
            raise
        raise ScoringError(f"an input row has no value in column {missing.group(1)!r} ({missing.group(2)}), which "
                           f"the model requires (its training data never lacked it); fill the missing values") from e
    return result


def _counters(result) -> Dict[str, int]:
    counts = {"rows_in": 0, "rows_out": 0}
    for counter in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + int(value or 0)
    return counts


def score(model_dir: str, input_pattern: str, output_dir: str, output_format: str = "parquet",
          spec: Optional[str] = None, beam_args: Sequence[str] = (), input_format: Optional[str] = None,
          overwrite: bool = False) -> Dict[str, Any]:
    """Score every row of ``input_pattern`` with the model's ``serving_default`` and write them to ``output_dir``.

    Args:
      model_dir: an exported SavedModel, or a directory of numeric versions (the newest is used).
      input_pattern: file pattern of raw impression logs (CSV with a header, TFRecord of tf.Example,
        gzipped or not, or Parquet).
      output_dir: directory for ``scores-<shard>-of-<n>.parquet|.csv|.tfrecord.gz``.
      output_format: ``parquet``, ``csv`` or ``tfrecord``.
      spec: feature spec name or YAML path; default: the spec in the model's export metadata.
      beam_args: Beam pipeline options; DirectRunner in_memory with one worker unless they say otherwise.
      input_format: ``csv``, ``tfrecord`` or ``parquet``; default: from the file extension.
      overwrite: delete score files of an earlier run in ``output_dir`` instead of failing.

    Returns:
      ``{"rows_in", "rows_out", "files", "seconds", "model_dir", "heads", "columns"}``.

    Raises:
      ScoringError: a bad model directory, spec, input pattern, output directory or input row.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ScoringError(f"output format {output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise ScoringError(f"input format {input_format!r}: use one of {', '.join(INPUT_FORMATS)}")
    model_dir = resolve_model_dir(model_dir)
    layout = load_layout(model_dir, spec)
    paths = match_files(input_pattern)
    input_format = input_format or detect_input_format(input_pattern, paths)
    _prepare_output(output_dir, overwrite)
    print(f"score: {model_dir}: heads {', '.join(layout.heads)}\n"
          f"score: {len(paths)} {input_format} file(s) {input_pattern} -> {output_dir} ({output_format})", flush=True)
    start = time.monotonic()
    pipeline = beam.Pipeline(options=PipelineOptions(beam_options(beam_args)))
    build_scoring(pipeline, model_dir, paths, input_pattern, input_format, output_dir, output_format, layout)
    counts = _counters(_run(pipeline))
    seconds = time.monotonic() - start
    files = _output_files(output_dir)
    print(f"score: done: {counts['rows_in']:,} rows in, {counts['rows_out']:,} rows out in {seconds:.1f}s "
          f"({counts['rows_out'] / max(seconds, 1e-9):,.0f} rows/s) -> {len(files)} file(s)", flush=True)
    return {"rows_in": counts["rows_in"], "rows_out": counts["rows_out"], "files": files, "seconds": seconds,
            "model_dir": model_dir, "heads": list(layout.heads), "columns": list(layout.output_names)}


# ---------------------------------------------------------------------------- command line
SCORE_DESCRIPTION = """\
Score raw impression logs with an exported model (Beam + tfx-bsl RunInference on serving_default) and
write one row per input row: the request id (when the spec has one), the user/item ids, the scenario and
every head of the model (ctr, ctavr, cvr, ctcvr, xcvr, ...).

Input: CSV with a header row (empty cell = missing value), TFRecord of tf.Example (gzipped or not) or
Parquet; the format comes from the file extension unless --input-format is given. The feature spec is
--spec, else the one in the model's assets.extra/msmt_export.json (older models need --spec); it types the
columns. A cell that does not parse stops the run with the file, row and column named.

Output: DIR/scores-SSSSS-of-NNNNN.parquet|.csv|.tfrecord.gz. Progress is printed every 10,000 rows.
"""

SCORE_EPILOG = """\
Beam: DirectRunner in_memory with one worker by default. Pass Beam options with --beam-arg=OPTION or
after the other arguments, e.g.
  msmt score --model run/serving/msmt --input 'logs/span-3/*.csv' --output scores --direct_num_workers=2
  msmt score ... --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
"""


class _BeamOptionsParser:
    """Argument-parser mixin: options it does not know are Beam pipeline options (``args.beam_args``)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and not extras[0].startswith("-"):
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        namespace.beam_args = list(namespace.beam_args or []) + extras
        return namespace, []


def add_score_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``score`` on an ``argparse`` sub-parsers object; its handler is ``args.func``."""
    p = subparsers.add_parser("score", help="batch-score impression logs with an exported model (Beam RunInference)",
                              description=SCORE_DESCRIPTION, epilog=SCORE_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = type("ScoreArgumentParser", (_BeamOptionsParser, type(p)), {})
    p.add_argument("--model", required=True, metavar="MODEL_DIR",
                   help="exported SavedModel directory, or its parent of numeric versions (newest is used)")
    p.add_argument("--input", required=True, metavar="PATTERN",
                   help="file pattern of the logs, e.g. '/logs/span-3/impressions.csv' (quote wildcards)")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory for scores-* files")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default="parquet", help="output format (parquet)")
    p.add_argument("--input-format", choices=INPUT_FORMATS, default=None,
                   help="input format (default: from the file extension)")
    p.add_argument("--spec", default=None, metavar="NAME_OR_PATH",
                   help="feature spec (synthetic, aliccp, aliexpress or a YAML path); default: the spec in "
                        "the model's assets.extra/msmt_export.json")
    p.add_argument("--beam-arg", dest="beam_args", action="append", default=None, metavar="ARG",
                   help="Beam pipeline option, repeatable, e.g. --beam-arg=--direct_num_workers=2")
    p.add_argument("--overwrite", action="store_true", help="replace scores-* files of an earlier run in DIR")
    p.set_defaults(func=cmd_score)
    return p


def cmd_score(args) -> int:
    """Handler of ``msmt score``: 0 when every input row was scored."""
    result = score(args.model, args.input, args.output, args.format, spec=args.spec,
                   beam_args=args.beam_args or (), input_format=args.input_format, overwrite=args.overwrite)
    for path in result["files"]:
        print(f"  {path}")
    return 0 if result["rows_in"] == result["rows_out"] else 1
