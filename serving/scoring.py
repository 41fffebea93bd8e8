"""Offline batch scoring: ``msmt score`` runs an exported model over raw impression logs on Beam.

docs/serving.md. Rows travel as Arrow record batches of a few thousand rows, and the model is called once
per batch on columnar tensors::

    CSV files     -> pyarrow's streaming CSV reader  \
    Parquet files -> ParquetFile.iter_batches          > typed Arrow batches (features.columnar)
                                                      -> predict_raw(one [batch] tensor per raw column)
    TFRecord      -> Beam ReadFromTFRecord + BatchElements -> serving_default(serialized examples)
                  -> Arrow batch {request id, user/item ids, scenario, every head}
                  -> Parquet (WriteToParquetBatched) | CSV (one text block per batch) | TFRecord

Nothing is built per row in Python on that path. ``predict_raw`` returns what ``serving_default`` returns
for the same rows: a missing value is given as the missing value of its dtype (``""``, ``0``, NaN), which
the transform treats exactly as an absent feature (``features.preprocessing`` densifies every input with
those values). TFRecord input goes to ``serving_default`` unchanged, as before.

The key carries the id columns (the spec's ``id`` features, its ``request_id`` when it has one) and the
scenario, so nothing has to be joined back. Files are read batch by batch through fused Beam stages, so
memory does not grow with the input. A progress line is printed every ``PROGRESS_EVERY`` scored rows, and
the totals come from Beam metrics.

Columns: the feature spec comes from ``--spec``, else from the model's export metadata
``assets.extra/msmt_export.json`` (``{"spec": ..., "heads": ..., "raw_features": {name: dtype},
"required_features": [...]}``); the model's columns and dtypes are the metadata's ``raw_features``, else
the inputs of its ``predict_raw`` signature, else the spec's features, plus the key columns.

Bad input: each batch is typed column by column (``features.columnar``); when a column holds a cell the
vectorised typing cannot judge, that batch is typed again row by row with ``features.records``, which
stops the run with an error naming the file, the row (and the CSV line) and the column, exactly as the
per-row reader always did. An empty CSV cell (or a null / NaN in Parquet) is a missing value. A row
without a value in a column the model requires (its id and scenario features, which its training data
always had) stops the run with the file, row and column too.

Beam defaults to the DirectRunner ``in_memory`` with one worker (fits 2 cores); any ``--beam-arg`` or
trailing Beam option overrides them, e.g. ``--direct_running_mode=multi_processing --direct_num_workers=4``
or ``--runner=DataflowRunner``. ``make bench-serving`` compares the scoring rate with the model alone on
in-memory batches.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import re
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from features import columnar
from features import formats
from features import records
from features.labels import ordered_heads
from features.records import MISSING_VALUES, Column, to_example
from features.spec import DTYPES, FeatureSpec, resolve_spec, spec_from_dict
from serving.interface import (ASSETS_EXTRA, EXAMPLES_INPUT, EXPORT_METADATA_FILE, PREDICT_RAW_SIGNATURE,
                               REQUIRED_ROLES, SERVING_SIGNATURE, export_metadata_path)

EXPORT_METADATA = os.path.join(ASSETS_EXTRA, EXPORT_METADATA_FILE)  # relative to the model directory
INPUT_FORMATS = formats.FORMATS
OUTPUT_FORMATS = ("parquet", "csv", "tfrecord")
OUTPUT_PREFIX = "scores"
OUTPUT_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "tfrecord": ".tfrecord.gz"}
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
BATCH_ROWS = 8192  # rows per model call (Parquet, TFRecord); larger batches amortise the call
CSV_BLOCK_BYTES = 2 << 20  # CSV bytes per batch: about 12k rows of a 175-byte log
PREFETCH_BATCHES = 2  # batches read ahead of the model (prefetched)
PROGRESS_EVERY = 100_000
METRICS_NAMESPACE = "msmt.score"
_DTYPE_NAMES = {1: "float32", 9: "int64", 7: "string"}  # TensorFlow DataType enum of a SignatureDef input
_ARROW_DTYPES = {arrow: name for name, arrow in columnar.ARROW_TYPES.items()}
_STEP_ANNOTATION = re.compile(r"\s*\[while running '[^']*'\]")
_REQUIRED_FEATURE = re.compile(r"Feature: (\S+) \(data type: (\w+)\) is required but could not be found")


class ScoringError(ValueError):
    """Bad scoring input (model, spec, file or row); the message says what and where."""


# ---------------------------------------------------------------------------- what the model reads
@dataclasses.dataclass(frozen=True)
class ScoringLayout:
    """Columns typed from the input (the model's raw features and the key columns), the key columns carried
    to the output, the heads, and the columns every row must have a value in (``required``)."""

    columns: Tuple[Column, ...]
    key_names: Tuple[str, ...]
    heads: Tuple[str, ...]
    required: Tuple[str, ...] = ()

    @property
    def output_names(self) -> Tuple[str, ...]:
        return self.key_names + self.heads

    @property
    def output_columns(self) -> Tuple[Column, ...]:
        """Key columns with their dtype, then every head as float32."""
        return tuple(self.column(k) for k in self.key_names) + tuple(Column(h, "float32") for h in self.heads)

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
        raise ScoringError(f"{export_metadata_path(model_dir)}: not valid JSON: {e}") from e


def model_signatures(model_dir: str) -> Dict[str, Tuple[Dict[str, str], List[str]]]:
    """``{signature name: ({input: dtype name}, [output names])}`` of the SavedModel's ``serve`` graph,
    read from ``saved_model.pb`` without loading the model (dtype names: string, int64, float32)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with FileSystems.open(os.path.join(model_dir, "saved_model.pb")) as fh:
        saved.ParseFromString(fh.read())
    for graph in saved.meta_graphs:
        if "serve" in graph.meta_info_def.tags:
            return {name: ({k: _DTYPE_NAMES.get(t.dtype, str(t.dtype)) for k, t in sig.inputs.items()},
                           list(sig.outputs))
                    for name, sig in graph.signature_def.items()}
    return {}


def serving_heads(model_dir: str) -> Tuple[str, ...]:
    """Output names of the model's ``serving_default`` signature, standard heads first."""
    signatures = model_signatures(model_dir)
    if SERVING_SIGNATURE not in signatures:
        raise ScoringError(f"{model_dir}: the SavedModel has no '{SERVING_SIGNATURE}' signature under the 'serve' "
                           f"tag")
    return ordered_heads(signatures[SERVING_SIGNATURE][1])


def build_layout(spec: FeatureSpec, heads: Sequence[str], raw_features: Optional[Mapping[str, str]] = None,
                 required: Optional[Sequence[str]] = None) -> ScoringLayout:
    """Columns to type and carry: the model's raw features (from ``raw_features`` when known, else the
    spec's features) plus the key columns (request id, the ``id`` features, the scenario).

    ``required``: columns a row must have a value in; default: the raw features whose role is in
    ``REQUIRED_ROLES`` (what ``serving_default`` requires of a model whose training data always had them).
    """
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
        return Column(name, dtype, f.separator if f is not None and f.is_list else None)

    clash = sorted(set(keys) & set(heads))
    if clash:
        raise ScoringError(f"model heads {clash} have the names of input columns")
    if required is None:
        required = [n for n in features if n in by_name and by_name[n].role in REQUIRED_ROLES]
    return ScoringLayout(tuple(column(n) for n in names), tuple(dict.fromkeys(keys)), tuple(heads),
                         tuple(n for n in required if n in features))


def load_layout(model_dir: str, spec: Optional[str] = None) -> ScoringLayout:
    """:func:`build_layout` for an exported model directory: the spec is ``spec`` (a name or YAML path), else
    the one in the model's export metadata; the raw features and the required ones come from the metadata,
    else from the ``predict_raw`` signature's inputs."""
    meta = read_export_metadata(model_dir)
    signatures = model_signatures(model_dir)
    if spec:
        feature_spec = resolve_spec(spec)
    elif meta is not None and "spec" in meta:
        feature_spec = spec_from_dict(meta["spec"], source=export_metadata_path(model_dir) + ": spec")
    else:
        raise ScoringError(f"{model_dir}: the model carries no {EXPORT_METADATA} with its feature spec; "
                           f"pass the spec it was trained with, e.g. --spec synthetic or --spec path/to/spec.yaml")
    raw_features = (meta or {}).get("raw_features") or signatures.get(PREDICT_RAW_SIGNATURE, ({}, []))[0] or None
    return build_layout(feature_spec, serving_heads(model_dir), raw_features, (meta or {}).get("required_features"))


# ---------------------------------------------------------------------------- typing values, row by row
def typed_value(value: Any, column: Column, where: str) -> Any:
    """:func:`features.records.typed_value`, raising ScoringError."""
    try:
        return records.typed_value(value, column, where)
    except records.CellError as e:
        raise ScoringError(str(e)) from None


def convert_row(row: Mapping[str, Any], layout: ScoringLayout, where: str) -> Dict[str, Any]:
    """One raw row -> its typed values (None when missing), per-row reference of :func:`typed_batch`."""
    return {c.name: typed_value(row.get(c.name), c, where) for c in layout.columns}


def typed_rows(rows: Iterable[Tuple[str, Mapping[str, Any]]], layout: ScoringLayout) -> pa.RecordBatch:
    """(where, raw row) pairs typed row by row: the exact value of every cell, or the exact error."""
    return columnar.batch_from_rows([convert_row(row, layout, where) for where, row in rows], layout.columns)


def typed_batch(batch: pa.RecordBatch, layout: ScoringLayout,
                exact: Callable[[], pa.RecordBatch], where: Callable[[int], str]) -> pa.RecordBatch:
    """``batch`` typed column by column; ``exact()`` (the same rows typed by :func:`typed_rows`) when a column
    holds a cell the vectorised typing cannot judge. A row without a value in a required column raises
    ScoringError at ``where(row index)``."""
    try:
        typed = columnar.typed_batch(batch, layout.columns)
    except columnar.NeedsRowCheck:
        typed = exact()
    for name in layout.required:
        row = columnar.first_null(typed.column(name))
        if row >= 0:
            raise ScoringError(f"{where(row)}, column {name!r}: no value, and the model requires one (its training "
                               f"data always had it); fill it or drop the row")
    return typed


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


def example_keys(serialized: Sequence[bytes], layout: ScoringLayout) -> pa.RecordBatch:
    """The key columns of serialized tf.Examples as a typed batch (tfx-bsl's decoder, row by row only when
    a key cell needs it)."""
    from tfx_bsl.coders import example_coder

    decoded = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized))
    keys = [layout.column(k) for k in layout.key_names]
    arrays = [decoded.column(c.name) if c.name in decoded.schema.names else pa.nulls(len(serialized))
              for c in keys]
    try:
        return columnar.typed_batch(pa.RecordBatch.from_arrays(arrays, list(layout.key_names)), keys)
    except columnar.NeedsRowCheck:
        return columnar.batch_from_rows([dict(zip(layout.key_names, example_key(s, layout))) for s in serialized],
                                        keys)


# ---------------------------------------------------------------------------- reading files
def iter_csv_rows(text: io.TextIOBase, path: str, layout: ScoringLayout) -> Iterator[Tuple[str, Dict[str, str]]]:
    """(where, row) for every data row of a CSV stream with a header; ``where`` = "PATH: row N (line L)".

    The per-row reader that gives exact positions: :func:`csv_batches` falls back to it for a batch with a
    bad cell. Raises ScoringError when the header lacks a column the model reads or a row has the wrong
    field count.
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


def csv_batches(open_file: Callable[[], Any], path: str, layout: ScoringLayout) -> Iterator[pa.RecordBatch]:
    """Typed batches of a CSV file with a header, read by pyarrow's streaming CSV reader.

    ``open_file()`` opens the (decompressed) bytes; it is called again to re-read rows one by one with
    :func:`iter_csv_rows` when a batch holds a bad cell or a malformed line, so that the error names the
    row and line exactly. Blank lines are skipped, as the per-row reader does.
    """
    import pyarrow.csv as pacsv

    with open_file() as raw:
        header = next(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")), None)
    if header is None:
        return
    _check_columns(path, header, layout)
    names = [c.name for c in layout.columns]

    def open_rows() -> Iterator[Tuple[str, Dict[str, str]]]:
        with open_file() as raw:
            yield from iter_csv_rows(io.TextIOWrapper(raw, encoding="utf-8", newline=""), path, layout)

    rows = _RowCursor(open_rows)

    def where(row: int) -> str:
        return rows.take(row, 1)[0][0]

    done = 0
    with open_file() as raw, rows:
        reader = pacsv.open_csv(
            raw, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=names, column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=True, null_values=[""]))
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, UnicodeDecodeError) as e:
                rows.take(done, None)  # raises the per-row reader's exact error
                raise ScoringError(f"{path}: after row {done}: {e}") from None
            start = done
            yield typed_batch(batch, layout, lambda: typed_rows(rows.take(start, batch.num_rows), layout),
                              lambda i: where(start + i))
            done += batch.num_rows


class _RowCursor:
    """Rows of a per-row reader taken by position, moving forward: a file whose batches all need the per-row
    typing is read twice in all, not once per batch. Going back re-opens the reader."""

    def __init__(self, open_rows: Callable[[], Iterator[Any]]):
        self._open_rows = open_rows
        self._rows: Optional[Iterator[Any]] = None
        self._position = 0

    def take(self, first: int, count: Optional[int]) -> List[Any]:
        """Rows ``first`` .. ``first + count - 1`` (to the end when ``count`` is None)."""
        if self._rows is None or self._position > first:
            self.close()
            self._rows, self._position = self._open_rows(), 0
        for _ in range(first - self._position):
            next(self._rows)
        taken = list(self._rows) if count is None else [row for _, row in zip(range(count), self._rows)]
        self._position = first + len(taken)
        return taken

    def close(self) -> None:
        if self._rows is not None:
            self._rows.close()
            self._rows = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parquet_batches(fh, path: str, layout: ScoringLayout, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Typed batches of a Parquet file, read in record batches of the needed columns only."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(fh)
    _check_columns(path, parquet.schema_arrow.names, layout)
    done = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=[c.name for c in layout.columns]):
        start = done

        def where(i: int) -> str:
            return f"{path}: row {start + i + 1}"

        yield typed_batch(batch, layout, lambda: typed_rows(zip(map(where, range(batch.num_rows)), batch.to_pylist()),
                                                            layout), where)
        done += batch.num_rows


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


# ---------------------------------------------------------------------------- the model, once per batch
class ScoringModel:
    """An exported model loaded in-process; :meth:`predict` scores a typed batch, :meth:`serve` serialized
    tf.Examples. Both return ``{head: float32 [rows]}``."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(model_dir)
        self._serve = self._loaded.signatures[SERVING_SIGNATURE]
        self._raw = self._loaded.signatures.get(PREDICT_RAW_SIGNATURE)
        self._raw_inputs = {}
        if self._raw is not None:
            from serving.signatures import predict_raw_inputs

            self._raw_inputs = predict_raw_inputs(self._raw, read_export_metadata(model_dir))

    @property
    def raw_inputs(self) -> Dict[str, Any]:
        """``predict_raw``'s inputs: raw column name -> TensorFlow dtype (empty without ``predict_raw``)."""
        return dict(self._raw_inputs)

    def predict(self, batch: pa.RecordBatch) -> Dict[str, np.ndarray]:
        """``predict_raw`` on the batch's columns (a missing value as its dtype's missing value); a model
        without ``predict_raw`` gets the rows as tf.Examples on ``serving_default``."""
        if self._raw is None:
            return self.serve(serialize_examples(batch))
        inputs = {}
        for name, dtype in self._raw_inputs.items():
            kind = dtype.name if dtype.name in MISSING_VALUES else "string"
            values = batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows)
            if values.type != columnar.ARROW_TYPES[kind]:  # a spec given with --spec may type it otherwise
                values = columnar.typed_array(values, Column(name, kind))
            inputs[name] = self._tf.constant(values.fill_null(MISSING_VALUES[kind]).to_numpy(zero_copy_only=False),
                                             dtype)
        return self._outputs(self._raw(**inputs), batch.num_rows)

    def serve(self, serialized: Sequence[bytes]) -> Dict[str, np.ndarray]:
        """``serving_default`` on serialized tf.Examples."""
        outputs = self._serve(**{EXAMPLES_INPUT: self._tf.constant(list(serialized), self._tf.string)})
        return self._outputs(outputs, len(serialized))

    @staticmethod
    def _outputs(outputs, rows: int) -> Dict[str, np.ndarray]:
        out = {}
        for name, tensor in outputs.items():
            values = np.asarray(tensor.numpy(), np.float32).reshape(-1)
            if values.size != rows:
                raise ScoringError(f"model output {name!r} has {values.size} values for {rows} rows; scoring "
                                   f"writes one per head and row")
            out[name] = values
        return out


def output_batch(keys: pa.RecordBatch, outputs: Mapping[str, np.ndarray], layout: ScoringLayout) -> pa.RecordBatch:
    """The output rows: key columns then every head (null for a head the model did not return)."""
    arrays = [keys.column(k) for k in layout.key_names]
    arrays += [pa.array(outputs[h], pa.float32()) if h in outputs else pa.nulls(keys.num_rows, pa.float32())
               for h in layout.heads]
    return pa.RecordBatch.from_arrays(arrays, schema=columnar.schema(layout.output_columns))


# ---------------------------------------------------------------------------- writing
def parquet_schema(layout: ScoringLayout) -> pa.Schema:
    """pyarrow schema of the output rows: key columns with their dtype, heads float32."""
    return columnar.schema(layout.output_columns)


def csv_header(names: Sequence[str]) -> str:
    """The header line (no newline) of the CSV output."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(names)
    return out.getvalue()


def csv_text(batch: pa.RecordBatch) -> str:
    """The batch as CSV lines joined by newlines (no header, no final newline), built column-wise.

    Missing values are empty cells; floats are written in the shortest form that reads back as the same
    float32; a text cell with a comma, a quote or a line break is quoted, as Python's ``csv`` module does.
    """
    import pyarrow.compute as pc

    cells = []
    for array in batch.columns:
        text = array.cast(pa.string())
        if pa.types.is_string(array.type):
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
            text = pc.if_else(pc.match_substring_regex(text, '[,"\r\n]'), quoted, text)
        cells.append(text.fill_null(""))
    lines = pc.binary_join_element_wise(*cells, ",") if len(cells) > 1 else cells[0]
    return pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), "\n")[0].as_py()


def serialize_examples(batch: pa.RecordBatch) -> List[bytes]:
    """Each row as a serialized tf.Example of its non-missing values: tfx-bsl's encoder for the batch, and
    ``features.records.to_example`` again for a row with a missing value (it leaves the feature out, where
    the encoder would write an empty one)."""
    from tfx_bsl.coders import example_coder

    offsets = pa.array(np.arange(batch.num_rows + 1), pa.int64())
    lists = [pa.LargeListArray.from_arrays(offsets, _example_values(a)) for a in batch.columns]
    serialized = list(example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(lists, batch.schema.names)))
    nulls = [a.is_null().to_numpy(zero_copy_only=False) for a in batch.columns if a.null_count]
    incomplete = np.flatnonzero(np.any(nulls, axis=0)) if nulls else []
    if len(incomplete):
        columns = [Column(f.name, _ARROW_DTYPES[f.type]) for f in batch.schema]
        for i, row in zip(incomplete, batch.take(pa.array(incomplete)).to_pylist()):
            serialized[i] = to_example(row, columns)
    return serialized


def _example_values(array: pa.Array) -> pa.Array:
    """The values of a typed column for the encoder; a placeholder fills a missing cell (its row is rebuilt)."""
    if pa.types.is_string(array.type):
        return array.fill_null("").cast(pa.large_binary())
    return array.fill_null(0)


# ---------------------------------------------------------------------------- Beam
def prefetched(items: Iterator[Any], depth: int = PREFETCH_BATCHES) -> Iterator[Any]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer.

    The next batch is read and typed (pyarrow releases the GIL while it parses) while the model scores the
    current one (TensorFlow releases it too), so the two overlap on two cores. An exception raised by
    ``items`` is raised here, at the point of the stream where it happened; memory stays bounded.
    """
    import queue
    import threading

    slots: "queue.Queue" = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((done, e))

    thread = threading.Thread(target=produce, name="msmt-score-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


class _ReadTypedBatches(beam.DoFn):
    """A matched CSV or Parquet file -> its typed Arrow batches, streamed."""

    def __init__(self, layout: ScoringLayout, input_format: str):
        self._layout = layout
        self._format = input_format

    def process(self, readable_file):
        path = readable_file.metadata.path
        if self._format == "csv":
            yield from prefetched(csv_batches(lambda: readable_file.open(compression_type=CompressionTypes.AUTO),
                                              path, self._layout))
        else:
            with readable_file.open(compression_type=CompressionTypes.UNCOMPRESSED) as raw:
                yield from prefetched(parquet_batches(raw, path, self._layout))


class _Score(beam.DoFn):
    """Typed batch (or list of serialized tf.Examples) -> output batch; the model is loaded once per worker
    process and shared between threads (``apache_beam.utils.shared``)."""

    def __init__(self, model_dir: str, layout: ScoringLayout):
        from apache_beam.utils import shared

        self._model_dir = model_dir
        self._layout = layout
        self._shared = shared.Shared()

    def setup(self):
        self._model = self._shared.acquire(lambda: ScoringModel(self._model_dir))

    def process(self, element):
        if isinstance(element, pa.RecordBatch):
            yield output_batch(element, self._model.predict(element), self._layout)
        else:
            yield output_batch(example_keys(element, self._layout), self._model.serve(element), self._layout)


class _CountRows(beam.DoFn):
    """Pass-through row counter of batches (a Beam metric); prints progress every ``every`` rows when set."""

    def __init__(self, name: str, every: Optional[int] = None):
        self._name = name
        self._every = every
        self._counter = Metrics.counter(METRICS_NAMESPACE, name)

    def setup(self):
        self._seen = 0
        self._start = None

    def process(self, batch):
        rows = batch.num_rows if isinstance(batch, pa.RecordBatch) else len(batch)
        self._counter.inc(rows)
        if self._start is None:
            self._start = time.monotonic()
        before, self._seen = self._seen, self._seen + rows
        if self._every and self._seen // self._every > before // self._every:
            rate = self._seen / max(time.monotonic() - self._start, 1e-9)
            print(f"score: {self._seen:,} rows scored ({rate:,.0f} rows/s)", flush=True)
        yield batch


def _read(pipeline, paths: Sequence[str], pattern: str, input_format: str, layout: ScoringLayout):
    if input_format == "tfrecord":
        return (pipeline
                | "ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern, compression_type=_tfrecord_compression(paths[0]))
                | "Batch" >> beam.BatchElements(min_batch_size=BATCH_ROWS, max_batch_size=BATCH_ROWS))
    return (pipeline
            | "MatchFiles" >> fileio.MatchFiles(pattern)
            | "ReadMatches" >> fileio.ReadMatches()
            | "ReadBatches" >> beam.ParDo(_ReadTypedBatches(layout, input_format)))


def _write(batches, output_dir: str, output_format: str, layout: ScoringLayout):
    prefix = os.path.join(output_dir, OUTPUT_PREFIX)
    suffix = OUTPUT_SUFFIX[output_format]
    batches = batches | "SkipEmpty" >> beam.Filter(lambda b: b.num_rows > 0)
    if output_format == "parquet":
        return (batches
                | "ToTables" >> beam.Map(lambda b: pa.Table.from_batches([b]))
                | "WriteParquet" >> beam.io.WriteToParquetBatched(prefix, parquet_schema(layout),
                                                                  file_name_suffix=suffix))
    if output_format == "csv":
        return (batches
                | "ToCsv" >> beam.Map(csv_text)
                | "WriteCsv" >> beam.io.WriteToText(prefix, file_name_suffix=suffix,
                                                    header=csv_header(layout.output_names)))
    return (batches
            | "ToExamples" >> beam.FlatMap(serialize_examples)
            | "WriteTFRecord" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=suffix,
                                                         compression_type=CompressionTypes.GZIP))


def build_scoring(pipeline, model_dir: str, paths: Sequence[str], pattern: str, input_format: str,
                  output_dir: str, output_format: str, layout: ScoringLayout):
    """Add read -> count -> score -> count + progress -> write to ``pipeline``."""
    batches = (_read(pipeline, paths, pattern, input_format, layout)
               | "CountIn" >> beam.ParDo(_CountRows("rows_in"))
               | "Score" >> beam.ParDo(_Score(model_dir, layout))
               | "CountOut" >> beam.ParDo(_CountRows("rows_out", PROGRESS_EVERY)))
    return _write(batches, output_dir, output_format, layout)


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
Score raw impression logs with an exported model on Beam, a batch of thousands of rows per model call,
and write one row per input row: the request id (when the spec has one), the user/item ids, the scenario and
every head of the model (ctr, ctavr, cvr, ctcvr, xcvr, ...).

Input: CSV with a header row (empty cell = missing value), TFRecord of tf.Example (gzipped or not) or
Parquet; the format comes from the file extension unless --input-format is given. The feature spec is
--spec, else the one in the model's assets.extra/msmt_export.json (older models need --spec); it types the
columns. A cell that does not parse stops the run with the file, row and column named.

Output: DIR/scores-SSSSS-of-NNNNN.parquet|.csv|.tfrecord.gz. Progress is printed every 100,000 rows.
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
    p = subparsers.add_parser("score", help="batch-score impression logs with an exported model (Beam, Arrow batches)",
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
                   help="feature spec (a built-in name or a YAML path); default: the spec in "
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
