"""Ali-CCP raw download (Tianchi dataset 408, "Alibaba Click and Conversion Prediction") -> impression log.

Input (``--input DIR``; each file may also be in a direct sub-directory, and may be gzipped as ``NAME.gz``)::

    sample_skeleton_train.csv   sample_skeleton_test.csv    one line per impression, no header:
                                sample_id,click,buy,common_feature_index,feature_num,feature_list
    common_features_train.csv   common_features_test.csv    one line per page view (user context), no header:
                                common_feature_index,feature_num,feature_list

``feature_list`` is ``feature_num`` entries joined by ``\\x01``; an entry is ``field_id\\x02feature_id\\x03value``
(e.g. ``205\\x0226453\\x031.0``). ``common_feature_index`` is a hex digest that joins a sample to its page view.
User fields live in the common features: 101 (user id), 121, 122, 124..129 (profile), 109_14, 110_14, 127_14,
150_14 (14-day behaviour: category, shop, brand, intention node). Item and context fields live in the skeleton:
205 (item id), 206 (category), 207 (shop), 210 (intention node), 216 (brand), 508, 509, 702, 853 (user x item
crosses), 301 (the scenario / position category).

Output (the columns of ``features/specs/aliccp.yaml`` and of ``../shared/data/aliccp/ali_ccp_*_sample.csv``, with
the raw ids instead of label-encoded ones)::

    click, purchase, 101, 121, 122, 124..129, 205, 206, 207, 210, 216, 508, 509, 702, 853, 301,
    109_14, 110_14, 127_14, 150_14, D109_14, D110_14, D127_14, D150_14, D508, D509, D702, D853

Choices:

- ``purchase`` = ``buy``. A sample with ``buy=1`` and ``click=0`` is dropped and counted as
  ``purchase_without_click`` (a policy skip, not a bad line): Ali-CCP's purchase is post-click (``docs/datasets.md``),
  community preprocessing drops these rows, and the written spec says ``requires_click:
  [conversion]``. There is no related post-click action in Ali-CCP, so there is no ``raction`` label.
- One column per field holds the feature id of the field's **first** entry. Multi-valued fields (mostly the
  ``*_14`` behaviour lists, sometimes 508..853) are truncated to that entry; how often, per field and file, is
  in the summary (``extra.truncated_multivalued``; counted per common-feature line for user fields and per
  sample for skeleton fields).
- ``D<field>`` (numeric) = the value of that first entry, for 109_14, 110_14, 127_14, 150_14, 508, 509, 702, 853.
- A field a line does not have gives an empty cell (a missing value the pipeline imputes; an empty ``101`` or
  ``205`` is an ``empty_id`` bad line, as the checked ExampleGen would count it).
- Scenario = field 301's feature id; ``spec.yaml`` lists the ids seen (three in the full release).
- The written spec follows ``features/specs/aliccp.yaml`` except that ``109_14``, ``110_14``, ``127_14`` and
  ``150_14`` are ``categorical``: in the raw data they hold the feature id of a behaviour entry, not a count.
- Train = the ``*_train`` pair, test = the ``*_test`` pair (the official split, §12 row 14; hold out validation
  from train in the pipeline).

Memory: the common features (hundreds of thousands of page views, up to thousands of entries each) are not
held in memory. Only the first entry of each user field is kept, in an on-disk SQLite table (stdlib
``sqlite3``; :func:`features.datasets.common.open_scratch_db`: a page cache of at most 64 MB) in the staging
directory, keyed by ``common_feature_index``; each split's table is dropped before the next one is built. Samples
are looked up through a small LRU cache (``cache_size`` entries; the samples of one page view tend to be
consecutive, so most lookups are hits; the counts are in ``extra.lookup_cache``). Python memory is therefore bounded by the cache and one insert batch,
whatever the number of page views (``features/datasets/aliccp_test.py`` measures it); the user fields are
validated while indexing, so a broken common-feature line is reported with its own file and line number.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from features.datasets import common
from features.datasets.common import BadLine, PrepareError, PrepareOptions, parse_int_cell

NAME = "aliccp"
USER_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "109_14", "110_14", "127_14",
               "150_14")
ITEM_FIELDS = ("205", "206", "207", "210", "216", "508", "509", "702", "853", "301")
VALUE_FIELDS = ("109_14", "110_14", "127_14", "150_14", "508", "509", "702", "853")
SCENARIO_FIELD = "301"
LABELS = ("click", "purchase")
ID_COLUMNS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216",
              "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14")
VALUE_COLUMNS = tuple(f"D{f}" for f in VALUE_FIELDS)
COLUMNS = LABELS + ID_COLUMNS + VALUE_COLUMNS
# Cells of a common-feature line kept in the index, and of a skeleton line: field ids, then D<field> values.
USER_COLUMNS = USER_FIELDS + tuple(f"D{f}" for f in USER_FIELDS if f in VALUE_FIELDS)
ITEM_COLUMNS = ITEM_FIELDS + tuple(f"D{f}" for f in ITEM_FIELDS if f in VALUE_FIELDS)
FILES = {split: (f"sample_skeleton_{split}.csv", f"common_features_{split}.csv") for split in common.SPLITS}
SKELETON_FIELDS = "sample_id,click,buy,common_feature_index,feature_num,feature_list"
COMMON_FIELDS = "common_feature_index,feature_num,feature_list"

HELP = """aliccp: the Ali-CCP raw download (Tianchi dataset 408).
  expects  sample_skeleton_{train,test}.csv and common_features_{train,test}.csv (unpacked from
           sample_train.tar.gz / sample_test.tar.gz; in DIR or a direct sub-directory; .gz accepted)
  writes   click, purchase (= buy), one id column per field (its first feature id), D<field> values, scenario
           301; train/test = the official files; buy without click is dropped (purchase_without_click)"""


@dataclasses.dataclass(frozen=True)
class AliccpOptions(PrepareOptions):
    """Options of the Ali-CCP adapter.

    Attributes:
      cache_size: page views kept in the LRU cache in front of the on-disk common-feature index.
    """

    cache_size: int = 10_000

    def __post_init__(self):
        super().__post_init__()
        if self.cache_size < 1:
            raise PrepareError(f"cache_size must be >= 1, got {self.cache_size}")


def spec_dict(scenario_values: Sequence[str]) -> Dict[str, Any]:
    """The written spec: ``features/specs/aliccp.yaml`` with raw ids (see the module docstring)."""
    feats: List[Dict[str, Any]] = []
    for col in ID_COLUMNS:
        if col == SCENARIO_FIELD:
            feats.append({"name": col, "role": "scenario", "dtype": "int64", "values": list(scenario_values)})
        else:
            feats.append({"name": col, "role": "id" if col in ("101", "205") else "categorical", "dtype": "int64"})
    feats += [{"name": c, "role": "numeric", "dtype": "float32", "transform": "zscore"} for c in VALUE_COLUMNS]
    return {
        "name": "aliccp_raw",
        "features": feats,
        "priors": {"user": ["101", "121", "122", "124", "125", "126", "127", "128", "129"],
                   "item": ["205", "206", "207", "216"], "scenario": [SCENARIO_FIELD]},
        "labels": {"click": "click", "conversion": "purchase", "requires_click": ["conversion"]},
    }


SPEC_COMMENT = """Written by 'msmt data prepare aliccp' from the Ali-CCP raw download (Tianchi dataset 408:
sample_skeleton_{train,test}.csv joined with common_features_{train,test}.csv on common_feature_index).
Columns as features/specs/aliccp.yaml, but with the raw feature ids. Choices (features/datasets/aliccp.py):
- each field's column is the feature id of its first entry (multi-valued fields truncated; counts in
  prepare_summary.json), D<field> is that entry's value; a missing field is an empty cell;
- 109_14, 110_14, 127_14, 150_14 are categorical here (raw behaviour-entry ids, not counts);
- scenario = field 301 (the values are those seen in the data); priors as docs/datasets.md;
- purchase = buy; buy without click is dropped, hence requires_click: [conversion]; no raction label exists;
- train/test = the official files."""

LAYOUT = common.OutputLayout(dataset=NAME, columns=COLUMNS, spec_dict=spec_dict, spec_comment=SPEC_COMMENT)


# ------------------------------------------------------------------------------------------------ parsing
def first_entries(feature_list: str, fields: Sequence[str]) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
    """``{field: (feature_id, value)}`` of the first entry of each of ``fields`` in a ``feature_list``, and the
    fields that have more than one entry (truncated). Searches with ``str.find`` for ``\\x01FIELD\\x02``, so a
    line of thousands of entries is not split in Python."""
    text = "\x01" + feature_list
    found: Dict[str, Tuple[str, str]] = {}
    multi: List[str] = []
    for field in fields:
        key = "\x01" + field + "\x02"
        i = text.find(key)
        if i < 0:
            continue
        start = i + len(key)
        end = text.find("\x01", start)
        entry = text[start:] if end < 0 else text[start:end]
        fid, sep, value = entry.partition("\x03")
        if not sep:
            raise BadLine("malformed_feature_entry",
                          f"entry {_show(field + chr(2) + entry)} is not field\\x02feature_id\\x03value", field, entry)
        found[field] = (fid, value)
        if end >= 0 and text.find(key, end) >= 0:
            multi.append(field)
    return found, multi


def _show(text: str) -> str:
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _cells(found: Dict[str, Tuple[str, str]], fields: Sequence[str]) -> Tuple[str, ...]:
    """Feature ids of ``fields`` then the values of those in ``VALUE_FIELDS`` ('' when missing)."""
    ids = tuple(found[f][0] if f in found else "" for f in fields)
    values = tuple(found[f][1] if f in found else "" for f in fields if f in VALUE_FIELDS)
    return ids + values


def _feature_num(text: str, feature_list: str) -> bool:
    """True when ``feature_num`` agrees with the entries of ``feature_list`` (a warning count, not a bad line)."""
    n = parse_int_cell(text, "feature_num")
    return n == (feature_list.count("\x01") + 1 if feature_list else 0)


def parse_common_line(line: str) -> Tuple[str, Tuple[str, ...], List[str], bool]:
    """``(common_feature_index, USER_COLUMNS cells, truncated fields, feature_num agrees)`` of one line of
    ``common_features_*.csv``; the kept user ids must be integers and their values finite numbers."""
    parts = line.split(",")
    if len(parts) != 3:
        raise BadLine("malformed_line", f"{len(parts)} fields, expected 3 ({COMMON_FIELDS})")
    idx, fnum, flist = parts
    if not idx:
        raise BadLine("malformed_line", "empty common_feature_index", "common_feature_index")
    num_ok = _feature_num(fnum, flist)
    found, multi = first_entries(flist, USER_FIELDS)
    for field, (fid, value) in found.items():
        parse_int_cell(fid, field)
        if field in VALUE_FIELDS:
            common.check_finite_number(value, f"D{field}")
    return idx, _cells(found, USER_FIELDS), multi, num_ok


# ------------------------------------------------------------------------------------------------ the join
def prepare(options: AliccpOptions, echo: Optional[common.Echo] = None) -> Dict[str, Any]:
    """Convert the Ali-CCP raw files under ``options.input``; returns the summary (also in
    ``OUTPUT/prepare_summary.json``). Raises :class:`PrepareError` with a clear message on bad input."""
    paths = {split: tuple(common.find_input_file(options.input, name) for name in names)
             for split, names in FILES.items()}
    extra: Dict[str, Any] = {"truncated_multivalued": {}, "duplicate_common_feature_index": {},
                             "feature_num_mismatch": {}, "common_features_indexed": {}, "lookup_cache": {},
                             "scratch_db_mb": {}}
    with common.PrepareRun(LAYOUT, options, echo) as run:
        db_path = os.path.join(run.work_dir, "common_features.sqlite")
        conn = common.open_scratch_db(db_path)
        try:
            for split in common.SPLITS:
                skeleton, common_path = paths[split]
                index = _build_index(run, conn, common_path, split, options, extra)
                extra["scratch_db_mb"][split] = round(os.path.getsize(db_path) / 2 ** 20, 3)
                _join(run, index, skeleton, split, extra)
                extra["lookup_cache"][split] = {"hits": index.hits, "misses": index.misses}
                index.drop()
        finally:
            conn.close()
        return run.finish(extra=extra)


def _display(run: common.PrepareRun, path: str) -> str:
    return os.path.relpath(path, run.options.input)


def _build_index(run: common.PrepareRun, conn, path: str, split: str, options: AliccpOptions,
                 extra: Dict[str, Any]) -> common.LookupTable:
    display = _display(run, path)
    run.say(f"indexing the user fields of {display} (on disk)")
    # common_feature_index -> the user cells
    index = common.LookupTable(conn, f"common_{split}", len(USER_COLUMNS), options.cache_size, key_type="TEXT")
    truncated: Dict[str, int] = collections.Counter()
    mismatch = 0
    for lineno, line in run.lines(path, display, noun="common-feature lines", skip_header=False):
        try:
            idx, cells, multi, num_ok = parse_common_line(line)
        except BadLine as e:
            run.bad(display, lineno, e)
            continue
        index.add(idx, cells)
        for f in multi:
            truncated[f] += 1
        mismatch += not num_ok
    index.close_inserts()
    extra["truncated_multivalued"][display] = dict(sorted(truncated.items()))
    extra["duplicate_common_feature_index"][display] = index.inserter.ignored
    extra["feature_num_mismatch"][display] = mismatch
    extra["common_features_indexed"][display] = index.inserter.inserted
    if index.inserter.ignored:
        run.say(f"{display}: {index.inserter.ignored} duplicate common_feature_index lines; the first is kept")
    return index


def _join(run: common.PrepareRun, index: common.LookupTable, path: str, split: str, extra: Dict[str, Any]) -> None:
    display = _display(run, path)
    run.say(f"joining {display} -> {split}")
    truncated: Dict[str, int] = collections.Counter()
    mismatch = 0
    user_pos = {c: i for i, c in enumerate(USER_COLUMNS)}
    item_pos = {c: i for i, c in enumerate(ITEM_COLUMNS)}
    # Each output feature column is (source, position): 0 = user cells, 1 = item cells.
    plan = [(0, user_pos[c]) if c in user_pos else (1, item_pos[c]) for c in ID_COLUMNS + VALUE_COLUMNS]
    for lineno, line in run.lines(path, display, noun="samples", skip_header=False):
        try:
            parts = line.split(",")
            if len(parts) != 6:
                raise BadLine("malformed_line", f"{len(parts)} fields, expected 6 ({SKELETON_FIELDS})")
            sample_id, click, buy, idx, fnum, flist = parts
            parse_int_cell(sample_id, "sample_id")
            mismatch += not _feature_num(fnum, flist)
            if click == "0" and buy == "1":
                run.skip("purchase_without_click")
                continue
            user = index.get(idx)
            if user is None:
                raise BadLine("unknown_common_feature_index",
                              f"{idx!r} is not in common_features_{split}.csv", "common_feature_index", idx)
            found, multi = first_entries(flist, ITEM_FIELDS)
        except BadLine as e:
            run.bad(display, lineno, e)
            continue
        item = _cells(found, ITEM_FIELDS)
        sources = (user, item)
        run.write(split, [click, buy] + [sources[s][i] for s, i in plan], display, lineno)
        for f in multi:
            truncated[f] += 1
    extra["truncated_multivalued"][display] = dict(sorted(truncated.items()))
    extra["feature_num_mismatch"][display] = mismatch
