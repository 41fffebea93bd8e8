"""Draft a feature spec from a sample of an impression log: ``msmt spec infer FILE``.

:func:`infer_spec` reads at most ``rows`` rows of a CSV (with a header), Parquet or TFRecord (``tf.Example``,
gzip or not) file, streaming, profiles every column and guesses its role. The result is a YAML document that
:func:`features.spec.load_spec` reads, with a ``#`` comment on every line that says what the sample showed and
why the role was chosen, and ``TODO`` where a guess is weak or a required part is missing. A user checks the
draft, edits it, and passes it to ``msmt run --spec``.

Per column the profile holds: the dtype (the narrowest of ``int64`` / ``float32`` / ``string`` that fits the
non-empty values; in a CSV ``3`` is an integer and ``3.0`` a float; cells that do not fit, up to
``BAD_CELL_TOLERANCE`` of the column, are counted as bad cells, which the pipeline quarantines), the distinct
values (tracked up to ``DISTINCT_CAP``), the missing fraction, separators inside string cells (``|``, ``;``,
``,``), lists (Parquet / ``tf.Example`` cells with several values), min / max / skewness of numbers.

The guesses, in the order they are tried on a column:

========================= =================================================================================
``ignore`` (oracle)       the name starts with ``p_``, ``prob``, ``true_p``, ``oracle``, ``debug``
label                     an int64 column with values only in {0, 1} named like ``click`` (click, clk,
                          is_click, clicked), ``conversion`` (conversion, conv, buy, purchase, pay, order)
                          or ``raction`` (action, cart, fav, like, collect); a second column named like the
                          same label is ignored (it would leak the label)
task                      a 0/1 int64 column named like another engagement label (follow, share, forward,
                          comment, long_view, complete, hate, ...: ``TASK_WORDS``). When the sample has such
                          a label, or a click but no conversion label, the draft declares ``tasks`` instead of the
                          ``labels`` funnel: one task per label column, named after it (``is_like`` ->
                          ``like``), ``after: click`` when every positive of the sample has a click
``request_id``            request_id, req_id, search_id, session_id, query_id, pv_id, impression_id (MIND's id
                          of one impression list)
``timestamp``             ts, timestamp, time, event_time, datetime, date, also with a unit suffix (time_ms)
a known public layout     the Ali-CCP and AliExpress sample layouts (``KNOWN_LAYOUTS``) give the documented
                          role of each field, and the header names the shipped spec
``scenario``              a string / int column with 1..50 values named scenario, scene, page, slot,
                          country, domain, channel, tab; when no column is named so, the categorical column with
                          the fewest values (2..50) is picked and flagged ``TODO check``
``id``                    a name ending in ``id`` (user_id, item_id, uid, adid, video_id, news_id, ...) of a
                          user- or item-side entity (``USER_WORDS``, ``ITEM_WORDS``: items include content
                          such as videos, news, articles, movies, books and songs) with no missing value; ``encoding: hash`` with ``hash_buckets`` about twice
                          the distinct count when it has ``HASH_MIN_DISTINCT`` or more distinct values.
                          Other ``*_id`` columns (shop_id, cate_id) are categorical: an empty ``id`` cell
                          makes a bad row
``ignore`` (constant)     one value in the whole sample (or all missing)
``multivalent``           a string column whose cells contain a separator (``|``, ``;``, ``,``) in at least
                          ``MULTIVALENT_MIN_SHARE`` of the rows, or a list column
``categorical``           strings; integers with at most ``CATEGORICAL_MAX_INT`` distinct values, or named
                          like a category (category, brand, shop, gender, age, segment, type, ...)
``numeric``               floats, integers with more distinct values or named like a quantity (count,
                          price, amount, duration, ...); ``log1p_zscore`` when non-negative with a long
                          right tail (``max >= 10`` and skewness >= 1), else ``zscore``
========================= =================================================================================

Prior groups follow name prefixes: ``user_`` / ``u_`` / user ids -> ``user``, ``item_`` / ``i_`` / ``ad_`` /
item ids -> ``item``, the scenario feature -> ``scenario``.

A CSV whose first line is all numbers has no header: the columns are named ``column_1`` .. ``column_N``, the
first two 0/1 integer columns are taken as click and conversion (``TODO check``), and a warning says that the
pipeline needs a header. A required part that cannot be guessed at all (a label, the scenario) becomes a
``TODO_...`` placeholder: the draft still loads, ``msmt run`` then fails naming the missing column, and
:attr:`Draft.warnings` names what to fill in.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import math
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import yaml

from features import formats
from features.row_check import split_csv_line
from features.spec import SpecError, describe_tasks, spec_from_dict

DEFAULT_ROWS = 10_000
DISTINCT_CAP = 100_000          # distinct values tracked per column; beyond it the count is a lower bound
TOKEN_CAP = 20_000              # distinct multivalent tokens tracked per column and separator
NUMERIC_SAMPLE = 20_000         # numbers kept per column for median and skewness
BAD_CELL_TOLERANCE = 0.01       # cells that do not fit a column's dtype, tolerated as bad cells (the
                                # pipeline's default --max-bad-fraction)
SEPARATORS = ("|", ";", ",")
MULTIVALENT_MIN_SHARE = 0.2
SCENARIO_MAX_VALUES = 50
CATEGORICAL_MAX_INT = 1000
HASH_MIN_DISTINCT = 1000

_INT_LITERAL = re.compile(r"[+-]?\d+")

# Name vocabularies (lower-case tokens of the column name).
LABEL_WORDS = (
    ("click", ("click", "clk", "clicked", "clicks")),
    ("conversion", ("conversion", "conv", "convert", "converted", "buy", "bought", "purchase", "purchased",
                    "pay", "paid", "order", "ordered")),
    ("raction", ("action", "cart", "addcart", "fav", "favorite", "favourite", "like", "liked", "collect")),
)
# Other engagement labels (tokens of the column name): each becomes a declared task (docs/spec.md#tasks).
TASK_WORDS = ("follow", "followed", "share", "shared", "forward", "forwarded", "comment", "commented", "long",
              "longview", "complete", "completed", "finish", "finished", "hate", "dislike", "subscribe",
              "subscribed", "download", "install", "register", "retain", "retained")
REQUEST_ID_NAMES = ("request_id", "req_id", "requestid", "search_id", "searchid", "session_id", "sessionid",
                    "query_id", "queryid", "pv_id", "pvid", "impression_id", "impressionid", "imp_id")
TIME_UNITS = ("ms", "millis", "s", "sec", "secs", "seconds", "us", "ns")  # a timestamp's unit suffix: time_ms
TIMESTAMP_NAMES = ("ts", "timestamp", "time", "time_stamp", "event_time", "event_ts", "datetime", "date",
                   "dt", "log_time", "impression_time")
ORACLE_PREFIXES = ("p_", "prob", "true_p", "truth", "oracle", "debug")
SCENARIO_WORDS = ("scenario", "scenarios", "scene", "page", "slot", "country", "domain", "channel", "tab")
USER_WORDS = ("user", "u", "uid", "userid", "member", "customer", "buyer", "visitor")
ITEM_WORDS = ("item", "i", "iid", "itemid", "ad", "adid", "goods", "product", "sku", "offer", "video", "vid",
              "photo", "news", "article", "movie", "book", "song", "track", "poi")
CATEGORY_WORDS = ("category", "cate", "cat", "brand", "shop", "seller", "store", "city", "province", "region",
                  "gender", "sex", "age", "segment", "level", "type", "os", "device", "hour", "weekday", "day",
                  "month", "code", "class", "group", "tag", "position", "pos", "rank")
QUANTITY_WORDS = ("count", "cnt", "num", "price", "amount", "sum", "total", "duration", "dur", "seconds",
                  "length", "len", "size", "sales", "revenue", "ctr", "cvr", "rate", "ratio", "score",
                  "activity", "popularity", "dist", "distance")
_YAML_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", ""}


class InferError(ValueError):
    """The sample cannot be read (no such file, unknown format, no header, no rows); the message says why."""


# ---------------------------------------------------------------------------- known public layouts
@dataclasses.dataclass(frozen=True)
class Hint:
    """The documented role of the columns whose name matches ``pattern`` in a known layout."""

    pattern: str
    role: str
    group: Optional[str]
    reason: str
    dtype: Optional[str] = None       # forced dtype (documented numerics are float32 even if a sample is 0/1)


@dataclasses.dataclass(frozen=True)
class Layout:
    name: str
    title: str
    required: Tuple[str, ...]         # a header holding all these columns has this layout
    hints: Tuple[Hint, ...]
    scenario_values: Tuple[str, ...] = ()

    def hint(self, column: str) -> Optional[Hint]:
        return next((h for h in self.hints if re.fullmatch(h.pattern, column)), None)


KNOWN_LAYOUTS = (
    Layout("aliccp", "Ali-CCP (Taobao display ads)", ("click", "purchase", "101", "205", "301"), (
        Hint("101", "id", "user", "Ali-CCP field 101 = user id"),
        Hint("12[1-9]", "categorical", "user", "Ali-CCP fields 121-129 = user profile"),
        Hint("205", "id", "item", "Ali-CCP field 205 = item id"),
        Hint("206", "categorical", "item", "Ali-CCP field 206 = item category"),
        Hint("207", "categorical", "item", "Ali-CCP field 207 = shop"),
        Hint("210", "categorical", None, "Ali-CCP field 210 = intention node"),
        Hint("216", "categorical", "item", "Ali-CCP field 216 = brand"),
        Hint("301", "scenario", "scenario", "Ali-CCP field 301 = traffic scenario"),
        Hint("508|509|702|853", "categorical", None, "Ali-CCP user x item cross field"),
        Hint(r"\d+_14", "numeric", None, "Ali-CCP *_14 = numeric user behaviour aggregate"),
        Hint(r"D\d+(_14)?", "numeric", None, "Ali-CCP D* = numeric value of a field", "float32"),
    ), scenario_values=("1", "2", "3")),
    Layout("aliexpress", "AliExpress search logs", ("search_id", "categorical_1", "numerical_1", "click",
                                                    "conversion"), (
        Hint("categorical_1", "scenario", "scenario",
             "AliExpress: one country per released file; categorical_1 stands in for the scenario "
             "(the shipped spec's choice)"),
        Hint(r"categorical_\d+", "categorical", None, "AliExpress categorical_* = label-encoded categorical"),
        Hint(r"numerical_\d+", "numeric", None, "AliExpress numerical_* = numeric", "float32"),
    )),
)


# ---------------------------------------------------------------------------- column profile
@dataclasses.dataclass
class ColumnStats:
    """What the sample showed of one column."""

    name: str
    rows: int = 0
    missing: int = 0
    ints: int = 0
    floats: int = 0
    strings: int = 0
    non_finite: int = 0
    lists: int = 0                   # cells with several values (Parquet lists, tf.Example lists)
    max_list: int = 0
    distinct: Dict[str, int] = dataclasses.field(default_factory=dict)
    distinct_capped: bool = False
    non_numeric_example: Optional[str] = None
    non_int_example: Optional[str] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    numbers: List[float] = dataclasses.field(default_factory=list)
    separators: Dict[str, int] = dataclasses.field(default_factory=dict)
    tokens: Dict[str, set] = dataclasses.field(default_factory=dict)
    binary: Optional[bytearray] = dataclasses.field(default_factory=bytearray)  # per row 0, 1, 2 = missing
    text_source: bool = False        # CSV cells: "1.0" in a label column is read as the integer 1

    # ------------------------------------------------------------------ observing
    def observe_text(self, text: str) -> None:
        """One CSV cell."""
        self.text_source = True
        self.rows += 1
        if text == "":
            self._missing()
            return
        if _INT_LITERAL.fullmatch(text):
            self._int(int(text), text)
            return
        try:
            value = float(text)
        except ValueError:
            self._string(text)
            return
        self._float(value, text)

    def observe_value(self, value: Any) -> None:
        """One typed cell (Parquet, tf.Example): None, a bool / int / float / str / bytes, or a list of them."""
        self.rows += 1
        if isinstance(value, (list, tuple)):
            if len(value) > 1:
                self._list(value)
                return
            value = value[0] if value else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self._missing()
        elif isinstance(value, bool):
            self._int(int(value), str(int(value)))
        elif isinstance(value, int):
            self._int(value, str(value))
        elif isinstance(value, float):
            self._float(value, repr(value))
        else:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if text == "":
                self._missing()
            else:
                self._string(text)

    def pad_missing(self, rows: int) -> None:
        """A column first seen after ``rows`` rows (tf.Example features are optional): earlier rows miss it."""
        for _ in range(rows):
            self.rows += 1
            self._missing()

    def _count(self, key: str) -> None:
        if key in self.distinct:
            self.distinct[key] += 1
        elif len(self.distinct) < DISTINCT_CAP:
            self.distinct[key] = 1
        else:
            self.distinct_capped = True

    def _bin(self, code: int) -> None:
        if self.binary is not None:
            if code > 2:
                self.binary = None
            else:
                self.binary.append(code)

    def _missing(self) -> None:
        self.missing += 1
        self._bin(2)

    def _number(self, value: float) -> None:
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.maximum = value if self.maximum is None else max(self.maximum, value)
        if len(self.numbers) < NUMERIC_SAMPLE:
            self.numbers.append(value)

    def _int(self, value: int, key: str) -> None:
        self.ints += 1
        self._count(key)
        self._number(float(value))
        self._bin(value if value in (0, 1) else 3)

    def _float(self, value: float, key: str) -> None:
        self.floats += 1
        self._count(key)
        if self.non_int_example is None:
            self.non_int_example = key
        if math.isfinite(value):
            self._number(value)
        else:
            self.non_finite += 1
        self._bin(int(value) if self.text_source and value in (0.0, 1.0) else 3)

    def _string(self, text: str) -> None:
        self.strings += 1
        self._count(text)
        if self.non_numeric_example is None:
            self.non_numeric_example = text
        if self.non_int_example is None:
            self.non_int_example = text
        for sep in SEPARATORS:
            if sep in text:
                self.separators[sep] = self.separators.get(sep, 0) + 1
                toks = self.tokens.setdefault(sep, set())
                if len(toks) < TOKEN_CAP:
                    toks.update(t for t in text.split(sep) if t)
        self._bin(3)

    def _list(self, values: Sequence[Any]) -> None:
        self.lists += 1
        self.max_list = max(self.max_list, len(values))
        items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
        self._count("|".join(items))
        toks = self.tokens.setdefault("list", set())
        if len(toks) < TOKEN_CAP:
            toks.update(items)
        self._bin(3)

    # ------------------------------------------------------------------ summaries
    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def num_distinct(self) -> int:
        return len(self.distinct)

    @property
    def dtype(self) -> str:
        """The narrowest dtype that fits all but ``BAD_CELL_TOLERANCE`` of the non-empty scalar cells."""
        n = self.ints + self.floats + self.strings
        if n == 0:
            return "string" if self.lists else "int64"
        allowed = BAD_CELL_TOLERANCE * n
        if self.floats + self.strings <= allowed and self.ints:
            return "int64"
        if self.strings <= allowed and (self.ints or self.floats):
            return "float32"
        return "string"

    @property
    def bad_cells(self) -> int:
        """Cells that do not fit :attr:`dtype`."""
        dtype = self.dtype
        if dtype == "int64":
            return self.floats + self.strings
        if dtype == "float32":
            return self.strings
        return 0

    @property
    def is_binary(self) -> bool:
        """Values only 0 and 1: integers, or in a CSV also ``0.0`` / ``1.0`` (which the pipeline reads as integers)."""
        return self.binary is not None and self.ints + self.floats > 0 and self.strings == 0 and \
            self.non_finite == 0

    @property
    def positives(self) -> int:
        return self.binary.count(1) if self.binary is not None else 0

    def values_sorted(self) -> List[str]:
        return sorted(self.distinct, key=_natural_key)

    def skewness(self) -> float:
        xs = self.numbers
        if len(xs) < 3:
            return 0.0
        mean = sum(xs) / len(xs)
        var = sum((x - mean) ** 2 for x in xs) / len(xs)
        if var <= 0:
            return 0.0
        return sum((x - mean) ** 3 for x in xs) / len(xs) / var ** 1.5

    def separator(self) -> Optional[str]:
        """The separator found in at least ``MULTIVALENT_MIN_SHARE`` of the string cells (most frequent)."""
        if self.strings == 0:
            return None
        best = max(SEPARATORS, key=lambda s: (self.separators.get(s, 0), -SEPARATORS.index(s)))
        count = self.separators.get(best, 0)
        return best if count and count >= MULTIVALENT_MIN_SHARE * (self.strings + self.ints + self.floats) \
            else None

    def describe(self, rows: int) -> str:
        """``int64, 2 distinct values {0,1}, 3.1% missing``: the facts the comment starts with."""
        if self.lists:
            parts = [f"lists of up to {self.max_list} values in {_pct(self.lists, rows)} of rows"]
        else:
            parts = [self.dtype]
        nd = self.num_distinct
        more = "+" if self.distinct_capped else ""
        if 0 < nd <= 5 and not self.lists:
            parts.append(f"{nd} distinct value{'s' if nd > 1 else ''} {{{','.join(_short(v) for v in self.values_sorted())}}}")
        else:
            parts.append(f"{nd}{more} distinct in {rows} rows")
        if self.missing:
            parts.append(f"{_pct(self.missing, rows)} missing")
        if self.dtype != "string" and self.minimum is not None and nd > 5:
            parts.append(f"range [{_num(self.minimum)}, {_num(self.maximum)}]")
        if self.non_finite:
            parts.append(f"{self.non_finite} NaN/inf (bad rows in a CSV)")
        if self.bad_cells:
            example = self.non_numeric_example if self.dtype == "float32" else self.non_int_example
            parts.append(f"{self.bad_cells} cell(s) not {self.dtype} (e.g. {_short(example or '')!r}: bad rows)")
        return ", ".join(parts)


def _natural_key(v: str):
    return (0, int(v), "") if _INT_LITERAL.fullmatch(v) else (1, 0, v)


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "0%"


def _num(x: Optional[float]) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:.4g}"


def _short(v: str, n: int = 20) -> str:
    return v if len(v) <= n else v[:n] + "..."


# ---------------------------------------------------------------------------- the sample
@dataclasses.dataclass
class Profile:
    """The profiled sample: one :class:`ColumnStats` per column, in file order."""

    path: str
    format: str
    columns: Dict[str, ColumnStats] = dataclasses.field(default_factory=dict)
    rows: int = 0
    files: List[str] = dataclasses.field(default_factory=list)
    malformed: int = 0
    malformed_example: str = ""
    headerless: bool = False
    notes: List[str] = dataclasses.field(default_factory=list)

    def column(self, name: str) -> ColumnStats:
        stats = self.columns.get(name)
        if stats is None:
            stats = self.columns[name] = ColumnStats(name)
            stats.pad_missing(self.rows)
        return stats


def detect_format(path: str) -> str:
    """``csv``, ``parquet`` or ``tfrecord`` of a file or pattern (``features.formats.detect_format``)."""
    try:
        return formats.detect_format(path)
    except formats.FormatError as e:
        raise InferError(str(e)) from None


def _match(path: str) -> List[str]:
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        raise InferError(f"{path}: is a directory; pass a file (or a quoted pattern such as '{path}/*.csv')")
    if any(c in path for c in "*?["):
        files = sorted(p for p in glob.glob(path) if os.path.isfile(p))
        if files:
            return files
        raise InferError(f"{path}: no file matches this pattern")
    raise InferError(f"{path}: no such file")


def read_profile(path: str, rows: int = DEFAULT_ROWS, fmt: Optional[str] = None) -> Profile:
    """Profile at most ``rows`` rows of ``path`` (a file, or a glob pattern read file after file)."""
    if rows < 1:
        raise InferError(f"--rows must be >= 1, got {rows}")
    files = _match(path)
    fmt = fmt or detect_format(files[0] if not any(c in path for c in "*?[") else path)
    if fmt not in formats.FORMATS:
        raise InferError(f"unknown format {fmt!r}; use one of {', '.join(formats.FORMATS)}")
    profile = Profile(path=path, format=fmt)
    reader = {"csv": _read_csv, "parquet": _read_parquet, "tfrecord": _read_tfrecord}[fmt]
    for f in files:
        if profile.rows >= rows:
            break
        profile.files.append(f)
        reader(f, profile, rows)
    if profile.rows == 0:
        raise InferError(f"{path}: no data rows to infer a spec from")
    return profile


# ------------------------------------------------------------------ CSV
def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_csv(path: str, profile: Profile, limit: int) -> None:
    """Physical lines (one row per line, as the pipeline reads them); malformed lines are counted, skipped."""
    with formats.open_maybe_gzip(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        first = text.readline()
        if first == "":
            return
        try:
            header = split_csv_line(first.rstrip("\r\n"))
        except csv.Error as e:
            raise InferError(f"{path}: the first line is not CSV: {e}") from None
        pending: List[List[str]] = []
        if header and all(h != "" and _looks_numeric(h) for h in header):
            pending.append(header)
            header = [f"column_{i + 1}" for i in range(len(header))]
            if not profile.headerless:
                profile.headerless = True
                profile.notes.append(f"{path}: the first line holds numbers, not column names: no header. The "
                                     f"draft names the columns column_1..column_{len(header)}; the pipeline reads "
                                     f"column names from the first line, so add a header line to the file and "
                                     f"use its names in the spec")
        elif profile.headerless:
            raise InferError(f"{path}: has a header, {profile.files[0]} has none; infer them separately")
        dupes = sorted({h for h in header if h and header.count(h) > 1})
        if dupes:
            raise InferError(f"{path}: the header names {', '.join(dupes)} more than once")
        known = list(profile.columns)
        if known and [h for h in header if h] != known:
            raise InferError(f"{path}: its header differs from {profile.files[0]}'s; infer them separately")
        unnamed = [i for i, h in enumerate(header) if h == ""]
        if unnamed and not known:
            profile.notes.append(f"{path}: header column(s) {', '.join(str(i + 1) for i in unnamed)} have no "
                                 f"name (an index column?); left out of the draft")
        named = [(i, profile.column(h)) for i, h in enumerate(header) if h != ""]

        def rows_of() -> Iterator[Tuple[Optional[List[str]], str]]:
            for fields in pending:
                yield fields, ""
            for line in text:
                line = line.rstrip("\r\n")
                if line == "":
                    continue
                try:
                    yield split_csv_line(line), line
                except csv.Error:
                    yield None, line

        for fields, line in rows_of():
            if profile.rows >= limit:
                break
            if fields is None or len(fields) != len(header):
                profile.malformed += 1
                if not profile.malformed_example:
                    profile.malformed_example = _short(line, 80)
                continue
            for i, stats in named:
                stats.observe_text(fields[i])
            profile.rows += 1


# ------------------------------------------------------------------ Parquet
def _read_parquet(path: str, profile: Profile, limit: int) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is in the runtime
        raise InferError("reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        known = list(profile.columns)
        if known and names != known:
            raise InferError(f"{path}: its columns differ from {profile.files[0]}'s; infer them separately")
        stats = [profile.column(n) for n in names]
        for batch in parquet.iter_batches(batch_size=min(limit, 8192)):
            take = min(batch.num_rows, limit - profile.rows)
            if take <= 0:
                break
            for s, column in zip(stats, batch.columns):
                for value in column.slice(0, take).to_pylist():
                    s.observe_value(value)
            profile.rows += take
    except InferError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... on a bad file
        raise InferError(f"{path}: not a readable Parquet file: {e}") from None


# ------------------------------------------------------------------ TFRecord
def iter_tfrecords(path: str) -> Iterator[bytes]:
    """Records of a TFRecord file (``features.formats.iter_tfrecords``); errors as :class:`InferError`."""
    try:
        yield from formats.iter_tfrecords(path)
    except formats.FormatError as e:
        raise InferError(str(e)) from None


def _read_tfrecord(path: str, profile: Profile, limit: int) -> None:
    from google.protobuf.message import DecodeError

    try:
        from tensorflow.core.example import example_pb2
    except ImportError:  # pragma: no cover - TensorFlow is in the runtime
        raise InferError("reading TFRecord needs TensorFlow (run inside the runtime: bin/msmt spec infer)") \
            from None
    try:
        for n, record in enumerate(iter_tfrecords(path)):
            if profile.rows >= limit:
                break
            example = example_pb2.Example()
            try:
                example.ParseFromString(record)
            except DecodeError:
                raise InferError(f"{path}: record {n + 1} is not a tf.Example") from None
            values: Dict[str, Any] = {}
            for name, feature in sorted(example.features.feature.items()):  # map order is arbitrary
                kind = feature.WhichOneof("kind")
                values[name] = list(getattr(feature, kind).value) if kind else None
                profile.column(name)
            for name, stats in profile.columns.items():
                stats.observe_value(values.get(name))
            profile.rows += 1
    except (OSError, EOFError) as e:
        raise InferError(f"{path}: cannot read: {e}") from None


# ---------------------------------------------------------------------------- guesses
@dataclasses.dataclass
class Guess:
    """The draft's decision for one column and the reason written beside it."""

    column: str
    kind: str                         # feature | label | task | ignore | request_id | timestamp | skip
    role: Optional[str] = None        # feature role, the label key, or the task's name
    entry: Dict[str, Any] = dataclasses.field(default_factory=dict)
    group: Optional[str] = None
    reason: str = ""
    todo: Optional[str] = None        # shown as "TODO check: ..." in the comment


@dataclasses.dataclass
class Draft:
    """A drafted spec: the YAML text, the dict it parses to, the guesses and what the user must check."""

    text: str
    spec: Dict[str, Any]
    guesses: Dict[str, Guess]
    profile: Profile
    layout: Optional[Layout]
    warnings: List[str]
    error: Optional[str] = None       # the SpecError of the draft when it does not load

    def guess(self, column: str) -> Guess:
        return self.guesses[column]


def _is_timestamp_name(name: str) -> bool:
    """A timestamp name (``TIMESTAMP_NAMES``, or ending in timestamp / ts), with or without a unit suffix
    (``time_ms``, ``ts_sec``; not ``play_time_ms``)."""
    toks = _tokens(name)
    if len(toks) > 1 and toks[-1] in TIME_UNITS:
        toks = toks[:-1]
    return "_".join(toks) in TIMESTAMP_NAMES or name.lower() in TIMESTAMP_NAMES or \
        (toks or [""])[-1] in ("timestamp", "ts")


def _tokens(name: str) -> List[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def _label_key(name: str) -> Optional[str]:
    toks = _tokens(name)
    for key, words in LABEL_WORDS:
        if any(t in words for t in toks) or name.lower() in words:
            return key
    return None


def _is_oracle(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(ORACLE_PREFIXES) or any(t in ("oracle", "debug") for t in _tokens(name))


def _is_id_name(name: str) -> bool:
    toks = _tokens(name)
    lower = name.lower()
    return bool(toks) and (toks[-1] in ("id", "ids", "uid", "iid") or
                           re.fullmatch(r"(user|item|ad|goods|product|shop|seller|brand|cate|category|query|"
                                        r"member|customer|sku|offer|creative|campaign)id", lower) is not None)


def _side(name: str) -> Optional[str]:
    toks = _tokens(name)
    if not toks:
        return None
    if toks[0] in USER_WORDS:
        return "user"
    if toks[0] in ITEM_WORDS:
        return "item"
    return None


def _nice_buckets(n: int) -> int:
    """``n`` rounded up to 1, 2 or 5 times a power of ten."""
    n = max(int(n), 1)
    power = 10 ** max(len(str(n)) - 1, 0)
    for m in (1, 2, 5, 10):
        if m * power >= n:
            return m * power
    return 10 * power  # pragma: no cover


def _feature_entry(name: str, role: str, dtype: str, **extra: Any) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"name": name, "role": role, "dtype": dtype}
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def _numeric_guess(stats: ColumnStats, rows: int, dtype: str, why: str, group: Optional[str]) -> Guess:
    skew = stats.skewness()
    if stats.minimum is not None and stats.minimum >= 0 and (stats.maximum or 0) >= 10 and skew >= 1.0:
        transform, how = "log1p_zscore", f"non-negative, long right tail (skewness {skew:.1f}) -> log1p_zscore"
    else:
        transform, how = "zscore", "zscore"
    reason = f"{why} -> numeric, {how}" + (", missing imputed with default 0.0" if stats.missing else "")
    return Guess(stats.name, "feature", "numeric", _feature_entry(stats.name, "numeric", dtype,
                                                                   transform=transform), group, reason)


def _categorical_guess(stats: ColumnStats, why: str, group: Optional[str], role: str = "categorical") -> Guess:
    extra: Dict[str, Any] = {}
    nd = stats.num_distinct
    if nd >= HASH_MIN_DISTINCT:
        buckets = _nice_buckets(2 * nd)
        extra = {"encoding": "hash", "hash_buckets": buckets}
        how = f"hash, {buckets} buckets (about 2x the distinct values seen; raise it for the full log)"
    else:
        how = "vocabulary"
    return Guess(stats.name, "feature", role, _feature_entry(stats.name, role, stats.dtype, **extra), group,
                 f"{why} -> {role}, {how}")


def _guess_column(stats: ColumnStats, rows: int, layout: Optional[Layout], taken: Dict[str, str]) -> Guess:
    """The guess for one column, in the order the module docstring lists. ``taken`` maps label keys,
    ``request_id`` and ``timestamp`` to the column that already holds them."""
    name = stats.name
    lower = name.lower()
    dtype = stats.dtype
    if _is_oracle(name):
        return Guess(name, "ignore", reason=f"name starts like an oracle / debug column ({name}) -> ignore, "
                                            f"never a feature")
    key = None if _is_id_name(name) else _label_key(name)
    label_note = ""
    if key and stats.lists == 0:
        if stats.is_binary:
            positives, known = stats.positives, stats.present
            rate = f"{_pct(positives, known)} positive"
            if key in taken:
                return Guess(name, "ignore", reason=f"0/1, {rate}, named like a {key} label but {taken[key]!r} is "
                                                    f"the {key} label -> ignore (as a feature it would leak the label)",
                             todo=f"pick the {key} label among {taken[key]} and {name}")
            taken[key] = name
            todo = None
            if positives == 0:
                todo = f"no positive {key} in the sample: check that this is the {key} label"
            elif positives == known:
                todo = f"every row is positive: check that this is the {key} label"
            elif stats.missing:
                todo = f"{_pct(stats.missing, rows)} empty: a row with an empty label is a bad row"
            floats = " (0.0 / 1.0 floats, read as integers)" if stats.floats else ""
            return Guess(name, "label", key, reason=f"{rate}{floats}, named like a {key} label -> label {key}",
                         todo=todo)
        label_note = f"named like a {key} label but not only 0/1, so not a label; "
    if key is None and not _is_id_name(name) and stats.lists == 0 and stats.is_binary and \
            any(t in TASK_WORDS for t in _tokens(name)):
        todo = None
        if stats.positives in (0, stats.present):
            todo = f"{'no' if stats.positives == 0 else 'every'} row is positive in the sample: check that this is " \
                   f"a label"
        return Guess(name, "task", reason=f"{_pct(stats.positives, stats.present)} positive, named like an "
                                          f"engagement label -> task", todo=todo)
    if lower in REQUEST_ID_NAMES and "request_id" not in taken:
        taken["request_id"] = name
        return Guess(name, "request_id", reason="named like a request id -> request_id (groups the impressions "
                                                "of one request; not a feature)")
    if _is_timestamp_name(name):
        if "timestamp" in taken:
            return Guess(name, "ignore", reason=f"another time column ({taken['timestamp']!r} is the timestamp) "
                                                f"-> ignore")
        taken["timestamp"] = name
        return Guess(name, "timestamp", reason="named like a timestamp -> timestamp (for time splits; not a "
                                               "feature)")
    if stats.present == 0:
        return Guess(name, "ignore", reason="always missing in the sample -> ignore")
    hint = layout.hint(name) if layout else None
    if hint:
        constant = " (constant in this sample)" if stats.num_distinct == 1 else ""
        why = label_note + hint.reason + constant
        hdtype = hint.dtype or (dtype if dtype in ("int64", "float32") or hint.role != "numeric" else "float32")
        if hint.role == "numeric":
            return _numeric_guess(stats, rows, hdtype, why, hint.group)
        if hint.role == "scenario":
            return Guess(name, "feature", "scenario", _feature_entry(name, "scenario", dtype), hint.group,
                         f"{why} -> scenario")
        g = _categorical_guess(stats, why, hint.group, hint.role)
        return g
    toks = _tokens(name)
    side = _side(name)
    if stats.lists:
        return Guess(name, "feature", "multivalent", _feature_entry(name, "multivalent", "string",
                                                                    separator="|"), side,
                     f"{label_note}several values per cell -> multivalent (the pipeline joins a list cell "
                     f"with the separator '|')")
    if any(t in SCENARIO_WORDS for t in toks) and dtype in ("string", "int64") and \
            stats.num_distinct <= SCENARIO_MAX_VALUES:
        return Guess(name, "feature", "scenario", _feature_entry(name, "scenario", dtype), "scenario",
                     f"{label_note}named like a scenario, {stats.num_distinct} value(s) -> scenario")
    if _is_id_name(name) and dtype in ("string", "int64"):
        if side and not stats.missing:
            g = _categorical_guess(stats, f"{label_note}name ends in id, {'a user' if side == 'user' else 'an item'}-side id", side, "id")
            return g
        why = (f"{label_note}name ends in id, but " +
               (f"{_pct(stats.missing, rows)} missing (an empty id cell is a bad row)" if stats.missing
                else "not a user or item id (an attribute)"))
        return _categorical_guess(stats, why, side)
    if stats.num_distinct == 1:
        return Guess(name, "ignore", reason=f"{label_note}one value in {rows} rows -> ignore (constant; move it to "
                                            f"features if it varies in the full log)")
    if dtype == "string":
        sep = stats.separator()
        if sep:
            ntok = len(stats.tokens.get(sep, ()))
            return Guess(name, "feature", "multivalent", _feature_entry(name, "multivalent", "string",
                                                                        separator=sep), side,
                         f"{label_note}{_pct(stats.separators[sep], stats.present)} of cells hold '{sep}' "
                         f"({ntok} distinct tokens) -> multivalent, separator '{sep}'")
        return _categorical_guess(stats, f"{label_note}strings", side)
    if dtype == "int64":
        if any(t in QUANTITY_WORDS for t in toks):
            return _numeric_guess(stats, rows, dtype, f"{label_note}integers named like a quantity", side)
        if any(t in CATEGORY_WORDS for t in toks):
            return _categorical_guess(stats, f"{label_note}integers named like a category", side)
        if stats.num_distinct <= CATEGORICAL_MAX_INT:
            return _categorical_guess(stats, f"{label_note}integers, at most {CATEGORICAL_MAX_INT} distinct", side)
        return _numeric_guess(stats, rows, dtype, f"{label_note}integers, many distinct values", side)
    return _numeric_guess(stats, rows, dtype, f"{label_note}floats", side)


def _scenario_candidate(guesses: Dict[str, Guess], profile: Profile) -> Optional[Guess]:
    """The categorical column with the fewest values (2..50), then the most even spread."""
    best, best_key = None, None
    for g in guesses.values():
        if g.kind != "feature" or g.role != "categorical":
            continue
        stats = profile.columns[g.column]
        nd = stats.num_distinct
        if not 2 <= nd <= SCENARIO_MAX_VALUES or stats.missing:
            continue
        total = sum(stats.distinct.values())
        entropy = -sum(c / total * math.log(c / total) for c in stats.distinct.values()) / math.log(nd)
        key = (nd, -entropy)
        if best_key is None or key < best_key:
            best, best_key = g, key
    return best


def _implies(profile: Profile, a: str, b: str) -> Optional[bool]:
    """Whether every row with ``a`` = 1 has ``b`` = 1 (None when ``a`` has no positive)."""
    sa, sb = profile.columns[a].binary, profile.columns[b].binary
    if sa is None or sb is None or 1 not in sa:
        return None
    return all(y == 1 for x, y in zip(sa, sb) if x == 1)


def _task_name(column: str, taken: List[str]) -> str:
    """A task name from a label column: its name's tokens without a leading ``is`` (``is_like`` -> ``like``)."""
    tokens = _tokens(column)
    if len(tokens) > 1 and tokens[0] == "is":
        tokens = tokens[1:]
    name = "_".join(tokens) or "task"
    name = name if name[0].isalpha() else "task_" + name
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    return unique


def _declare_tasks(profile: Profile, guesses: Dict[str, Guess], click: Optional[str]) -> None:
    """Turn every label and task guess into a declared task (in column order), ``after`` the click task where
    every positive of the sample has a click."""
    names: List[str] = []
    click_task = None
    for g in guesses.values():
        if g.kind not in ("label", "task"):
            continue
        g.kind, g.role = "task", _task_name(g.column, names)
        names.append(g.role)
        g.entry = {"name": g.role, "label": g.column}
        if g.column == click:
            click_task = g.role
        g.reason = g.reason.rsplit(" -> ", 1)[0] + f" -> task {g.role}"  # the facts stay, the verdict changes
    if click_task is None:
        return
    for g in guesses.values():
        if g.kind == "task" and g.column != click:
            implied = _implies(profile, g.column, click)
            if implied is True:
                g.entry["after"] = click_task
                g.reason += f", after {click_task}: every positive has a click in the sample"
            elif implied is False:
                g.reason += f"; some positives have no click, so not after {click_task}"


def guess_columns(profile: Profile) -> Tuple[Dict[str, Guess], Optional[Layout], List[str]]:
    """One :class:`Guess` per column, the known layout (if any) and the warnings (what the user must check)."""
    names = set(profile.columns)
    layout = next((lay for lay in KNOWN_LAYOUTS if set(lay.required) <= names), None)
    taken: Dict[str, str] = {}
    guesses = {name: _guess_column(stats, profile.rows, layout, taken) for name, stats in profile.columns.items()}
    warnings: List[str] = list(profile.notes)

    # Labels of a headerless file: the first two 0/1 integer columns.
    if profile.headerless and not any(g.kind == "label" for g in guesses.values()):
        binaries = [n for n, s in profile.columns.items() if s.is_binary and guesses[n].kind == "feature"]
        for key, col in zip(("click", "conversion"), binaries):
            s = profile.columns[col]
            guesses[col] = Guess(col, "label", key, reason=f"{_pct(s.positives, s.present)} positive; no header, "
                                                            f"the {'first' if key == 'click' else 'second'} 0/1 column "
                                                            f"-> label {key}",
                                 todo=f"no header: check that {col} is the {key} label")
    # Scenario: the first named candidate with 2+ values, else any named one, else the best categorical.
    scen = [g for g in guesses.values() if g.kind == "feature" and g.role == "scenario"]
    if len(scen) > 1:
        keep = next((g for g in scen if profile.columns[g.column].num_distinct >= 2), scen[0])
        for g in scen:
            if g is not keep:
                stats = profile.columns[g.column]
                guesses[g.column] = _categorical_guess(stats, f"also named like a scenario, {keep.column!r} is the "
                                                              f"scenario", _side(g.column))
        scen = [keep]
    if not scen:
        cand = _scenario_candidate(guesses, profile)
        if cand is not None:
            stats = profile.columns[cand.column]
            guesses[cand.column] = Guess(cand.column, "feature", "scenario",
                                         _feature_entry(cand.column, "scenario", stats.dtype), "scenario",
                                         f"no column is named like a scenario ({'/'.join(SCENARIO_WORDS[:1] + SCENARIO_WORDS[2:])}); "
                                         f"the categorical column with the fewest values -> scenario",
                                         todo=f"no column is named like a scenario; is this ({stats.num_distinct} "
                                              f"values) the scenario column? if not, give the real one role "
                                              f"scenario and this one role categorical")
        else:
            guesses["TODO_scenario_column"] = Guess(
                "TODO_scenario_column", "feature", "scenario",
                {"name": "TODO_scenario_column", "role": "scenario", "dtype": "string", "values": ["TODO"]},
                "scenario", "no column looks like a scenario",
                todo="no column looks like a scenario: write the scenario column's name and list its values")
    scenario = next(g for g in guesses.values() if g.kind == "feature" and g.role == "scenario")
    if scenario.column in profile.columns:
        stats = profile.columns[scenario.column]
        values = stats.values_sorted()
        extra = ""
        if layout and layout.scenario_values and layout.hint(scenario.column) and \
                layout.hint(scenario.column).role == "scenario":
            documented = [v for v in layout.scenario_values if v not in stats.distinct]
            if documented:
                values = sorted(set(values) | set(layout.scenario_values), key=_natural_key)
                extra = f"; {', '.join(documented)} added from the dataset documentation"
        scenario.entry["values"] = values
        counts = ", ".join(f"{v} {_pct(stats.distinct.get(v, 0), profile.rows)}" for v in stats.values_sorted())
        scenario.reason += f" (values in the sample: {counts}{extra}; other values map to the unknown slot)"
        if len(values) == 1 and not scenario.todo:
            scenario.todo = "one scenario value in the sample: list every scenario value of the full log"
        if stats.missing:
            scenario.todo = f"{_pct(stats.missing, profile.rows)} missing scenario (unknown slot): check"
    labels = {g.role: g.column for g in guesses.values() if g.kind == "label"}
    # Another engagement label, or a click label without a conversion: declared tasks, not the funnel.
    declares_tasks = any(g.kind == "task" for g in guesses.values()) or ("click" in labels and
                                                                       "conversion" not in labels)
    if declares_tasks:
        _declare_tasks(profile, guesses, labels.get("click"))
        labels = {}
    # Required labels of the funnel.
    for key in ("click", "conversion") if not declares_tasks else ():
        if key not in labels:
            near = [n for n in profile.columns if _label_key(n) == key and not _is_oracle(n)]
            hint = f" ({', '.join(near)} named so, but not 0/1)" if near else ""
            warnings.append(f"no {key} label found{hint}: fill in labels.{key} (TODO_{key}_column)")
    # Conversion without a click: a hint on requires_click.
    if "click" in labels and "conversion" in labels:
        implied = _implies(profile, labels["conversion"], labels["click"])
        g = guesses[labels["conversion"]]
        if implied is True:
            g.reason += "; every positive has a click in the sample (add conversion to labels.requires_click if " \
                        "the log never has unclicked conversions)"
        elif implied is False:
            g.reason += "; some positives have no click (view-through conversions)"
    for g in guesses.values():
        if g.todo:
            where = {"label": f"labels.{g.role} ({g.column})", "task": f"tasks ({g.column})"}.get(g.kind, g.column)
            warnings.append(f"{where}: {g.todo}")
    if profile.malformed:
        warnings.append(f"{profile.malformed} malformed line(s) skipped (wrong field count or bad quoting), e.g. "
                        f"{profile.malformed_example!r}")
    return guesses, layout, warnings


# ---------------------------------------------------------------------------- YAML
def _q(value: Any) -> str:
    """``value`` as a YAML flow scalar that loads back as itself."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    s = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", s) and s.lower() not in _YAML_RESERVED and \
            yaml.safe_load(s) == s:
        return s
    return json.dumps(s, ensure_ascii=False)


def _flow(entry: Dict[str, Any]) -> str:
    parts = []
    for k, v in entry.items():
        if isinstance(v, list):
            parts.append(f"{k}: [{', '.join(_q(x) for x in v)}]")
        else:
            parts.append(f"{k}: {_q(v)}")
    return "{" + ", ".join(parts) + "}"


def _comment(text: str) -> str:
    return text.replace("\n", " ")


def _aligned(lines: List[Tuple[str, str]], indent: str = "") -> List[str]:
    """``indent + code  # comment`` with the comments of a block aligned (up to a width)."""
    width = min(max((len(code) for code, _ in lines), default=0), 72)
    out = []
    for code, comment in lines:
        if comment:
            out.append(f"{indent}{code.ljust(width)}  # {_comment(comment)}")
        else:
            out.append(f"{indent}{code}")
    return out


ROLE_ORDER = ("id", "scenario", "categorical", "numeric", "multivalent", "prior")


def _spec_name(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    for ext in sorted(formats.EXTENSIONS, key=len, reverse=True):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    name = re.sub(r"[^A-Za-z0-9_\-]+", "_", base).strip("_-")
    return name or "draft"


def render(profile: Profile, guesses: Dict[str, Guess], layout: Optional[Layout], name: str
           ) -> Tuple[str, Dict[str, Any]]:
    """The YAML text of the draft and the dict it loads as."""
    rows = profile.rows

    def note(g: Guess) -> str:
        stats = profile.columns.get(g.column)
        facts = stats.describe(rows) if stats else ""
        text = f"{facts} -> {g.reason}" if facts else g.reason
        return f"TODO check: {g.todo}. {text}" if g.todo else text

    spec: Dict[str, Any] = {"name": name}
    files = profile.files if len(profile.files) <= 3 else profile.files[:3] + ["..."]
    head = [
        f"# Draft feature spec written by `msmt spec infer` from {profile.path}",
        f"# ({profile.format}, {rows} rows read from {', '.join(files)}).",
        "# Each comment gives what the sample showed, then the guess and why. Check every line marked TODO,",
        "# edit roles, encodings and transforms as needed, then: msmt run --spec THIS_FILE --data ...",
        "# Distinct counts are those of the sample (the full log has more); Transform computes vocabularies",
        "# and z-score statistics on the full log.",
    ]
    if layout:
        head.append(f"# The columns match the {layout.title} layout: roles follow the dataset documentation, and")
        head.append(f"# the shipped spec features/specs/{layout.name}.yaml describes it (msmt run --spec {layout.name}).")
    lines = list(head)
    lines.append(f"name: {_q(name)}")
    description = f"Draft inferred by msmt spec infer from {os.path.basename(profile.path)} ({rows} rows)"
    spec["description"] = description
    lines.append(f"description: {_q(description)}")

    feats = [g for g in guesses.values() if g.kind == "feature"]
    feats.sort(key=lambda g: ROLE_ORDER.index(g.role))
    spec["features"] = [dict(g.entry) for g in feats]
    lines.append("features:")
    lines += _aligned([(f"- {_flow(g.entry)}", note(g)) for g in feats], "  ")

    groups: Dict[str, List[str]] = {}
    for g in feats:
        if g.group:
            groups.setdefault(g.group, []).append(g.column)
    if groups:
        spec["priors"] = {}
        why = {"user": "user-side fields of the dataset documentation" if layout else
                       "user_ / u_ name prefixes and user ids",
               "item": "item-side fields of the dataset documentation" if layout else
                       "item_ / i_ / ad_ name prefixes and item ids",
               "scenario": "the scenario feature"}
        lines.append("priors:                # features fed to the personalised gates, per group")
        block = []
        for group in ("user", "item", "scenario"):
            if group in groups:
                spec["priors"][group] = groups[group]
                block.append((f"{group}: [{', '.join(_q(c) for c in groups[group])}]", why[group]))
        lines += _aligned(block, "  ")

    tasks = [g for g in guesses.values() if g.kind == "task"]
    labels = {g.role: g for g in guesses.values() if g.kind == "label"}
    if tasks:
        spec["tasks"] = [g.entry for g in tasks]
        lines.append("tasks:                 # one binary task per label column (docs/spec.md#tasks)")
        lines += _aligned([(f"- {_flow(g.entry)}", note(g)) for g in tasks], "  ")
    else:
        spec["labels"] = {}
        lines.append("labels:")
    block = []
    for key in ("click", "raction", "conversion") if not tasks else ():
        g = labels.get(key)
        if g:
            spec["labels"][key] = g.column
            block.append((f"{key}: {_q(g.column)}", note(g)))
        elif key != "raction":
            placeholder = f"TODO_{key}_column"
            spec["labels"][key] = placeholder
            block.append((f"{key}: {placeholder}", f"TODO: no 0/1 integer column is named like a {key} label; "
                                                   f"write the {key} column here"))
    lines += _aligned(block, "  ")

    ignored = [g for g in guesses.values() if g.kind == "ignore"]
    if ignored:
        spec["ignore"] = [g.column for g in ignored]
        lines.append("ignore:                # columns that are never features")
        lines += _aligned([(f"- {_q(g.column)}", note(g)) for g in ignored], "  ")
    for kind in ("request_id", "timestamp"):
        g = next((g for g in guesses.values() if g.kind == kind), None)
        if g:
            spec[kind] = g.column
            lines += _aligned([(f"{kind}: {_q(g.column)}", note(g))])
    return "\n".join(lines) + "\n", spec


def infer_spec(path: str, rows: int = DEFAULT_ROWS, fmt: Optional[str] = None, name: Optional[str] = None,
               source: Optional[str] = None) -> Draft:
    """Draft a spec from at most ``rows`` rows of ``path``; the draft is validated with the spec loader.

    Raises:
      InferError: the file cannot be read as ``fmt`` (or the format guessed from its name).
    """
    profile = read_profile(path, rows, fmt)
    guesses, layout, warnings = guess_columns(profile)
    text, spec = render(profile, guesses, layout, name or _spec_name(path if len(profile.files) == 1 or
                                                                      not profile.files else profile.files[0]))
    error = None
    try:
        loaded = yaml.safe_load(text)
        if loaded != spec:  # pragma: no cover - a rendering bug
            raise SpecError(f"the YAML text does not parse back to the drafted spec: {loaded!r}")
        spec_from_dict(loaded, source=source or "<draft>")
    except (SpecError, yaml.YAMLError) as e:
        error = str(e)
        text = f"# TODO: this draft does not load yet: {_comment(error)}\n" + text
        warnings.append(f"the draft does not load yet: {error}")
    return Draft(text=text, spec=spec, guesses=guesses, profile=profile, layout=layout, warnings=warnings,
                 error=error)


def summary(draft: Draft) -> str:
    """One line: how many features per role, the scenario, the labels."""
    roles: Dict[str, int] = {}
    for f in draft.spec["features"]:
        roles[f["role"]] = roles.get(f["role"], 0) + 1
    scen = next(f for f in draft.spec["features"] if f["role"] == "scenario")
    if "tasks" in draft.spec:
        labels = "tasks " + describe_tasks((t["name"], t.get("after")) for t in draft.spec["tasks"])
    else:
        labels = "labels " + ", ".join(f"{k}={v}" for k, v in draft.spec["labels"].items())
    return (f"{len(draft.spec['features'])} features ({', '.join(f'{n} {r}' for r, n in roles.items())}), "
            f"scenario {scen['name']} {scen['values']}, {labels}, "
            f"{len(draft.spec.get('ignore', []))} ignored, from {draft.profile.rows} rows")


__all__ = ["DEFAULT_ROWS", "Draft", "Guess", "InferError", "KNOWN_LAYOUTS", "Profile", "detect_format",
           "guess_columns", "infer_spec", "iter_tfrecords", "read_profile", "render", "summary"]
