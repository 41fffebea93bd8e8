"""Row-level checks of an impression log against its feature spec: every bad row gets a kind and a reason.

The checked ExampleGen (``pipeline.checked_example_gen``) runs every CSV row through :class:`RowChecker`.
A good row becomes a ``tf.Example``; a bad one goes to the quarantine with its problems, and the run goes
on, unless the bad fraction passes the configured threshold.

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
``impossible_labels`` a label the spec's ``labels.requires_click`` names is 1 without a click (by default a
                     related action without a click)
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

from features.records import Column, parse_text
from features.spec import FeatureSpec

KINDS = ("malformed_line", "wrong_type", "non_finite", "empty_id", "missing_label", "label_out_of_range",
         "impossible_labels")
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FLOAT32_MAX = 3.4028234663852886e38
MAX_VALUE_CHARS = 200

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
        self.requires_click = [spec.label_columns[k] for k in spec.labels.requires_click]
        self.click = spec.labels.click

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
            for col in self.requires_click:
                if values.get(col) == 1 and values.get(self.click) == 0:
                    problems.append(RowProblem("impossible_labels", col, f"{col}=1, {self.click}=0",
                                               f"{col} is 1 without a click ({self.click} is 0)"))
        problems.sort(key=lambda p: KINDS.index(p.kind))
        return CheckedRow(None if problems else values, tuple(problems))

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


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."
