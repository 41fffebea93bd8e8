"""KuaiRand (KuaiRand-Pure or KuaiRand-1K, the Kuaishou short-video feed with random exposures) -> impression log.

Input (``--input DIR``): the ``data`` folder of a KuaiRand version, anywhere under DIR (hidden directories are
skipped); every file may be gzipped (``NAME.csv.gz``). ``<v>`` is the version tag of the file names: ``pure``
(KuaiRand-Pure), ``1k`` (KuaiRand-1K); all files must carry the same tag. A log may come in parts
(``..._<v>_part1.csv``, ``..._<v>_part2.csv``, read in part order)::

    log_standard_4_08_to_4_21_<v>.csv   the standard feed, 2022-04-08 .. 04-21 (required) -> train
    log_standard_4_22_to_5_08_<v>.csv   the standard feed, 2022-04-22 .. 05-08 (required) -> test
    log_random_4_22_to_5_08_<v>.csv     the randomly exposed videos (optional; counted, not written)
        user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,
        long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab
    user_features_<v>.csv               one line per user (required)
        user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,
        follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,
        register_days,register_days_range,onehot_feat0..onehot_feat17
    video_features_basic_<v>.csv        one line per video (required; may come in parts)
        video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,
        server_height,music_id,music_type,tag

Columns are found by name (their order does not matter); the side tables are read as CSV (the ``*_range``
values and the ``tag`` lists hold commas and are quoted); the logs hold numbers only.
``video_features_statistic_<v>.csv`` is not read: its numbers are averaged over the whole month, test weeks
included, so as features they would leak the test period.

Output columns::

    user_id, video_id, tab, hour, date, hourmin, time_ms,
    user_active_degree, is_lowactive_period, is_live_streamer, is_video_author, follow_user_num,
    follow_user_num_range, fans_user_num, fans_user_num_range, friend_user_num, friend_user_num_range,
    register_days, register_days_range, onehot_feat0 .. onehot_feat17,
    author_id, video_type, upload_type, music_type, video_duration, tag,
    is_click, long_view, is_like, is_follow, is_comment, is_forward,
    is_hate, play_time_ms, duration_ms, profile_stay_time, comment_stay_time, is_profile_enter, is_rand

Choices (docs/datasets.md):

- One row per line of the standard logs. Split by file: train = ``log_standard_4_08_to_4_21*``, test =
  ``log_standard_4_22_to_5_08*`` (the release's own two periods; hold out validation from train in the
  pipeline).
- The random-exposure log is not written: its lines are counted as the policy skip ``random_exposure_log``.
  Its videos were shown by a uniform policy, not by the feed, so mixing them into the test split would change
  what the test measures; keep it for an unbiased evaluation of your own.
- Scenario = ``tab`` (the app page of the interaction, 0-14); ``spec.yaml`` lists the tabs seen.
- Tasks (the spec's ``tasks`` list, no ``after``): click = ``is_click``, long_view = ``long_view``, like =
  ``is_like``, follow = ``is_follow``, comment = ``is_comment``, forward = ``is_forward``. In the single-column
  feed a video plays without a click, so a like (follow, ...) can come without ``is_click``: such rows are kept,
  and the summary counts them per task and split (``extra.positives_without_click``). A label other than 0/1
  is a bad line (``label_out_of_range``, from the row checker).
- ``time_ms`` (Unix milliseconds) is the spec's ``timestamp``; ``hour`` = ``hourmin // 100`` (0-23, the
  release's local time) is a categorical feature (``hourmin`` outside 0..2359 is a bad line ``bad_hourmin``);
  ``date`` and ``hourmin`` are written but ignored.
- Ignored (written, never features): ``play_time_ms``, ``duration_ms``, ``profile_stay_time``,
  ``comment_stay_time``, ``is_profile_enter``, ``is_rand`` and ``is_hate`` are measured after the impression
  and would leak the labels (``duration_ms`` repeats the video's duration; ``video_duration`` is the feature).
- User features: ``user_active_degree`` and the ``*_range`` columns categorical strings, ``is_*`` flags and
  ``onehot_feat*`` categorical int64, ``follow_user_num``, ``fans_user_num``, ``friend_user_num`` and
  ``register_days`` numeric (log1p + z-score).
- Video features: ``author_id``, ``music_type`` categorical int64, ``video_type``, ``upload_type`` categorical
  strings, ``video_duration`` numeric (log1p + z-score), ``tag`` multivalent. Dropped: ``upload_dt``,
  ``visible_status`` (the state at release time, after the logs), ``server_width``, ``server_height`` and
  ``music_id``.
- So that output rows need no CSV quoting (the pipeline's vectorised row check reads unquoted lines), a comma
  inside a string value becomes ``;`` (``(0,10]`` -> ``(0;10]``) and the tags are joined by ``|`` (``"12,65"``
  -> ``12|65``; the spec's separator).
- Bad lines (file, line, column): a wrong field count; an empty or non-integer id; a side-table cell that is
  not its type (a NaN / inf number too); and every log cell the row checker of the written spec rejects (labels
  0/1; ``time_ms`` and the ignored log columns int64, as released, so the pipeline infers the same types).
  Integer cells spelled as floats with a zero fraction (``4.0``, as pandas writes an integer column with gaps)
  are accepted; the ids, ``tab`` and the side-table integers are written back as plain integers.
- A user or video missing from its side table (or whose line was bad) keeps its row, with empty feature cells
  (missing values, imputed by the pipeline); the rows are counted (``extra.rows_without_user_features``,
  ``extra.rows_without_video_features``). A duplicate id in a side table keeps its first line (counted).
- Priors: user = user id + activity, flags and range buckets; item = video, author, type, upload type, music
  type, duration; scenario = tab.
- Ids stay raw integers with vocabulary encoding (KuaiRand-1K has about 4.4M video ids: edit ``spec.yaml`` to
  ``encoding: hash`` or a ``frequency_threshold`` for a smaller table).

Memory: both side tables (KuaiRand-1K: about 4.4M videos; 1,000 or 27,285 users) go into an on-disk SQLite
scratch database (:func:`features.datasets.common.open_scratch_db`, 64 MB page cache) keyed by the integer id,
each behind an LRU cache of ``cache_size`` entries (consecutive lines of one user hit it; the counts are in
``extra.lookup_cache``). The logs stream through; Python memory is bounded by the caches and
one insert batch, whatever the number of videos.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import math
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from features.datasets import common
from features.datasets.common import BadLine, PrepareError, PrepareOptions
from features.row_check import INT64_MAX, INT64_MIN, split_csv_line

NAME = "kuairand"
TRAIN_LOG, TEST_LOG, RANDOM_LOG = "log_standard_4_08_to_4_21", "log_standard_4_22_to_5_08", "log_random_4_22_to_5_08"
USER_TABLE, VIDEO_TABLE = "user_features", "video_features_basic"
# kind of input file -> (stem of its name, may come in parts, required)
KINDS = {"train": (TRAIN_LOG, True, True), "test": (TEST_LOG, True, True), "random": (RANDOM_LOG, True, False),
         "users": (USER_TABLE, False, True), "videos": (VIDEO_TABLE, True, True)}
# <stem>_<version>[_part<N>].csv[.gz]
_FILE_NAMES = {kind: re.compile(re.escape(stem) + r"_(?P<version>[a-z0-9]+)(?:_part(?P<part>[0-9]+))?\.csv(?:\.gz)?")
               for kind, (stem, _, _) in KINDS.items()}

SCENARIO = "tab"
TIMESTAMP = "time_ms"
# (task name, label column), in the order of the spec's tasks
TASKS = (("click", "is_click"), ("long_view", "long_view"), ("like", "is_like"), ("follow", "is_follow"),
         ("comment", "is_comment"), ("forward", "is_forward"))
LABELS = tuple(label for _, label in TASKS)
# Log columns written but ignored by the spec: time of day as released, and what is measured after the impression.
IGNORED = ("date", "hourmin", "is_hate", "play_time_ms", "duration_ms", "profile_stay_time", "comment_stay_time",
           "is_profile_enter", "is_rand")
LOG_COLUMNS = ("user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
               "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
               "comment_stay_time", "is_profile_enter", "is_rand", "tab")
# Side-table features: (column, kind); kind "string" / "int" = categorical, "count" = numeric log1p + z-score,
# "tags" = multivalent.
USER_FEATURES: Tuple[Tuple[str, str], ...] = (
    ("user_active_degree", "string"), ("is_lowactive_period", "int"), ("is_live_streamer", "int"),
    ("is_video_author", "int"), ("follow_user_num", "count"), ("follow_user_num_range", "string"),
    ("fans_user_num", "count"), ("fans_user_num_range", "string"), ("friend_user_num", "count"),
    ("friend_user_num_range", "string"), ("register_days", "count"), ("register_days_range", "string"),
) + tuple((f"onehot_feat{i}", "int") for i in range(18))
VIDEO_FEATURES: Tuple[Tuple[str, str], ...] = (
    ("author_id", "int"), ("video_type", "string"), ("upload_type", "string"), ("music_type", "int"),
    ("video_duration", "count"), ("tag", "tags"))
TAG_SEPARATOR = "|"
USER_PRIORS = ("user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
               "follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range")
ITEM_PRIORS = ("video_id", "author_id", "video_type", "upload_type", "music_type", "video_duration")
COLUMNS: Tuple[str, ...] = (("user_id", "video_id", SCENARIO, "hour", "date", "hourmin", TIMESTAMP)
                            + tuple(c for c, _ in USER_FEATURES) + tuple(c for c, _ in VIDEO_FEATURES) + LABELS
                            + IGNORED[2:])
RANDOM_SKIP = "random_exposure_log"

HELP = """kuairand: KuaiRand-Pure or KuaiRand-1K (Kuaishou short-video feed with random exposures).
  expects  under DIR (any depth; .gz accepted; <v> = pure or 1k; logs may be split into _part1, _part2, ...):
           log_standard_4_08_to_4_21_<v>.csv, log_standard_4_22_to_5_08_<v>.csv, user_features_<v>.csv,
           video_features_basic_<v>.csv; log_random_4_22_to_5_08_<v>.csv is counted but not written
  writes   user_id, video_id, tab (scenario), hour, time_ms (timestamp), user and video features, the tasks click,
           long_view, like, follow, comment, forward (no 'after'), and the post-impression columns as ignored;
           train = the 04-08..04-21 log, test = the 04-22..05-08 log"""


@dataclasses.dataclass(frozen=True)
class KuairandOptions(PrepareOptions):
    """Options of the KuaiRand adapter.

    Attributes:
      cache_size: users and videos each kept in the LRU cache in front of their on-disk table.
    """

    cache_size: int = 50_000

    def __post_init__(self):
        super().__post_init__()
        if self.cache_size < 1:
            raise PrepareError(f"cache_size must be >= 1, got {self.cache_size}")


def _feature_spec(name: str, kind: str) -> Dict[str, Any]:
    if kind == "string":
        return {"name": name, "role": "categorical", "dtype": "string"}
    if kind == "int":
        return {"name": name, "role": "categorical", "dtype": "int64"}
    if kind == "count":
        return {"name": name, "role": "numeric", "dtype": "float32", "transform": "log1p_zscore"}
    return {"name": name, "role": "multivalent", "dtype": "string", "separator": TAG_SEPARATOR}


def spec_dict_for(version: str) -> Callable[[Sequence[str]], Dict[str, Any]]:
    def spec_dict(scenario_values: Sequence[str]) -> Dict[str, Any]:
        feats: List[Dict[str, Any]] = [{"name": "user_id", "role": "id", "dtype": "int64"},
                                       {"name": "video_id", "role": "id", "dtype": "int64"},
                                       {"name": SCENARIO, "role": "scenario", "dtype": "int64",
                                        "values": list(scenario_values)},
                                       {"name": "hour", "role": "categorical", "dtype": "int64"}]
        feats += [_feature_spec(c, kind) for c, kind in USER_FEATURES + VIDEO_FEATURES]
        return {
            "name": f"kuairand_{version}",
            "features": feats,
            "priors": {"user": list(USER_PRIORS), "item": list(ITEM_PRIORS), "scenario": [SCENARIO]},
            "tasks": [{"name": name, "label": label} for name, label in TASKS],
            "ignore": list(IGNORED),
            "timestamp": TIMESTAMP,
        }
    return spec_dict


def spec_comment(version: str) -> str:
    return f"""Written by 'msmt data prepare kuairand' from KuaiRand ({version}): the standard logs joined with
user_features_{version}.csv and video_features_basic_{version}.csv. Choices (features/datasets/kuairand.py):
- train = log_standard_4_08_to_4_21, test = log_standard_4_22_to_5_08; the random-exposure log is not written;
- scenario = tab (the values seen); timestamp = time_ms; hour = hourmin // 100 (categorical);
- tasks click (is_click), long_view, like (is_like), follow (is_follow), comment (is_comment), forward
  (is_forward), without 'after': in the single-column feed a like can come without a click;
- ignored: date, hourmin, and the columns measured after the impression (is_hate, play_time_ms, duration_ms,
  profile_stay_time, comment_stay_time, is_profile_enter, is_rand): they would leak the labels;
- user features: activity, flags, onehot_feat* and *_range buckets categorical, counts and register_days
  numeric (log1p + z-score); video features: author_id, video_type, upload_type, music_type categorical,
  video_duration numeric (log1p + z-score), tag multivalent ('|'); upload_dt, visible_status, server_width,
  server_height, music_id dropped; a comma inside a string value is written as ';';
- a user or video without a side-table line keeps its row with empty feature cells (counted in the summary)."""


# ------------------------------------------------------------------------------------------------ input files
@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    display: str      # path relative to --input
    kind: str         # a key of KINDS
    part: int         # 0 for an unsplit file


def _match(name: str) -> Tuple[str, Optional["re.Match[str]"]]:
    """The kind of a KuaiRand file name and its match (version, part), or ``("", None)``."""
    for kind, pattern in _FILE_NAMES.items():
        m = pattern.fullmatch(name.lower())
        if m:
            return kind, m
    return "", None


def discover(input_dir: str) -> Tuple[str, Dict[str, List[InputFile]]]:
    """``(version tag, kind -> its files in part order)`` of the KuaiRand files under ``input_dir``."""
    if not os.path.isdir(input_dir):
        raise PrepareError(f"--input {input_dir}: no such directory")
    found: Dict[str, List[InputFile]] = {kind: [] for kind in KINDS}
    versions: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(input_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            kind, m = _match(name)
            if name.startswith(".") or m is None:
                continue
            stem = KINDS[kind][0]
            path = os.path.join(dirpath, name)
            display = os.path.relpath(path, input_dir)
            if m["part"] is not None and not KINDS[kind][1]:
                raise PrepareError(f"{display}: {stem}_<version>.csv is one file, not split into parts")
            key = name[:-3] if name.lower().endswith(".gz") else name
            if key in seen:
                raise PrepareError(f"--input {input_dir}: {key} is there more than once ({seen[key]}, {display}); "
                                   f"keep one")
            seen[key] = display
            versions.setdefault(m["version"], display)
            found[kind].append(InputFile(path, display, kind, int(m["part"] or 0)))
    if len(versions) > 1:
        listed = ", ".join(f"{v} ({d})" for v, d in sorted(versions.items()))
        raise PrepareError(f"--input {input_dir}: files of more than one KuaiRand version: {listed}; point --input "
                           f"at the data folder of one version")
    version = next(iter(versions), "<v>")
    for kind, (stem, parts, required) in KINDS.items():
        files = sorted(found[kind], key=lambda f: f.part)
        if required and not files:
            split = " (or split into ..._part1.csv, ..._part2.csv)" if parts else ""
            raise PrepareError(f"--input {input_dir}: no {stem}_{version}.csv (or .csv.gz){split} under it; expected "
                               f"the data folder of a KuaiRand download: {TRAIN_LOG}_<v>.csv, {TEST_LOG}_<v>.csv, "
                               f"{USER_TABLE}_<v>.csv and {VIDEO_TABLE}_<v>.csv, with <v> = pure or 1k")
        if any(f.part == 0 for f in files) and len(files) > 1:
            raise PrepareError(f"--input {input_dir}: {stem}_{version} is there both whole and in parts "
                               f"({', '.join(f.display for f in files)}); keep one of the two")
        found[kind] = files
    return version, found


# ------------------------------------------------------------------------------------------------ cells
def _fields(line: str, width: int) -> List[str]:
    """The fields of one line (CSV quoting understood); a wrong field count is a bad line."""
    if '"' in line:
        try:
            parts = split_csv_line(line)
        except csv.Error as e:
            raise BadLine("malformed_line", f"not a CSV line: {e}") from None
    else:
        parts = line.split(",")
    if len(parts) != width:
        raise BadLine("malformed_line", f"{len(parts)} fields, the header has {width}")
    return parts


def _int_value(text: str, column: str) -> int:
    """``text`` as an int64 (``4.0`` is 4); BadLine ``wrong_type`` otherwise."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise BadLine("wrong_type", f"{text!r} is not an integer", column, text) from None
        value = int(number)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadLine("wrong_type", f"{text!r} is outside the int64 range", column, text)
    return value


def _key(text: str, column: str) -> int:
    text = text.strip()
    if not text:
        raise BadLine("empty_id", "empty id", column)
    return _int_value(text, column)


def _int_cell(text: str, column: str) -> str:
    """An optional integer cell, written as a plain integer ('' stays missing)."""
    text = text.strip()
    return str(_int_value(text, column)) if text else ""


def _number_cell(text: str, column: str) -> str:
    """An optional finite number ('' stays missing)."""
    text = text.strip()
    if text:
        common.check_finite_number(text, column)
    return text


def _string_cell(text: str, column: str) -> str:
    return text.strip().replace(",", ";")


def _tags_cell(text: str, column: str) -> str:
    return TAG_SEPARATOR.join(t.strip() for t in text.split(",") if t.strip())


CELL_PARSERS: Dict[str, Callable[[str, str], str]] = {"string": _string_cell, "int": _int_cell,
                                                      "count": _number_cell, "tags": _tags_cell}


# ------------------------------------------------------------------------------------------------ side tables
def load_table(run: common.PrepareRun, table: common.LookupTable, files: Sequence[InputFile], key: str,
               features: Sequence[Tuple[str, str]], noun: str) -> None:
    """Stream the side-table ``files`` into ``table``: ``key`` -> the cells of ``features`` (checked by kind)."""
    parsers = [(c, CELL_PARSERS[kind]) for c, kind in features]
    for f in files:
        header = common.read_header(f.path, f.display)
        pos = common.column_index(header, [key] + [c for c, _ in features], f.display)
        width, ikey = len(header), pos[key]
        run.say(f"{f.display}: loading the {noun} (on disk)")
        for lineno, line in run.lines(f.path, f.display, noun=noun):
            try:
                parts = _fields(line, width)
                table.add(_key(parts[ikey], key), tuple(parse(parts[pos[c]], c) for c, parse in parsers))
            except BadLine as e:
                run.bad(f.display, lineno, e)
    table.close_inserts()


# ------------------------------------------------------------------------------------------------ the run
def prepare(options: KuairandOptions, echo: Optional[common.Echo] = None) -> Dict[str, Any]:
    """Convert the KuaiRand files under ``options.input``; returns the summary (also in
    ``OUTPUT/prepare_summary.json``). Raises :class:`PrepareError` with a clear message on bad input."""
    version, files = discover(options.input)
    log_pos = {}
    for kind in ("train", "test"):
        for f in files[kind]:
            header = common.read_header(f.path, f.display)
            log_pos[f.display] = (common.column_index(header, LOG_COLUMNS, f.display), len(header))
    layout = common.OutputLayout(dataset=NAME, columns=COLUMNS, spec_dict=spec_dict_for(version),
                                 spec_comment=spec_comment(version),
                                 extra_types={c: "int64" for c in (TIMESTAMP,) + IGNORED})
    extra: Dict[str, Any] = {
        "version": version,
        "files": {f.display: kind for kind in KINDS for f in files[kind]},
        "positives_without_click": {s: {name: 0 for name, _ in TASKS[1:]} for s in common.SPLITS},
        "rows_without_user_features": 0,
        "rows_without_video_features": 0,
    }
    with common.PrepareRun(layout, options, echo) as run:
        conn = common.open_scratch_db(os.path.join(run.work_dir, "side_tables.sqlite"))
        try:
            users = common.LookupTable(conn, "users", len(USER_FEATURES), options.cache_size)
            load_table(run, users, files["users"], "user_id", USER_FEATURES, "users")
            videos = common.LookupTable(conn, "videos", len(VIDEO_FEATURES), options.cache_size)
            load_table(run, videos, files["videos"], "video_id", VIDEO_FEATURES, "videos")
            for name, table in (("users", users), ("videos", videos)):
                extra[f"{name}_loaded"] = table.inserter.inserted
                extra[f"{name}_duplicate"] = table.inserter.ignored
            rows_per_date: Dict[str, int] = collections.Counter()
            for split in common.SPLITS:
                for f in files[split]:
                    pos, width = log_pos[f.display]
                    _log(run, f, split, pos, width, users, videos, extra, rows_per_date)
            extra["rows_per_date"] = dict(sorted(rows_per_date.items()))
            extra["lookup_cache"] = {name: {"hits": t.hits, "misses": t.misses}
                                     for name, t in (("users", users), ("videos", videos))}
        finally:
            conn.close()
        for f in files["random"]:
            run.say(f"{f.display}: random exposures, counted as {RANDOM_SKIP} (not written)")
            for _ in run.lines(f.path, f.display, noun="random-exposure lines"):
                run.skip(RANDOM_SKIP)
        return run.finish(extra=extra)


def _log(run: common.PrepareRun, f: InputFile, split: str, pos: Dict[str, int], width: int, users: common.LookupTable,
         videos: common.LookupTable, extra: Dict[str, Any], rows_per_date: Dict[str, int]) -> None:
    """Join one standard log with the side tables and write its rows to ``split``."""
    iu, iv, ih, it = pos["user_id"], pos["video_id"], pos["hourmin"], pos[SCENARIO]
    passed = [pos[c] for c in ("date", "hourmin", TIMESTAMP)]
    labels = [pos[c] for c in LABELS]
    ignored = [pos[c] for c in IGNORED[2:]]
    no_user, no_video = ("",) * len(USER_FEATURES), ("",) * len(VIDEO_FEATURES)
    without_click = extra["positives_without_click"][split]
    others = [(name, i) for i, (name, _) in enumerate(TASKS) if i]
    run.say(f"{f.display}: joining and writing -> {split}")
    for lineno, line in run.lines(f.path, f.display, noun="interactions"):
        try:
            parts = _fields(line, width)
            user = _key(parts[iu], "user_id")
            video = _key(parts[iv], "video_id")
            hourmin = _int_value(parts[ih], "hourmin")
            if not 0 <= hourmin <= 2359:
                raise BadLine("bad_hourmin", f"hourmin {parts[ih]!r} is not a time HHMM in 0..2359", "hourmin",
                              parts[ih])
            tab = _int_cell(parts[it], SCENARIO)
        except BadLine as e:
            run.bad(f.display, lineno, e)
            continue
        user_cells = users.get(user)
        video_cells = videos.get(video)
        label_cells = [parts[i] for i in labels]
        cells = ([str(user), str(video), tab, str(hourmin // 100)] + [parts[i] for i in passed]
                 + list(user_cells or no_user) + list(video_cells or no_video) + label_cells
                 + [parts[i] for i in ignored])
        if not run.write(split, cells, f.display, lineno):
            continue
        extra["rows_without_user_features"] += user_cells is None
        extra["rows_without_video_features"] += video_cells is None
        rows_per_date[parts[pos["date"]]] += 1
        if _int_value(label_cells[0], LABELS[0]) == 0:
            for name, i in others:
                if _int_value(label_cells[i], LABELS[i]) == 1:
                    without_click[name] += 1
