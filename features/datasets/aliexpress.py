"""AliExpress search logs (one download per country) -> one impression log with a ``country`` scenario column.

Input (``--input DIR``): the public release is one dataset per country (NL, ES, FR, US, RU), each a ``train.csv``
and a ``test.csv`` with a header::

    search_id,categorical_1,...,categorical_16,numerical_1,...,numerical_63,click,conversion

Every ``.csv`` (or ``.csv.gz``) under DIR whose file name contains ``train`` or ``test`` is read (hidden
directories are skipped). Its **split** comes from the file name; its **country** from the first path part
(file name first, then its directories up to and including DIR itself) that holds a country code as a word:
``AliExpress_NL/train.csv``, ``NL/test.csv``, ``nl_train.csv``, ``aliexpress_es/train.csv``. Known codes:
:data:`COUNTRIES`. ``--country CODE`` names the country of files without a code (a directory holding a single
country, e.g. ``../shared/data/aliexpress/aliexpress_train_sample.csv``); a file whose name gives another code
is an error. A file without a country is an error naming it.

Output: the columns of the first file's header with ``country`` (upper case) in front. All files must have the
same header; besides ``search_id``, ``click`` and ``conversion`` every column must be ``categorical_N`` (int64
ids) or ``numerical_N`` (float32); the row checker of the written spec validates every cell (field count,
integer ids, finite numbers, 0/1 labels). Train = all ``*train*`` files, test = all ``*test*`` files, in the order
country, file name.

The written spec: ``country`` is the scenario (values = the codes seen; the usual benchmark uses NL/ES/FR/US),
``categorical_*`` categorical, ``numerical_*`` numeric (z-score), ``search_id`` the request id, labels ``click``
and ``conversion``. A conversion without a click is kept (the entire-space heads model it) and counted in the
summary (``labels.*.conversion_without_click``). Nothing else is held in memory: rows stream through.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from features.datasets import common
from features.datasets.common import BadLine, PrepareError, PrepareOptions

NAME = "aliexpress"
COUNTRIES = ("NL", "ES", "FR", "US", "RU")
COUNTRY_COLUMN = "country"
REQUEST_ID = "search_id"
LABELS = ("click", "conversion")
_FEATURE_COLUMN = re.compile(r"(categorical|numerical)_\d+")
_CODE = re.compile(r"[A-Za-z]{2}")
_WORDS = re.compile(r"[A-Za-z0-9]+")

HELP = """aliexpress: AliExpress search logs, one download per country (NL, ES, FR, US, RU).
  expects  under DIR, CSV files named *train* / *test* with the header search_id, categorical_1..16,
           numerical_1..63, click, conversion; the country from the file or directory name
           (AliExpress_NL/train.csv, NL/test.csv, nl_train.csv) or --country CODE
  writes   the same columns plus country (the scenario); train/test = the train/test files"""


@dataclasses.dataclass(frozen=True)
class AliExpressOptions(PrepareOptions):
    """Options of the AliExpress adapter.

    Attributes:
      country: the country code of input files whose path names none (any 2-letter code, upper-cased).
    """

    country: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.country is not None and not _CODE.fullmatch(self.country):
            raise PrepareError(f"--country must be a 2-letter country code such as NL, got {self.country!r}")


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    display: str      # path relative to --input
    split: str
    country: str


def _split_of(name: str) -> Optional[str]:
    lower = name.lower()
    splits = [s for s in common.SPLITS if s in lower]
    return splits[0] if len(splits) == 1 else None


def _country_in(name: str) -> Optional[str]:
    """A known country code that is a whole word of ``name`` (``AliExpress_NL``, ``nl_train.csv``, ``US``)."""
    for word in _WORDS.findall(name):
        if word.upper() in COUNTRIES:
            return word.upper()
    return None


def discover(input_dir: str, country: Optional[str] = None) -> List[InputFile]:
    """The train/test files under ``input_dir`` with their split and country (see the module docstring)."""
    if not os.path.isdir(input_dir):
        raise PrepareError(f"--input {input_dir}: no such directory")
    forced = country.upper() if country else None
    files: List[InputFile] = []
    root_name = os.path.basename(os.path.abspath(input_dir))
    for dirpath, dirnames, filenames in os.walk(input_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.lower().endswith((".csv", ".csv.gz")) or name.startswith("."):
                continue
            split = _split_of(name)
            if split is None:
                continue
            path = os.path.join(dirpath, name)
            display = os.path.relpath(path, input_dir)
            parts = [name] + list(reversed(os.path.relpath(dirpath, input_dir).split(os.sep))) + [root_name]
            code = next((c for c in map(_country_in, parts) if c), None)
            if forced and code and code != forced:
                raise PrepareError(f"{display}: its path names country {code}, but --country is {forced}; "
                                   f"leave out --country, or move the file")
            code = code or forced
            if code is None:
                raise PrepareError(f"{display}: cannot tell its country: no code of {', '.join(COUNTRIES)} in its "
                                   f"file or directory names (e.g. AliExpress_NL/train.csv, nl_train.csv); pass "
                                   f"--country CODE for a directory holding a single country")
            files.append(InputFile(path, display, split, code))
    if not files:
        raise PrepareError(f"--input {input_dir}: no CSV file named *train* or *test* in it (expected e.g. "
                           f"AliExpress_NL/train.csv and AliExpress_NL/test.csv)")
    return sorted(files, key=lambda f: (f.country, f.split, f.display))


def check_header(header: Sequence[str], display: str) -> None:
    """The AliExpress layout: search_id, categorical_N, numerical_N, click, conversion and nothing else."""
    for required in (REQUEST_ID,) + LABELS:
        if required not in header:
            raise PrepareError(f"{display}:1: the header has no column {required!r} (header: {','.join(header)})")
    for col in header:
        if col not in (REQUEST_ID,) + LABELS and not _FEATURE_COLUMN.fullmatch(col):
            raise PrepareError(f"{display}:1: unexpected column {col!r}: an AliExpress file has search_id, "
                               f"categorical_N, numerical_N, click and conversion")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise PrepareError(f"{display}:1: duplicate columns {dupes}")


def spec_dict_for(header: Sequence[str]):
    """The spec builder of the output columns ``country`` + ``header``."""
    def spec_dict(scenario_values: Sequence[str]) -> Dict[str, Any]:
        feats: List[Dict[str, Any]] = [{"name": COUNTRY_COLUMN, "role": "scenario", "dtype": "string",
                                        "values": list(scenario_values)}]
        for col in header:
            if col.startswith("categorical_"):
                feats.append({"name": col, "role": "categorical", "dtype": "int64"})
            elif col.startswith("numerical_"):
                feats.append({"name": col, "role": "numeric", "dtype": "float32", "transform": "zscore"})
        return {"name": "aliexpress_countries", "features": feats, "priors": {"scenario": [COUNTRY_COLUMN]},
                "labels": {"click": "click", "conversion": "conversion"}, "request_id": REQUEST_ID}
    return spec_dict


SPEC_COMMENT = """Written by 'msmt data prepare aliexpress' from the AliExpress search-log downloads (one dataset per
country; train.csv / test.csv each). Choices (features/datasets/aliexpress.py):
- country (from the file or directory name, or --country) is the scenario; values = the countries seen;
- categorical_* are categorical int64 ids, numerical_* numeric (z-score); search_id is the request id;
- labels click and conversion as released; a conversion without a click is kept (view-through);
- train/test = the released train/test files of every country; no user/item prior groups (anonymised fields)."""


def prepare(options: AliExpressOptions, echo: Optional[common.Echo] = None) -> Dict[str, Any]:
    """Convert the AliExpress files under ``options.input``; returns the summary (also in
    ``OUTPUT/prepare_summary.json``). Raises :class:`PrepareError` with a clear message on bad input."""
    files = discover(options.input, options.country)
    header: Optional[List[str]] = None
    first = ""
    for f in files:
        h = common.read_header(f.path, f.display)
        check_header(h, f.display)
        if header is None:
            header, first = h, f.display
        elif h != header:
            raise PrepareError(f"{f.display}:1: its header differs from the one of {first}; all files must have "
                               f"the same columns in the same order")
    columns: Tuple[str, ...] = (COUNTRY_COLUMN,) + tuple(header)
    layout = common.OutputLayout(dataset=NAME, columns=columns, spec_dict=spec_dict_for(header),
                                 spec_comment=SPEC_COMMENT, extra_types={REQUEST_ID: "int64"})
    width = len(header)
    with common.PrepareRun(layout, options, echo) as run:
        for f in files:
            run.say(f"{f.display} -> {f.split} (country {f.country})")
            for lineno, line in run.lines(f.path, f.display, noun="rows"):
                fields = line.split(",")
                if len(fields) != width:
                    run.bad(f.display, lineno, BadLine(
                        "malformed_line", f"{len(fields)} fields, the header has {width}"))
                    continue
                run.write(f.split, [f.country] + fields, f.display, lineno)
        files_info = {f.display: {"split": f.split, "country": f.country} for f in files}
        return run.finish(extra={"files": files_info})
