"""Shared machinery of the dataset adapters (``msmt data prepare NAME --input DIR --output DIR``).

An adapter reads a public download in its own raw format and writes this project's impression log: one CSV row
per impression, the columns of a feature spec (features, scenario, labels). Everything two adapters share is
here; an adapter only knows its raw format.

Output layout (the same for every adapter)::

    OUTPUT/train/impressions.csv    header row first, then one row per impression
    OUTPUT/test/impressions.csv
    OUTPUT/spec.yaml                a feature spec (``features.spec.load_spec``) of exactly these columns, with a
                                    header comment on the source and the choices; the scenario ``values`` are
                                    the scenario values seen while streaming
    OUTPUT/prepare_summary.json     rows read per input file, rows written per split, rows skipped by reason,
                                    per-scenario and label counts, bad-line examples, seconds

Streaming and memory: input files are read line by line and every output row is written as soon as it is made;
lookup tables that can be large (the Ali-CCP common features, the Ali-mama behaviour events) live in an
on-disk SQLite scratch database (:func:`open_scratch_db`) under the staging directory, with a bounded page cache.

Atomic output (:class:`StagedOutput`): everything is written to a hidden sibling ``.NAME.partial-XXXX`` of
OUTPUT and renamed to OUTPUT only after the spec and the summary are written, so an interrupted run never leaves
a valid-looking half output (at most a hidden ``.partial`` directory, removed on any error the process sees).
A non-empty OUTPUT is refused without ``--overwrite``; with it, only a previous prepare output (it holds
``prepare_summary.json``) is replaced.

Bad lines (:class:`BadLine`): an input line that cannot be converted is counted by reason and skipped; the
first ones are printed with the file, the line number and the column. Every output row also passes the
pipeline's own row checker (:class:`features.row_check.RowChecker`) for the spec that is written, so the
checked ExampleGen finds 0 bad rows in a prepared log; a row it rejects is a bad line of the input with the
checker's kind as the reason (``wrong_type``, ``non_finite``, ``empty_id``, ``label_out_of_range``, ...).
Like the ExampleGen's ``--max-bad-fraction``, the run fails when the bad lines of an input file are more than
that share of its lines (per file, so that a huge side file such as the Ali-mama behaviour log cannot dilute the
bad lines of the impressions); a run whose lines are mostly bad stops early (:data:`EARLY_ABORT_ROWS`).
Policy skips (a row the adapter drops on purpose, e.g. Ali-CCP purchases without a click) are counted by reason
too, but are not bad lines.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import gzip
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, TextIO, Tuple

import yaml

from features.row_check import DEFAULT_MAX_BAD_FRACTION, RowChecker
from features.spec import FeatureSpec, load_spec, spec_from_dict

SPLITS = ("train", "test")
IMPRESSIONS_FILE = "impressions.csv"
SPEC_FILE = "spec.yaml"
SUMMARY_FILE = "prepare_summary.json"
WORK_DIR = "_work"                 # scratch files (SQLite) inside the staging directory, removed before the rename
DEFAULT_PROGRESS_EVERY = 1_000_000
EXAMPLES_PER_REASON = 5            # bad-line examples kept per reason in the summary
PRINTED_BAD_LINES = 10             # bad lines printed to stderr as they are met
EARLY_ABORT_ROWS = 10_000          # after this many lines, stop if more than half of them were bad
SCRATCH_CACHE_MB = 64              # SQLite page cache of a scratch database
INSERT_BATCH = 1_000               # rows per executemany() into a scratch table

Echo = Callable[[str], None]


class PrepareError(ValueError):
    """The input cannot be converted (missing file, unknown header, too many bad lines, OUTPUT not empty).

    The message names the file (and the line and column when there is one) and says what to do.
    """


class BadLine(Exception):
    """One input line that cannot be converted. Raised by an adapter's line parser; the driver adds the place.

    Attributes:
      reason: the key it is counted under (``malformed_line``, ``wrong_type``, or an adapter's own reason).
      message: what is wrong, without the place.
      column: the input column (or field) at fault, None for the whole line.
      value: the offending text (clipped when printed).
    """

    def __init__(self, reason: str, message: str, column: Optional[str] = None, value: str = ""):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.column = column
        self.value = value


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """Options every adapter takes (``msmt data prepare NAME ...``).

    Attributes:
      input: the directory of the download (each adapter says which files it expects).
      output: the directory to write (see the module docstring); must be absent or empty unless ``overwrite``.
      overwrite: replace an existing OUTPUT that holds a previous prepare output.
      max_bad_fraction: the run fails when more than this share of the lines of an input file are bad (0 = any
        bad line fails it); the meaning of the pipeline's ``--max-bad-fraction``.
      progress_every: print a progress line every this many lines of a large input file.
    """

    input: str
    output: str
    overwrite: bool = False
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    progress_every: int = DEFAULT_PROGRESS_EVERY

    def __post_init__(self):
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise PrepareError(f"--max-bad-fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.progress_every < 1:
            raise PrepareError(f"--progress-every must be >= 1, got {self.progress_every}")
        out, inp = os.path.abspath(self.output), os.path.abspath(self.input)
        if out == inp or inp.startswith(out + os.sep) or out.startswith(inp + os.sep):
            raise PrepareError(f"--output {self.output} and --input {self.input} must not contain one another")


def stderr_echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ input files
def open_text(path: str) -> TextIO:
    """A text file for reading, gunzipped when the name ends with ``.gz``; a UTF-8 byte-order mark is dropped.
    Lines end at ``\n`` only (a stray ``\r`` inside a line does not split it; ``\r\n`` is stripped by the
    readers). Bytes that are not UTF-8 become U+FFFD, so such a line fails its checks as a bad line instead of
    stopping the run."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="\n")
    return open(path, "r", encoding="utf-8-sig", errors="replace", newline="\n")


def find_input_file(input_dir: str, name: str, required: bool = True) -> Optional[str]:
    """``name`` (or ``name.gz``) in ``input_dir`` or one of its direct sub-directories (the downloads unpack into
    a folder of their own); None when absent and not ``required``. Two matches are an error (ambiguous)."""
    if not os.path.isdir(input_dir):
        raise PrepareError(f"--input {input_dir}: no such directory")
    found = []
    dirs = [input_dir] + sorted(os.path.join(input_dir, d) for d in os.listdir(input_dir)
                                if not d.startswith(".") and os.path.isdir(os.path.join(input_dir, d)))
    for d in dirs:
        for candidate in (name, name + ".gz"):
            path = os.path.join(d, candidate)
            if os.path.isfile(path):
                found.append(path)
    if len(found) > 1:
        raise PrepareError(f"--input {input_dir}: {name} is there more than once ({', '.join(found)}); keep one")
    if not found and required:
        raise PrepareError(f"--input {input_dir}: no {name} (or {name}.gz) in it or in a direct sub-directory")
    return found[0] if found else None


def read_header(path: str, display: str) -> List[str]:
    """The column names of the first line of a CSV file, stripped of surrounding blanks (the Ali-mama user
    profile header has a trailing space)."""
    with open_text(path) as fh:
        first = fh.readline().rstrip("\r\n")
    if not first.strip():
        raise PrepareError(f"{display}:1: the file is empty or has no header line")
    return [c.strip() for c in first.split(",")]


def column_index(header: Sequence[str], required: Sequence[str], display: str,
                 optional: Sequence[str] = ()) -> Dict[str, int]:
    """Position of every ``required`` (and present ``optional``) column in ``header``; a missing required
    column is an error naming the file, the column and the header."""
    missing = [c for c in required if c not in header]
    if missing:
        raise PrepareError(f"{display}:1: the header has no column {', '.join(repr(c) for c in missing)} "
                           f"(header: {','.join(header)}; expected: {','.join(required)})")
    return {c: header.index(c) for c in list(required) + [c for c in optional if c in header]}


def parse_int_cell(text: str, column: str) -> int:
    """``text`` as a plain integer (no float spelling: raw ids are integers); BadLine ``wrong_type`` otherwise."""
    try:
        return int(text)
    except ValueError:
        raise BadLine("wrong_type", f"{text!r} is not an integer", column, text) from None


def check_finite_number(text: str, column: str) -> float:
    """``text`` as a finite number; BadLine ``wrong_type`` (not a number) or ``non_finite`` (NaN, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise BadLine("wrong_type", f"{text!r} is not a number", column, text) from None
    if not math.isfinite(value):
        raise BadLine("non_finite", f"{text!r} is not a finite number", column, text)
    return value


def format_count(n: int) -> str:
    return f"{n:,}"


def format_rate(n: int, seconds: float) -> str:
    rate = n / seconds if seconds > 0 else 0.0
    if rate >= 1e6:
        return f"{rate / 1e6:.1f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------------------------ scratch SQLite
def open_scratch_db(path: str, cache_mb: int = SCRATCH_CACHE_MB) -> sqlite3.Connection:
    """An on-disk SQLite database for lookup tables too large for memory (stdlib, no server).

    Scratch settings: no journal and no fsync (the file is thrown away if the run stops), a page cache of at
    most ``cache_mb`` MB (SQLite's memory stays bounded whatever the table size), temporary B-trees on disk.
    Transactions are explicit (:class:`BatchInserter`).
    """
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", "locking_mode=EXCLUSIVE",
                   f"cache_size=-{int(cache_mb) * 1024}"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


class BatchInserter:
    """Inserts rows into a scratch table ``INSERT_BATCH`` at a time, in one transaction per batch.

    ``inserted`` counts rows actually stored: with ``INSERT OR IGNORE`` a duplicate key is not, and
    :meth:`add` returns the number of rows ignored by the flush it triggered (0 when none ran).
    """

    def __init__(self, conn: sqlite3.Connection, sql: str, batch: int = INSERT_BATCH):
        self.conn, self.sql, self.batch = conn, sql, batch
        self.pending: List[tuple] = []
        self.inserted = 0
        self.ignored = 0

    def add(self, row: tuple) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.conn.execute("BEGIN")
        cur = self.conn.executemany(self.sql, self.pending)
        self.conn.execute("COMMIT")
        stored = cur.rowcount if cur.rowcount >= 0 else len(self.pending)
        self.inserted += stored
        self.ignored += len(self.pending) - stored
        self.pending = []


class LookupTable:
    """Key -> a row of ``width`` text cells, in an on-disk table of the scratch database, behind an LRU cache of
    ``cache_size`` rows (consecutive lines of one user or video hit it). A side table (Ali-CCP's common features,
    KuaiRand's users and videos) is streamed in with :meth:`add` (a duplicate key keeps its first row, counted
    in ``inserter.ignored``), then read with :meth:`get` (None for a key it does not hold); ``hits`` and
    ``misses`` count the cache's work for the summary."""

    def __init__(self, conn: sqlite3.Connection, table: str, width: int, cache_size: int,
                 key_type: str = "INTEGER"):
        self.conn, self.table, self.cache_size = conn, table, cache_size
        cols = [f"c{i}" for i in range(width)]
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (k {key_type} PRIMARY KEY, {', '.join(c + ' TEXT' for c in cols)}) "
                     f"WITHOUT ROWID")
        marks = ", ".join("?" * (width + 1))
        self.inserter = BatchInserter(conn, f"INSERT OR IGNORE INTO {table} VALUES ({marks})")
        self.select = f"SELECT {', '.join(cols)} FROM {table} WHERE k = ?"
        self.cache: "collections.OrderedDict[Any, Optional[Tuple[str, ...]]]" = collections.OrderedDict()
        self.hits = self.misses = 0

    def add(self, key, cells: Tuple[str, ...]) -> None:
        self.inserter.add((key,) + tuple(cells))

    def close_inserts(self) -> None:
        self.inserter.flush()

    def get(self, key) -> Optional[Tuple[str, ...]]:
        cache = self.cache
        if key in cache:
            self.hits += 1
            cache.move_to_end(key)
            return cache[key]
        self.misses += 1
        row = self.conn.execute(self.select, (key,)).fetchone()
        value = tuple(row) if row else None
        cache[key] = value
        if len(cache) > self.cache_size:
            cache.popitem(last=False)
        return value

    def drop(self) -> None:
        self.cache.clear()
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")


def peak_rss_mb() -> Optional[float]:
    """Peak resident memory of this process in MB (Linux ``ru_maxrss``), None where unavailable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


# ------------------------------------------------------------------------------------------------ staged output
class StagedOutput:
    """The output directory, written under a hidden temporary name and renamed into place by :meth:`commit`.

    The staging directory is a sibling of OUTPUT (same file system, so the rename is atomic): ``.NAME.partial-*``.
    """

    def __init__(self, output: str, overwrite: bool):
        self.output = os.path.abspath(output)
        if os.path.exists(self.output):
            if not os.path.isdir(self.output):
                raise PrepareError(f"--output {output} exists and is not a directory")
            if os.listdir(self.output):
                if not overwrite:
                    raise PrepareError(f"--output {output} is not empty; pass --overwrite to replace a previous "
                                       f"prepare output, or choose another directory")
                if not os.path.exists(os.path.join(self.output, SUMMARY_FILE)):
                    raise PrepareError(f"--output {output} is not empty and holds no {SUMMARY_FILE}: it does not "
                                       f"look like a previous 'msmt data prepare' output, so --overwrite does not "
                                       f"delete it; choose another directory")
        parent = os.path.dirname(self.output)
        os.makedirs(parent, exist_ok=True)
        self.staging = tempfile.mkdtemp(prefix=f".{os.path.basename(self.output)}.partial-", dir=parent)
        os.chmod(self.staging, 0o755)
        self.work = os.path.join(self.staging, WORK_DIR)
        os.makedirs(self.work)
        self.committed = False

    def path(self, *parts: str) -> str:
        return os.path.join(self.staging, *parts)

    def commit(self) -> None:
        """Remove the scratch files and move the staging directory to OUTPUT (replacing an old one)."""
        shutil.rmtree(self.work, ignore_errors=True)
        old = None
        if os.path.exists(self.output):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.output)}.old-", dir=os.path.dirname(self.output))
            os.rmdir(old)
            os.rename(self.output, old)
        os.rename(self.staging, self.output)
        self.committed = True
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if not self.committed:
            shutil.rmtree(self.staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the run
@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """What an adapter writes: its columns and the feature spec of them.

    Attributes:
      dataset: adapter name (progress lines, summary).
      columns: output header, in order.
      spec_dict: builds the spec's dict (``features.spec.spec_from_dict`` layout) from the scenario values.
      spec_comment: the header comment of ``spec.yaml``: the source and the choices made.
      extra_types: dtypes of columns that are not features or labels (request id, timestamp).
    """

    dataset: str
    columns: Tuple[str, ...]
    spec_dict: Callable[[Sequence[str]], Dict[str, Any]]
    spec_comment: str
    extra_types: Mapping[str, str] = dataclasses.field(default_factory=dict)


class PrepareRun:
    """One ``prepare`` run: staged output, the two split writers, progress, counts and the summary.

    Use as a context manager; on any exception the staging directory is removed and OUTPUT is untouched::

        with PrepareRun(layout, options) as run:
            for lineno, line in run.lines(path, display, noun="samples"):
                try:
                    cells = parse(line)
                except BadLine as e:
                    run.bad(display, lineno, e)
                    continue
                run.write("train", cells, display, lineno)
            summary = run.finish(extra={...})
    """

    def __init__(self, layout: OutputLayout, options: PrepareOptions, echo: Optional[Echo] = None):
        self.layout = layout
        self.options = options
        self.echo = echo or stderr_echo
        self.t0 = time.time()
        self.columns = list(layout.columns)
        check_spec = spec_from_dict(layout.spec_dict(["?"]), source=f"<{layout.dataset} spec>")
        _check_spec_columns(check_spec, self.columns, f"<{layout.dataset} spec>")
        types = {f.name: f.dtype for f in check_spec.features}
        types.update({c: "int64" for c in check_spec.label_columns.values()})
        types.update(layout.extra_types)
        self.checker = RowChecker(check_spec, self.columns, types, path=f"<{layout.dataset} output>")
        self.scenario_col = check_spec.scenario.name
        self.scenario_idx = self.columns.index(self.scenario_col)
        self.labels = dict(check_spec.label_columns)
        # the funnel's (conversion, click) columns, to count view-through conversions; None for other tasks
        self.view_through_columns = ((self.labels["conversion"], self.labels["click"])
                                     if {"click", "conversion"} <= set(self.labels) else None)
        self.rows_read: Dict[str, int] = {}
        self.read_total = 0
        self.written = {s: 0 for s in SPLITS}
        self.skipped: Dict[str, int] = collections.Counter()
        self.bad_reasons: Set[str] = set()
        self.bad_total = 0
        self.bad_by_file: Dict[str, int] = collections.Counter()
        self.bad_examples: Dict[str, List[str]] = {}
        self.scenarios: Dict[str, Dict[str, int]] = {s: collections.Counter() for s in SPLITS}
        self.label_counts: Dict[str, Dict[str, int]] = {s: collections.Counter() for s in SPLITS}
        self.stage: Optional[StagedOutput] = None
        self._files: Dict[str, TextIO] = {}
        self._writers: Dict[str, Any] = {}

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "PrepareRun":
        self.stage = StagedOutput(self.options.output, self.options.overwrite)
        for split in SPLITS:
            os.makedirs(self.stage.path(split))
            fh = open(self.stage.path(split, IMPRESSIONS_FILE), "w", encoding="utf-8", newline="")
            self._files[split] = fh
            self._writers[split] = csv.writer(fh, lineterminator="\n")
            self._writers[split].writerow(self.columns)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for fh in self._files.values():
            with contextlib.suppress(Exception):
                fh.close()
        if self.stage:
            self.stage.abort()

    @property
    def work_dir(self) -> str:
        """Scratch directory inside the staging directory (removed before the rename)."""
        return self.stage.work

    # ------------------------------------------------------------------ reading
    def lines(self, path: str, display: str, noun: str, skip_header: bool = True,
              count: bool = True) -> Iterator[Tuple[int, str]]:
        """``(line number, line without its end-of-line)`` of every non-blank line of ``path`` (1-based numbers
        as an editor shows them; the header is line 1). Counts the lines read under ``display`` and prints a
        progress line every ``progress_every`` lines. ``count=False`` for a look-ahead pass (not counted)."""
        every = self.options.progress_every
        n = 0
        t0 = time.time()
        written0 = sum(self.written.values())
        with open_text(path) as fh:
            if skip_header:
                fh.readline()
            start = 2 if skip_header else 1
            for lineno, line in enumerate(fh, start):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                if n and n % every == 0:    # n lines read and handled by the caller
                    self._progress(noun, n, t0, count, written0)
                n += 1
                if count:
                    self.read_total += 1
                yield lineno, line
        if count:
            self.rows_read[display] = self.rows_read.get(display, 0) + n
        if n >= every:
            self._progress(noun, n, t0, count, written0, done=True)

    def _progress(self, noun: str, n: int, t0: float, count: bool, written0: int, done: bool = False) -> None:
        """``aliccp: 1,000,000 samples read, 998,700 written (12.3k rows/s)`` (counts of the current file)."""
        written = sum(self.written.values()) - written0
        tail = f", {format_count(written)} written" if count else ""
        self.echo(f"{self.layout.dataset}: {format_count(n)} {noun} read{tail} "
                  f"({format_rate(n, time.time() - t0)} rows/s){' - done' if done else ''}")

    def say(self, msg: str) -> None:
        self.echo(f"{self.layout.dataset}: {msg}")

    # ------------------------------------------------------------------ counting
    def skip(self, reason: str) -> None:
        """A row dropped on purpose (policy, not a bad line)."""
        self.skipped[reason] += 1

    def bad(self, display: str, lineno: int, err: BadLine) -> None:
        """Count a bad input line under its reason; print the first ones; stop early when most lines are bad."""
        self.skipped[err.reason] += 1
        self.bad_reasons.add(err.reason)
        self.bad_total += 1
        self.bad_by_file[display] += 1
        col = f" column {err.column!r}:" if err.column else ""
        text = f"{display}:{lineno}:{col} {err.message} ({err.reason})"
        examples = self.bad_examples.setdefault(err.reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(text)
        if self.bad_total <= PRINTED_BAD_LINES:
            self.echo(f"{self.layout.dataset}: bad line skipped: {text}")
        elif self.bad_total == PRINTED_BAD_LINES + 1:
            self.echo(f"{self.layout.dataset}: more bad lines; all are counted in {SUMMARY_FILE}")
        if (self.read_total >= EARLY_ABORT_ROWS and self.bad_total * 2 > self.read_total
                and self.bad_total > self.options.max_bad_fraction * self.read_total):
            raise PrepareError(f"{self.layout.dataset}: stopped early: {self._bad_text()} - is this the right "
                               f"input format? (see 'msmt data prepare --help')")

    # ------------------------------------------------------------------ writing
    def write(self, split: str, cells: Sequence[str], display: str, lineno: int) -> bool:
        """Check one output row with the pipeline's row checker and write it to ``split``; a row the checker
        rejects is a bad line of ``display`` (kind = reason). Returns True when written."""
        checked = self.checker.check_fields(cells)
        if checked.problems:
            p = checked.problems[0]
            self.bad(display, lineno, BadLine(p.kind, p.message, p.column, p.value))
            return False
        scenario = cells[self.scenario_idx]
        if scenario == "":
            self.bad(display, lineno, BadLine("missing_scenario", "no scenario value", self.scenario_col))
            return False
        self._writers[split].writerow(cells)
        self.written[split] += 1
        self.scenarios[split][scenario] += 1
        values = checked.values
        counts = self.label_counts[split]
        for key, col in self.labels.items():
            if values[col] == 1:
                counts[key] += 1
        if self.view_through_columns and values[self.view_through_columns[0]] == 1 \
                and values[self.view_through_columns[1]] == 0:
            counts["conversion_without_click"] += 1
        return True

    # ------------------------------------------------------------------ finishing
    def _bad_text(self, files: Sequence[str] = ()) -> str:
        if files:
            counts = "; ".join(f"{d}: {format_count(self.bad_by_file[d])} of {format_count(self.rows_read[d])} "
                               f"lines ({100 * self.bad_by_file[d] / self.rows_read[d]:.2f}%) are bad" for d in files)
        else:
            share = self.bad_total / self.read_total if self.read_total else 0.0
            counts = (f"{format_count(self.bad_total)} of {format_count(self.read_total)} input lines "
                      f"({100 * share:.2f}%) are bad")
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped.items()) if r in self.bad_reasons)
        first = [e for r in sorted(self.bad_examples) for e in self.bad_examples[r][:1]]
        return f"{counts} ({reasons}); e.g. " + "; ".join(first)

    def _too_bad(self) -> List[str]:
        """Input files whose bad share passes ``max_bad_fraction``."""
        limit = self.options.max_bad_fraction
        return [d for d, n in self.rows_read.items() if n and self.bad_by_file[d] / n > limit]

    def finish(self, extra: Optional[Dict[str, Any]] = None, notes: Sequence[str] = ()) -> Dict[str, Any]:
        """Check the bad share, write spec.yaml and prepare_summary.json, and rename the output into place."""
        for fh in self._files.values():
            fh.close()
        too_bad = self._too_bad()
        if too_bad:
            raise PrepareError(f"{self.layout.dataset}: {self._bad_text(too_bad)}; that is more than "
                               f"--max-bad-fraction {self.options.max_bad_fraction:g}. Nothing was written to "
                               f"{self.options.output}. Fix the input or raise --max-bad-fraction.")
        seen = set(self.scenarios["train"]) | set(self.scenarios["test"])
        if not seen:
            raise PrepareError(f"{self.layout.dataset}: no row was written (lines read: "
                               f"{format_count(self.read_total)}); nothing to prepare")
        values = sort_values(seen)
        spec_path = self.stage.path(SPEC_FILE)
        write_spec(spec_path, self.layout.spec_dict(values), self.layout.spec_comment)
        _check_spec_columns(load_spec(spec_path), self.columns, spec_path)
        summary = {
            "dataset": self.layout.dataset,
            "input": os.path.abspath(self.options.input),
            "output": os.path.abspath(self.options.output),
            "options": {k: v for k, v in dataclasses.asdict(self.options).items() if k not in ("input", "output")},
            "columns": self.columns,
            "rows_read": dict(self.rows_read),
            "rows_read_total": self.read_total,
            "rows_written": dict(self.written),
            "rows_skipped": dict(sorted(self.skipped.items())),
            "bad_rows": self.bad_total,
            "bad_rows_by_file": {d: self.bad_by_file[d] for d in self.rows_read},
            "bad_fraction": round(self.bad_total / self.read_total, 6) if self.read_total else 0.0,
            "bad_examples": {r: v for r, v in sorted(self.bad_examples.items())},
            "scenario_values": values,
            "scenarios": {s: dict(sorted(self.scenarios[s].items())) for s in SPLITS},
            "labels": {s: dict(sorted(self.label_counts[s].items())) for s in SPLITS},
            "extra": extra or {},
            "notes": list(notes),
            "seconds": round(time.time() - self.t0, 3),
            "peak_rss_mb": peak_rss_mb(),
        }
        with open(self.stage.path(SUMMARY_FILE), "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
        self.stage.commit()
        self.say(f"{format_count(self.read_total)} lines read, train {format_count(self.written['train'])} / test "
                 f"{format_count(self.written['test'])} rows written, {format_count(sum(self.skipped.values()))} "
                 f"skipped ({format_count(self.bad_total)} bad) in {summary['seconds']:.1f}s -> {self.stage.output}")
        return summary


def sort_values(values) -> List[str]:
    """Scenario values in index order: numerically when all are integers, else as text."""
    values = list(values)
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)


def _check_spec_columns(spec: FeatureSpec, columns: Sequence[str], where: str) -> None:
    """The spec reads exactly the written columns (nothing missing, nothing unexplained)."""
    declared = set(spec.raw_columns) | set(spec.ignore)
    missing = [c for c in spec.raw_columns if c not in columns]
    unexplained = [c for c in columns if c not in declared]
    if missing or unexplained:
        raise AssertionError(f"{where}: spec and columns disagree: not written {missing}, not in the spec "
                             f"{unexplained}")


def write_spec(path: str, spec: Dict[str, Any], comment: str) -> None:
    """Write ``spec`` as YAML with ``comment`` as a ``#`` header and one flow-style line per feature (the layout
    of ``features/specs/*.yaml``); it is validated first so an invalid spec is never written."""
    spec_from_dict(spec, source=path)

    def flow(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
        return text[:-3].strip() if text.endswith("\n...") else text  # a plain scalar ends its document

    lines = [f"# {line}".rstrip() for line in comment.strip().splitlines()]
    lines.append(f"name: {flow(spec['name'])}")
    lines.append("features:")
    lines.extend(f"  - {flow(f)}" for f in spec["features"])
    for key in ("priors", "labels"):
        if spec.get(key):
            lines.append(f"{key}:")
            lines.extend(f"  {flow(k)}: {flow(v)}" for k, v in spec[key].items())
    if spec.get("tasks"):
        lines.append("tasks:")
        lines.extend(f"  - {flow(t)}" for t in spec["tasks"])
    for key in ("ignore", "request_id", "timestamp"):
        if spec.get(key):
            lines.append(f"{key}: {flow(spec[key])}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
