"""CSV ExampleGen that checks every row against the feature spec and quarantines the bad ones.

TFX's CsvExampleGen stops on the first line it cannot decode and lets NaN, empty ids, missing or
impossible labels through to training. This executor (a ``FileBasedExampleGen`` custom executor, so
spans, hash splits, caching and MLMD behave exactly as CsvExampleGen's) reads each file in blocks of lines,
checks every row with :class:`features.row_check.RowChecker` (column-wise on Arrow arrays, row by row only
for the rows that fail a vectorised check) and

* turns the good rows into ``tf.Example`` (columns typed by the spec; see ``features.row_check``);
* writes every bad row to ``<examples artifact>/quarantine/bad_rows-<split>.jsonl``: file, row number,
  line number, kind, column, value, reason and the raw line;
* writes the counts per kind to ``quarantine/summary-<split>.json`` and logs them with the first rows of
  each kind;
* fails the component with :class:`BadRowsError` (naming the counts, examples and the quarantine path)
  when the bad fraction passes ``max_bad_fraction``; below it the run goes on with the good rows.

Memory: TFX writes each split after a ``Reshuffle``, which the in-process DirectRunner materialises whole (a
5M-row ExampleGen peaked at 13 GiB). With ``"shuffle": false`` this executor writes each split in reading order
instead (``pipeline.tfx_patches.splits_written_in_order``), and ExampleGen's memory no longer grows with the
number of rows; the rows are still hash-partitioned into splits, and the Trainer shuffles within its buffer.

Settings travel in the component's ``custom_config`` (a ``google.protobuf.Struct`` packed in
``example_gen_pb2.CustomConfig``): ``{"spec_json": <FeatureSpec.to_dict() as JSON>, "max_bad_fraction": x,
"shuffle": true|false}``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import logging
import os
from typing import Any, Dict, Iterator, List, Optional

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from features.columnar import serialized_examples
from features.records import to_example_proto
from features.row_check import DEFAULT_MAX_BAD_FRACTION, KINDS, CheckedRow, LogFileError, RowChecker, \
    infer_column_types, split_csv_line
from features.spec import FeatureSpec, spec_from_dict
from pipeline.tfx_patches import splits_written_in_order

QUARANTINE_DIR = "quarantine"
QUARANTINE_KEY = "_msmt_quarantine_dir"
TYPE_SAMPLE_ROWS = 1000
EXAMPLES_PER_KIND = 3
PROGRESS_EVERY = 100_000
BLOCK_BYTES = 4 << 20  # rows checked and encoded at once: ~30k rows of a typical log
ERROR_PREFIX = "ExampleGen rejected the input:"


class BadRowsError(RuntimeError):
    """More rows are bad than ``max_bad_fraction`` allows; the message names counts, rows and the quarantine."""


def make_custom_config(spec: FeatureSpec, max_bad_fraction: float,
                       shuffle: bool = True) -> example_gen_pb2.CustomConfig:
    """The ``custom_config`` of a checked ExampleGen for ``spec``."""
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({"spec_json": json.dumps(spec.to_dict()), "max_bad_fraction": float(max_bad_fraction),
                   "shuffle": bool(shuffle)})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def read_custom_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    from google.protobuf import json_format, struct_pb2

    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        raise ValueError("the checked ExampleGen needs a custom_config with the feature spec")
    config = raw if isinstance(raw, example_gen_pb2.CustomConfig) else proto_utils.json_to_proto(
        raw, example_gen_pb2.CustomConfig())
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    settings = json_format.MessageToDict(struct)
    return {"spec": spec_from_dict(json.loads(settings["spec_json"]), source="custom_config"),
            "max_bad_fraction": float(settings.get("max_bad_fraction", DEFAULT_MAX_BAD_FRACTION)),
            "shuffle": bool(settings.get("shuffle", True))}


def _open_lines(path: str) -> Iterator[str]:
    with fileio.open(path, "r") as fh:
        for line in fh:
            yield line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line


def _file_layout(spec: FeatureSpec, path: str):
    """(header, column dtypes) of one CSV file; non-spec column types from its first rows."""
    lines = (line for block in _line_blocks(path, 1 << 20) for line in block)
    header = _header(next(lines, None))
    if header is None:
        raise LogFileError(f"{path}: empty file, expected a header line")
    sample: List[List[str]] = []
    for line in lines:
        if len(sample) >= TYPE_SAMPLE_ROWS:
            break
        try:
            sample.append(split_csv_line(line))
        except Exception:  # noqa: BLE001 - a malformed line is reported by the checker, not here
            continue
    return header, infer_column_types(spec, header, sample)


class _CheckRows(beam.DoFn):
    """file path -> good serialized ``tf.Example`` (main output) and bad-row records (tagged ``bad``), in
    reading order; ``(kind, count)`` pairs (tagged ``kinds``, ``good`` for the good rows) for the counts.

    The file is read in blocks of about ``block_bytes`` and each block's rows are checked and encoded
    column-wise (:meth:`RowChecker.check_lines`, :func:`features.columnar.serialized_examples`); rows the
    vectorised checks do not accept are checked one by one. A good row's record is the deterministic
    serialization of its ``tf.Example``, which is the key TFX hashes to pick its split.
    """

    def __init__(self, spec: FeatureSpec, column_types: Dict[str, str], block_bytes: int = BLOCK_BYTES):
        self._spec = spec
        self._column_types = column_types
        self._block_bytes = block_bytes

    def process(self, path: str):
        blocks = _line_blocks(path, self._block_bytes)
        first = next(blocks, [])
        header = _header(first[0] if first else None)
        if header is None:
            if len(first) <= 1 and next(blocks, None) is None:
                return  # an empty file holds no rows
            raise LogFileError(f"{ERROR_PREFIX} {path}: the first line is empty, expected a header line")
        types = dict(self._column_types)
        for name in header:
            types.setdefault(name, "string")
        try:
            checker = RowChecker(self._spec, header, types, path)
        except LogFileError as e:
            raise LogFileError(f"{ERROR_PREFIX} {e}") from None
        rows_before, next_line = 0, 2
        for lines in itertools.chain([first[1:]], blocks):
            kept = [i for i, line in enumerate(lines) if line.strip()]
            checked = checker.check_lines([lines[i] for i in kept])
            records: List[Any] = [None] * len(kept)
            for position, record in zip(checked.fast_rows.tolist(),
                                        serialized_examples(checked.fast, checker.columns).to_pylist()):
                records[position] = record
            counts = collections.Counter({"good": len(checked.fast_rows)})
            for position, row in checked.exact:
                if row.problems:
                    counts[row.kind] += 1
                    records[position] = beam.pvalue.TaggedOutput("bad", _bad_row_record(
                        path, rows_before + position + 1, next_line + kept[position], lines[kept[position]], row))
                else:
                    counts["good"] += 1
                    records[position] = to_example_proto(row.values, checker.columns).SerializeToString(
                        deterministic=True)
            yield from records
            for kind, n in counts.items():
                if n:
                    yield beam.pvalue.TaggedOutput("kinds", (kind, n))
            if (rows_before + len(kept)) // PROGRESS_EVERY > rows_before // PROGRESS_EVERY:
                logging.info("checked ExampleGen: %s: %d rows read", path, rows_before + len(kept))
            rows_before += len(kept)
            next_line += len(lines)
        logging.info("checked ExampleGen: %s: %d rows read", path, rows_before)


def _header(line: Optional[str]) -> Optional[List[str]]:
    """The header fields of a file's first line, or None when the file has none or it is blank."""
    return split_csv_line(line) if line is not None and line.strip() else None


def _line_blocks(path: str, block_bytes: int) -> Iterator[List[str]]:
    """The lines of a file (newline and trailing carriage returns removed, decoded as UTF-8 with replacement) in
    blocks of whole lines of about ``block_bytes``."""
    with fileio.open(path, "rb") as fh:
        rest = b""
        while True:
            chunk = fh.read(block_bytes)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield _lines(data[:cut])
        if rest:
            yield _lines(rest)


def _lines(data: bytes) -> List[str]:
    return [line.rstrip("\r") for line in data.decode("utf-8", errors="replace").split("\n")]


def _bad_row_record(path: str, row: int, line_number: int, line: str, checked: CheckedRow) -> str:
    """The quarantine record of a bad row (one JSON line)."""
    first = checked.problems[0]
    return json.dumps({
        "file": path, "row": row, "line": line_number, "kind": first.kind, "column": first.column,
        "value": first.value, "reason": first.message,
        "problems": [{"kind": p.kind, "column": p.column, "value": p.value, "reason": p.message}
                     for p in checked.problems],
        "raw": line}, ensure_ascii=False)


def _write_summary(kinds: List[Any], path: str, pattern: str, files: List[str]) -> None:
    counts = dict(kinds)
    summary = {"pattern": pattern, "files": files, "good": int(counts.get("good", 0)),
               "bad": {k: int(counts.get(k, 0)) for k in KINDS}}
    summary["total"] = summary["good"] + sum(summary["bad"].values())
    with fileio.open(path, "w") as fh:
        fh.write(json.dumps(summary, indent=1))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _CheckedCsvToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    settings = read_custom_config(exec_properties)
    spec = settings["spec"]
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    files = sorted(fileio.glob(pattern))
    if not files:
        raise LogFileError(f"{ERROR_PREFIX} no file matches {pattern}")
    try:
        header, types = _file_layout(spec, files[0])
        RowChecker(spec, header, types, files[0])  # a spec column missing from the header fails here, early
    except LogFileError as e:
        raise LogFileError(f"{ERROR_PREFIX} {e}") from None
    quarantine = exec_properties[QUARANTINE_KEY]
    tag = hashlib.sha1(split_pattern.encode()).hexdigest()[:8]
    rows = (pipeline | "Files" >> beam.Create(files)
            | "CheckRows" >> beam.ParDo(_CheckRows(spec, types, BLOCK_BYTES)).with_outputs("bad", "kinds", main="good"))
    _ = (rows.bad | "WriteBadRows" >> beam.io.WriteToText(
        os.path.join(quarantine, f"bad_rows-{tag}"), file_name_suffix=".jsonl", num_shards=1,
        shard_name_template=""))
    _ = (rows.kinds | "CountKinds" >> beam.CombinePerKey(sum)
         | "AllCounts" >> beam.combiners.ToList()
         | "WriteSummary" >> beam.Map(_write_summary, os.path.join(quarantine, f"summary-{tag}.json"),
                                      pattern, files))
    return rows.good


def read_quarantine(examples_uri: str) -> Optional[Dict[str, Any]]:
    """Counts of a checked ExampleGen output (summed over its input splits) with the first bad rows of each
    kind; None when the artifact has no quarantine (another ExampleGen made it)."""
    qdir = os.path.join(examples_uri, QUARANTINE_DIR)
    summaries = sorted(fileio.glob(os.path.join(qdir, "summary-*.json"))) if fileio.exists(qdir) else []
    if not summaries:
        return None
    out: Dict[str, Any] = {"good": 0, "total": 0, "bad": {k: 0 for k in KINDS}, "examples": {},
                           "quarantine": qdir, "bad_rows_files": []}
    for path in summaries:
        with fileio.open(path, "r") as fh:
            s = json.loads(fh.read())
        out["good"] += s["good"]
        out["total"] += s["total"]
        for k, n in s["bad"].items():
            out["bad"][k] += n
    for path in sorted(fileio.glob(os.path.join(qdir, "bad_rows-*.jsonl"))):
        out["bad_rows_files"].append(path)
        for line in _open_lines(path):
            if not line.strip():
                continue
            record = json.loads(line)
            shown = out["examples"].setdefault(record["kind"], [])
            if len(shown) < EXAMPLES_PER_KIND:
                shown.append(record)
    out["bad_total"] = sum(out["bad"].values())
    out["bad_fraction"] = out["bad_total"] / out["total"] if out["total"] else 0.0
    return out


def merge_quarantines(parts: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """:func:`read_quarantine` results of several ExampleGen outputs (e.g. every span a run read) as one: counts
    summed, the first bad rows of each kind kept, every quarantine directory and bad-rows file listed."""
    if not parts:
        return None
    out: Dict[str, Any] = {"good": 0, "total": 0, "bad": {k: 0 for k in KINDS}, "examples": {},
                           "quarantine": parts[-1]["quarantine"], "quarantines": [], "bad_rows_files": []}
    for q in parts:
        out["good"] += q["good"]
        out["total"] += q["total"]
        for k, n in q["bad"].items():
            out["bad"][k] += n
        for kind, rows in q["examples"].items():
            shown = out["examples"].setdefault(kind, [])
            shown.extend(rows[:EXAMPLES_PER_KIND - len(shown)])
        out["quarantines"].append(q["quarantine"])
        out["bad_rows_files"].extend(q["bad_rows_files"])
    out["bad_total"] = sum(out["bad"].values())
    out["bad_fraction"] = out["bad_total"] / out["total"] if out["total"] else 0.0
    return out


def describe(q: Dict[str, Any]) -> str:
    """Human-readable counts per kind, with file, row, column and value of the first rows of each kind."""
    lines = [f"{q['bad_total']} bad rows of {q['total']} ({100 * q['bad_fraction']:.2f}%); "
             f"{q['good']} good rows kept"]
    for kind in KINDS:
        n = q["bad"].get(kind, 0)
        if not n:
            continue
        lines.append(f"  {kind}: {n}")
        for r in q["examples"].get(kind, []):
            col = f", column {r['column']!r}" if r.get("column") else ""
            lines.append(f"    {r['file']}: row {r['row']} (line {r['line']}){col}: {r['value']!r}: {r['reason']}")
    if q["bad_total"]:
        lines.append(f"  every bad row with its reason: {', '.join(q['bad_rows_files'])}")
    return "\n".join(lines)


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for CSV impression logs with row checks and a quarantine."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CheckedCsvToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        quarantine = os.path.join(examples.uri, QUARANTINE_DIR)
        fileio.makedirs(quarantine)
        exec_properties = dict(exec_properties, **{QUARANTINE_KEY: quarantine})
        settings = read_custom_config(exec_properties)
        max_bad = settings["max_bad_fraction"]
        with contextlib.nullcontext() if settings["shuffle"] else splits_written_in_order():
            super().Do(input_dict, output_dict, exec_properties)
        q = read_quarantine(examples.uri)
        text = describe(q)
        logging.warning("checked ExampleGen: %s", text) if q["bad_total"] else logging.info(
            "checked ExampleGen: %s", text)
        for kind, n in q["bad"].items():
            examples.set_int_custom_property(f"bad_rows_{kind}", n)
        examples.set_int_custom_property("bad_rows", q["bad_total"])
        examples.set_int_custom_property("good_rows", q["good"])
        if q["total"] and q["bad_fraction"] > max_bad:
            raise BadRowsError(f"{ERROR_PREFIX} {100 * q['bad_fraction']:.2f}% of the rows are bad, more than "
                               f"max_bad_fraction {max_bad:g}. {text}")
