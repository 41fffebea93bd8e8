"""Row-level checks of an impression log against its feature spec: every bad row gets a kind and a reason.

The checked ExampleGen (``pipeline.checked_example_gen``) checks every CSV row with :class:`RowChecker`, a
block of lines at a time (:meth:`RowChecker.check_lines`: every rule below vectorised over Arrow arrays;
the rows a vectorised rule does not accept are checked one by one by :meth:`RowChecker.check_line`, the
reference, which gives their exact kind, column and message). A good row becomes a ``tf.Example``; a bad
one goes to the quarantine with its problems, and the run goes on, unless the bad fraction passes the
configured threshold.

Kinds of bad rows, checked in this order (a row's kind is its first problem; every problem is listed):

==================== ======================================================================================
``malformed_line``   the line is not CSV (bad quoting, a NUL byte) or has a different number of fields than
                     the header
``wrong_type``       a cell does not parse as its column's dtype (``"abc"`` in an int64 column, ``1.5`` in
                     a label, an integer outside int64)
``non_finite``       NaN or +-inf in a float column (numeric features, priors, float extras)
``empty_id``         an ``id`` feature (user, item) is empty
``missing_label``    a label cell is empty
``label_out_of_range`` a label is not 0 or 1
``impossible_labels`` a task's label is 1 while the task it comes ``after`` is 0 (a like without a click; in
                     the ``labels`` funnel, by default a related action without a click)
==================== ======================================================================================

Empty cells of other columns are missing values (left out of the example; Transform imputes them).
Column dtypes: the spec's for its features, int64 for labels, and for every other column (``ignore``
columns, request id, timestamp) the narrowest of int64 / float32 / string that fits a sample of the first
file (:func:`infer_column_types`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.columnar import ARROW_TYPES, INT_LITERAL, schema
from features.records import Column, parse_text
from features.spec import FeatureSpec

KINDS = ("malformed_line", "wrong_type", "non_finite", "empty_id", "missing_label", "label_out_of_range",
         "impossible_labels")
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FLOAT32_MAX = 3.4028234663852886e38
MAX_VALUE_CHARS = 200
# A decimal float literal without inf / nan (a strict subset of Python's ``float`` grammar): text that matches
# is a finite double, and the vectorised check only has to test its float32 range.
DECIMAL_LITERAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# An INT_LITERAL of at most this many characters has at most 18 digits, so it is inside int64.
SAFE_INT_CHARS = 18
# Characters that make the csv module's reading of a line differ from a plain split on commas (quotes, NUL,
# a carriage return inside the line): lines holding one are checked by the per-row path.
_CSV_SPECIAL = r'["\x00\r]'

# The share of bad rows a run quarantines and skips before it fails (pipeline, scoring and the adapters).
DEFAULT_MAX_BAD_FRACTION = 0.01


class LogFileError(ValueError):
    """A whole file cannot be read against the spec (no header, a spec column missing from the header)."""


@dataclasses.dataclass(frozen=True)
class RowProblem:
    """One problem of a row: its kind (one of ``KINDS``), the column (None for the whole line) and the value."""

    kind: str
    column: Optional[str]
    value: str
    message: str


@dataclasses.dataclass(frozen=True)
class CheckedRow:
    """A checked row: its typed values when good, else its problems (the first one gives the kind)."""

    values: Optional[Dict[str, Any]]
    problems: Tuple[RowProblem, ...] = ()

    @property
    def kind(self) -> Optional[str]:
        return self.problems[0].kind if self.problems else None


def split_csv_line(line: str) -> List[str]:
    """The fields of one physical CSV line; raises ``csv.Error`` on bad quoting or a NUL byte.

    Impression logs hold one row per line: a line is parsed alone, so a broken quote costs one row, never the
    rest of the file.
    """
    rows = list(csv.reader([line], strict=True))
    return rows[0] if rows else []


def _narrowest_type(values: Iterable[str]) -> str:
    dtype = "int64"
    for v in values:
        if v == "":
            continue
        try:
            parse_text(v, dtype)
        except ValueError:
            if dtype == "int64":
                dtype = "float32"
                try:
                    float(v)
                    continue
                except ValueError:
                    pass
            return "string"
    return dtype


def infer_column_types(spec: FeatureSpec, header: Sequence[str], sample: Sequence[Sequence[str]]
                       ) -> Dict[str, str]:
    """Dtype of every header column: the spec's for features, int64 for labels, inferred from ``sample`` rows
    (lists of fields; rows of the wrong width are skipped) for the other columns."""
    labels = set(spec.label_columns.values())
    features = {f.name: f.dtype for f in spec.features}
    out: Dict[str, str] = {}
    for i, name in enumerate(header):
        if name in features:
            out[name] = features[name]
        elif name in labels:
            out[name] = "int64"
        else:
            out[name] = _narrowest_type(r[i] for r in sample if len(r) == len(header))
    return out


class RowChecker:
    """Checks the fields of one row against the spec and the column dtypes of the file's header."""

    def __init__(self, spec: FeatureSpec, header: Sequence[str], column_types: Mapping[str, str], path: str = ""):
        missing = [c for c in spec.raw_columns if c not in set(header)]
        if missing:
            raise LogFileError(f"{path}: the header has no column {', '.join(missing)}, which the spec "
                               f"{spec.source} declares (header: {', '.join(header)})")
        self.header = list(header)
        self.columns = [Column(name, column_types.get(name, "string")) for name in header]
        self.ids = {f.name for f in spec.features if f.role == "id"}
        self.label_of_column = {col: key for key, col in spec.label_columns.items()}
        # (label column, column of the task it comes after, that task's name) for every task with ``after``
        self.after = [(t.label, spec.task(t.after).label, t.after) for t in spec.tasks if t.after]

    def check_line(self, line: str) -> CheckedRow:
        """Check one physical line of the file (without its newline)."""
        try:
            fields = split_csv_line(line)
        except csv.Error as e:
            return CheckedRow(None, (RowProblem("malformed_line", None, _clip(line), f"not a CSV line: {e}"),))
        return self.check_fields(fields, line)

    def check_fields(self, fields: Sequence[str], line: str = "") -> CheckedRow:
        if len(fields) != len(self.header):
            return CheckedRow(None, (RowProblem(
                "malformed_line", None, _clip(line or ",".join(fields)),
                f"{len(fields)} fields, the header has {len(self.header)}"),))
        problems: List[RowProblem] = []
        values: Dict[str, Any] = {}
        for column, text in zip(self.columns, fields):
            problem = self._check_cell(column, text, values)
            if problem:
                problems.append(problem)
        if not problems:
            for col, parent, task in self.after:
                if values.get(col) == 1 and values.get(parent) == 0:
                    problems.append(RowProblem("impossible_labels", col, f"{col}=1, {parent}=0",
                                               f"{col} is 1 without a {task} ({parent} is 0)"))
        problems.sort(key=lambda p: KINDS.index(p.kind))
        return CheckedRow(None if problems else values, tuple(problems))

    def check_lines(self, lines: Sequence[str]) -> CheckedLines:
        """Check a block of non-blank lines at once; the result is :meth:`check_line` of every line.

        Every column is checked vectorised on Arrow arrays: the field count, empty ids and labels, int and
        float literals (regular expressions that are a strict subset of Python's ``int`` / ``float``
        grammar), the int64 and float32 ranges, 0/1 labels and the tasks' ``after`` rules. A row that fails
        any of them, or holds a character that the csv module reads specially, goes through
        :meth:`check_line` instead, which gives its exact kind, column and message (or accepts it, e.g.
        ``3.0`` in an int column). Good logs therefore never pay for the per-row path.
        """
        width = len(self.header)
        text = pa.array(lines, pa.string())
        suspect = np.asarray(pc.or_(pc.match_substring_regex(text, _CSV_SPECIAL),
                                    pc.not_equal(pc.count_substring(text, ","), width - 1)), dtype=bool)
        plain = np.flatnonzero(~suspect)
        cells = pc.list_flatten(pc.split_pattern(text.take(pa.array(plain)), ","))
        starts = np.arange(len(plain), dtype=np.int64) * width
        typed, ok = [], np.ones(len(plain), dtype=bool)
        for i, column in enumerate(self.columns):
            values, column_ok = self._check_column(column, cells.take(pa.array(starts + i)))
            typed.append(values)
            ok &= column_ok
        for col, parent, _ in self.after:
            ok &= ~((np.asarray(typed[self.header.index(col)].fill_null(-1), dtype=np.int64) == 1)
                    & (np.asarray(typed[self.header.index(parent)].fill_null(-1), dtype=np.int64) == 0))
        keep = pa.array(ok)
        fast = pa.RecordBatch.from_arrays([v.filter(keep) for v in typed], schema=schema(self.columns))
        exact_rows = np.sort(np.concatenate([np.flatnonzero(suspect), plain[~ok]]))
        return CheckedLines(fast, plain[ok], [(int(i), self.check_line(lines[i])) for i in exact_rows])

    def _check_column(self, column: Column, cells: pa.Array) -> Tuple[pa.Array, np.ndarray]:
        """(typed values with nulls for missing cells, mask of the cells the vectorised checks accept)."""
        name, dtype = column.name, column.dtype
        empty = np.asarray(pc.equal(cells, ""), dtype=bool)
        if name in self.ids or name in self.label_of_column:
            ok = ~empty
        else:
            ok = np.ones(len(cells), dtype=bool)
        if dtype == "string":
            return pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), cells), ok
        if dtype == "int64":
            ok &= empty | (np.asarray(pc.match_substring_regex(cells, INT_LITERAL), dtype=bool)
                           & (np.asarray(pc.utf8_length(cells)) <= SAFE_INT_CHARS))
        else:
            ok &= empty | np.asarray(pc.match_substring_regex(cells, DECIMAL_LITERAL), dtype=bool)
        castable = pc.if_else(pa.array(ok & ~empty), cells, pa.scalar(None, pa.string()))
        if dtype == "int64":
            values = castable.cast(pa.int64())
            if name in self.label_of_column:
                ok &= np.isin(np.asarray(values.fill_null(0)), (0, 1))
            return values, ok
        doubles = castable.cast(pa.float64())
        ok &= np.asarray(pc.fill_null(pc.less_equal(pc.abs(doubles), FLOAT32_MAX), True), dtype=bool)
        return doubles.cast(ARROW_TYPES[dtype], safe=False), ok

    def _check_cell(self, column: Column, text: str, values: Dict[str, Any]) -> Optional[RowProblem]:
        name = column.name
        if text == "":
            if name in self.ids:
                return RowProblem("empty_id", name, "", "empty id")
            if name in self.label_of_column:
                return RowProblem("missing_label", name, "", "empty label")
            values[name] = None
            return None
        try:
            value = parse_text(text, column.dtype)
        except ValueError:
            return RowProblem("wrong_type", name, _clip(text), f"{text!r} is not a valid {column.dtype}")
        if column.dtype == "int64" and not INT64_MIN <= value <= INT64_MAX:
            return RowProblem("wrong_type", name, _clip(text), f"{text!r} is outside the int64 range")
        if column.dtype == "float32" and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            return RowProblem("non_finite", name, _clip(text), f"{text!r} is not a finite float32")
        if name in self.label_of_column and value not in (0, 1):
            return RowProblem("label_out_of_range", name, text, f"label {text!r} is not 0 or 1")
        values[name] = value
        return None


@dataclasses.dataclass(frozen=True)
class CheckedLines:
    """The rows of a block of lines, in two parts that together hold every row once.

    ``fast``: the typed values (columns of the checker, in header order) of the rows whose every cell passed
    the vectorised checks, at row positions ``fast_rows`` of the block. ``exact``: ``(position, CheckedRow)``
    of the other rows, checked one by one (bad rows, and good rows the vectorised checks could not judge).
    """

    fast: pa.RecordBatch
    fast_rows: np.ndarray
    exact: List[Tuple[int, CheckedRow]]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."
