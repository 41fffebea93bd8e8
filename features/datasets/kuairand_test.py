"""KuaiRand adapter on small hand-made files, written by the tests into tmp_path (no line comes from a download).

Fixture (:func:`write_fixture`, KuaiRand-Pure names under ``KuaiRand-Pure/data``; the test log gzipped):

- users: 1 and 2 (user 2 with ``onehot_feat3 = 17.0`` and an empty ``onehot_feat5``); line 4 (user 3) is bad
  (``fans_user_num = many``); user 9 has no line.
- videos: 10, 11 (empty music_type), 12 (``music_type = 9.0``, no duration, no tag); line 5 (video 13) is bad
  (``video_duration = nan``); line 6 repeats video 10 (a duplicate: the first line wins); video 99 has no line.
- train log, 7 lines: 2 click + long view; 3 a like without a click; 4 a follow after a click at 23:00 in tab 0;
  5 user 9 (no features), hate only; 6 has 18 fields (bad); 7 ``is_like = 2`` (bad); 8 user 3 and video 99
  (no features of either) in tab 2.
- test log, 4 lines: 2 click, like, comment, forward, long view in tab 4; 3 a follow without a click; 4 video 13
  (no features) at 23:59; 5 ``hourmin = 2460`` (bad).
- random log, 3 lines (counted, not written); a statistics file and a loader script that are not read.
"""

import gzip
import json
import os

import pytest

from features.datasets import kuairand
from features.datasets.common import PrepareError
from features.datasets.testing import check_output
from features.spec import Task

LOG_HEADER = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
              "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab")
USER_HEADER = ("user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,"
               "follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,"
               "register_days,register_days_range," + ",".join(f"onehot_feat{i}" for i in range(18)))
VIDEO_HEADER = ("video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,"
                "server_height,music_id,music_type,tag")
USERS = [
    '1,high_active,0,0,1,5,"(0,10]",312,"[100,1k)",0,0,3624,730+,1,2,2,1153,4,0,0,31,354,3,3,2,1,0,0,0,0,0',
    '2,full_active,1,0,0,0,0,0,0,2,"[1,5)",40,31-60,0,6,49,17.0,14,,2,117,453,6,4,4,0,1,1,1,1,1',
    '3,UNKNOWN,0,0,0,12,"(10,50]",many,"[10,100)",3,"[1,5)",100,91-180,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0',
]
VIDEOS = [
    '10,441,NORMAL,2020-07-08,ShortImport,1,17200.0,720,1280,989206467,4,"12,65"',
    "11,502,AD,2022-01-02,LongImport,1,5000,720,1280,0,,28",
    "12,441,NORMAL,2021-03-03,ShortImport,1,,576,1024,77,9.0,",
    "13,600,NORMAL,2021-03-04,ShortImport,1,nan,576,1024,78,1,3",
    "10,999,AD,2020-07-08,ShortImport,1,1.0,720,1280,1,1,1",
]
TRAIN = [
    "1,10,20220408,1000,1649383200000,1,0,0,0,0,0,1,20000,17200,0,0,0,0,1",
    "1,11,20220408,1000,1649383260000,0,1,0,0,0,0,0,3000,5000,0,0,0,0,1",
    "2,12,20220409,2300,1649516400000,1,0,1,0,0,0,0,8000,10000,0,0,1,0,0",
    "9,10,20220410,0,1649520000000,0,0,0,0,0,1,0,100,17200,0,0,0,0,1",
    "2,10,20220410,1200,1649563200000,1,0,0,0,0,0,1,20000,17200,0,0,0,1",
    "1,12,20220410,1300,1649566800000,1,2,0,0,0,0,0,9000,10000,0,0,0,0,1",
    "3,99,20220411,800,1649635200000,1,0,0,0,0,0,1,40000,30000,0,0,0,0,2",
]
TEST = [
    "2,11,20220422,900,1650589200000,1,1,0,1,1,0,1,30000,5000,0,5000,0,0,4",
    "1,10,20220501,1530,1651390200000,0,0,1,0,0,0,0,100,17200,0,0,0,0,1",
    "2,13,20220508,2359,1652025540000,0,0,0,0,0,0,0,500,8000,0,0,0,0,1",
    "1,11,20220508,2460,1652025600000,0,0,0,0,0,0,0,500,5000,0,0,0,0,1",
]
RANDOM = [
    "1,11,20220423,1000,1650679200000,1,0,0,0,0,0,1,6000,5000,0,0,0,1,1",
    "2,10,20220424,1100,1650769200000,0,0,0,0,0,0,0,300,17200,0,0,0,1,1",
    "9,12,20220425,1200,1650859200000,0,0,0,0,0,0,0,300,10000,0,0,0,1,1",
]
DATA = os.path.join("KuaiRand-Pure", "data")
TRAIN_FILE = os.path.join(DATA, "log_standard_4_08_to_4_21_pure.csv")
TEST_FILE = os.path.join(DATA, "log_standard_4_22_to_5_08_pure.csv.gz")
RANDOM_FILE = os.path.join(DATA, "log_random_4_22_to_5_08_pure.csv")
USER_FILE = os.path.join(DATA, "user_features_pure.csv")
VIDEO_FILE = os.path.join(DATA, "video_features_basic_pure.csv")


def _write(path, header, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = "\n".join([header] + lines) + "\n"
    if path.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def write_fixture(root):
    """The fixture of the module docstring under ``root``; returns ``root`` as a string."""
    root = str(root)
    for name, header, lines in ((TRAIN_FILE, LOG_HEADER, TRAIN), (TEST_FILE, LOG_HEADER, TEST),
                                (RANDOM_FILE, LOG_HEADER, RANDOM), (USER_FILE, USER_HEADER, USERS),
                                (VIDEO_FILE, VIDEO_HEADER, VIDEOS)):
        _write(os.path.join(root, name), header, lines)
    _write(os.path.join(root, DATA, "video_features_statistic_pure.csv"), "video_id,counts", ["not,read,at,all"])
    _write(os.path.join(root, "KuaiRand-Pure", "load_data_pure.py"), "import pandas", [])
    return root


def _run(tmp_path, name="out", input_dir=None, **kw):
    kw.setdefault("max_bad_fraction", 0.5)
    src = input_dir or write_fixture(tmp_path / "in")
    out = tmp_path / name
    kuairand.prepare(kuairand.KuairandOptions(input=src, output=str(out), **kw), lambda m: None)
    return check_output(str(out))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("kuairand"))


def test_counts(prepared):
    _, s, _ = prepared
    assert s["rows_read"] == {USER_FILE: 3, VIDEO_FILE: 5, TRAIN_FILE: 7, TEST_FILE: 4, RANDOM_FILE: 3}
    assert s["rows_written"] == {"train": 5, "test": 3}
    assert s["rows_skipped"] == {"bad_hourmin": 1, "label_out_of_range": 1, "malformed_line": 1, "non_finite": 1,
                                 "random_exposure_log": 3, "wrong_type": 1}
    assert s["bad_rows"] == 5
    assert s["bad_rows_by_file"] == {USER_FILE: 1, VIDEO_FILE: 1, TRAIN_FILE: 2, TEST_FILE: 1, RANDOM_FILE: 0}
    assert s["scenario_values"] == ["0", "1", "2", "4"]
    assert s["scenarios"] == {"train": {"0": 1, "1": 3, "2": 1}, "test": {"1": 2, "4": 1}}
    assert s["labels"] == {"train": {"click": 3, "long_view": 2, "like": 1, "follow": 1},
                           "test": {"click": 1, "long_view": 1, "like": 1, "follow": 1, "comment": 1, "forward": 1}}
    extra = s["extra"]
    assert extra["version"] == "pure"
    assert extra["positives_without_click"] == {
        "train": {"long_view": 0, "like": 1, "follow": 0, "comment": 0, "forward": 0},     # train line 3
        "test": {"long_view": 0, "like": 0, "follow": 1, "comment": 0, "forward": 0}}      # test line 3
    assert (extra["rows_without_user_features"], extra["rows_without_video_features"]) == (2, 2)
    assert (extra["users_loaded"], extra["users_duplicate"]) == (2, 0)
    assert (extra["videos_loaded"], extra["videos_duplicate"]) == (3, 1)
    assert extra["rows_per_date"] == {"20220408": 2, "20220409": 1, "20220410": 1, "20220411": 1, "20220422": 1,
                                      "20220501": 1, "20220508": 1}
    assert extra["files"] == {TRAIN_FILE: "train", TEST_FILE: "test", RANDOM_FILE: "random", USER_FILE: "users",
                              VIDEO_FILE: "videos"}


def test_bad_lines_name_file_line_and_column(prepared):
    _, s, _ = prepared
    assert s["bad_examples"] == {
        "bad_hourmin": [f"{TEST_FILE}:5: column 'hourmin': hourmin '2460' is not a time HHMM in 0..2359 "
                        f"(bad_hourmin)"],
        "label_out_of_range": [f"{TRAIN_FILE}:7: column 'is_like': label '2' is not 0 or 1 (label_out_of_range)"],
        "malformed_line": [f"{TRAIN_FILE}:6: 18 fields, the header has 19 (malformed_line)"],
        "non_finite": [f"{VIDEO_FILE}:5: column 'video_duration': 'nan' is not a finite number (non_finite)"],
        "wrong_type": [f"{USER_FILE}:4: column 'fans_user_num': 'many' is not a number (wrong_type)"],
    }


def test_the_written_rows_pass_the_row_checker(prepared):
    # check_output row-checked every written line (0 problems); the summary's bad lines are exactly the 5 bad
    # input lines, so the row checker rejected no good row.
    _, s, rows = prepared
    assert len(rows["train"]) + len(rows["test"]) == 8 and s["bad_rows"] == 5
    with open(os.path.join(s["output"], "prepare_summary.json")) as fh:
        assert json.load(fh)["bad_rows"] == 5


def test_cells_of_three_rows(prepared):
    _, _, rows = prepared
    train, test = rows["train"], rows["test"]
    onehot1 = ["1", "2", "2", "1153", "4", "0", "0", "31", "354", "3", "3", "2", "1", "0", "0", "0", "0", "0"]
    assert train[0] == {
        "user_id": "1", "video_id": "10", "tab": "1", "hour": "10", "date": "20220408", "hourmin": "1000",
        "time_ms": "1649383200000", "user_active_degree": "high_active", "is_lowactive_period": "0",
        "is_live_streamer": "0", "is_video_author": "1", "follow_user_num": "5", "follow_user_num_range": "(0;10]",
        "fans_user_num": "312", "fans_user_num_range": "[100;1k)", "friend_user_num": "0",
        "friend_user_num_range": "0", "register_days": "3624", "register_days_range": "730+",
        **{f"onehot_feat{i}": v for i, v in enumerate(onehot1)},
        "author_id": "441", "video_type": "NORMAL", "upload_type": "ShortImport", "music_type": "4",
        "video_duration": "17200.0", "tag": "12|65",
        "is_click": "1", "long_view": "1", "is_like": "0", "is_follow": "0", "is_comment": "0", "is_forward": "0",
        "is_hate": "0", "play_time_ms": "20000", "duration_ms": "17200", "profile_stay_time": "0",
        "comment_stay_time": "0", "is_profile_enter": "0", "is_rand": "0"}
    # train line 4: user 2 (17.0 -> 17, an empty onehot_feat5), video 12 (9.0 -> 9, no duration, no tag)
    onehot2 = ["0", "6", "49", "17", "14", "", "2", "117", "453", "6", "4", "4", "0", "1", "1", "1", "1", "1"]
    row = train[2]
    assert (row["user_id"], row["video_id"], row["tab"], row["hour"]) == ("2", "12", "0", "23")
    assert [row[f"onehot_feat{i}"] for i in range(18)] == onehot2
    assert (row["friend_user_num_range"], row["register_days"], row["register_days_range"]) == ("[1;5)", "40",
                                                                                               "31-60")
    assert [row[c] for c in ("author_id", "video_type", "upload_type", "music_type", "video_duration", "tag")] == [
        "441", "NORMAL", "ShortImport", "9", "", ""]
    assert (row["is_click"], row["is_follow"], row["is_profile_enter"]) == ("1", "1", "1")
    # train line 8: user 3 (its line was bad) and video 99 (no line): every feature cell is empty
    row = train[4]
    assert (row["user_id"], row["video_id"], row["tab"], row["hour"], row["is_click"]) == ("3", "99", "2", "8", "1")
    side = [c for c, _ in kuairand.USER_FEATURES + kuairand.VIDEO_FEATURES]
    assert len(side) == 36 and all(row[c] == "" for c in side)
    # train line 5: user 9 has no line, video 10 keeps its first line (author 441, not the duplicate's 999)
    row = train[3]
    assert (row["user_id"], row["hour"], row["user_active_degree"], row["author_id"]) == ("9", "0", "", "441")
    assert [r["video_id"] for r in test] == ["11", "10", "13"] and test[2]["video_duration"] == ""
    assert (test[0]["music_type"], test[0]["tag"], test[0]["hour"]) == ("", "28", "9")


def test_spec(prepared):
    spec, s, _ = prepared
    assert spec.name == "kuairand_pure" and spec.timestamp == "time_ms" and spec.request_id is None
    assert spec.scenario.name == "tab" and spec.scenario.dtype == "int64"
    assert spec.scenario.values == ("0", "1", "2", "4")
    assert spec.tasks == (Task("click", "is_click"), Task("long_view", "long_view"), Task("like", "is_like"),
                          Task("follow", "is_follow"), Task("comment", "is_comment"), Task("forward", "is_forward"))
    assert not spec.is_funnel
    assert spec.ignore == ("date", "hourmin", "is_hate", "play_time_ms", "duration_ms", "profile_stay_time",
                           "comment_stay_time", "is_profile_enter", "is_rand")
    roles = {f.name: (f.role, f.dtype) for f in spec.features}
    assert roles["user_id"] == roles["video_id"] == ("id", "int64")
    assert roles["hour"] == roles["onehot_feat17"] == roles["is_video_author"] == roles["author_id"] == (
        "categorical", "int64")
    assert roles["user_active_degree"] == roles["fans_user_num_range"] == roles["upload_type"] == (
        "categorical", "string")
    for name in ("follow_user_num", "fans_user_num", "friend_user_num", "register_days", "video_duration"):
        assert (spec.feature(name).role, spec.feature(name).transform) == ("numeric", "log1p_zscore")
    assert (spec.feature("tag").role, spec.feature("tag").separator) == ("multivalent", "|")
    for dropped in ("upload_dt", "visible_status", "server_width", "server_height", "music_id"):
        assert dropped not in s["columns"]
    assert dict(spec.priors)["scenario"] == ("tab",) and dict(spec.priors)["item"][:2] == ("video_id", "author_id")
    with open(os.path.join(s["output"], "spec.yaml")) as fh:
        text = fh.read()
    assert text.startswith("# Written by 'msmt data prepare kuairand' from KuaiRand (pure)")
    assert "\ntasks:\n  - {name: click, label: is_click}\n" in text


def test_a_small_cache_gives_the_same_rows(tmp_path, prepared):
    _, s, rows = _run(tmp_path, cache_size=1)
    assert rows == prepared[2]
    # lookups of the lines that parse: videos 10 11 12 10 12 99 | 11 10 13, users 1 1 2 9 1 3 | 2 1 2
    assert s["extra"]["lookup_cache"] == {"users": {"hits": 1, "misses": 8}, "videos": {"hits": 0, "misses": 9}}


def test_1k_logs_in_parts_are_read_in_part_order(tmp_path):
    data = tmp_path / "in" / "KuaiRand-1K" / "data"
    _write(str(data / "log_standard_4_08_to_4_21_1k_part2.csv"), LOG_HEADER, [TRAIN[2]])
    _write(str(data / "log_standard_4_08_to_4_21_1k_part1.csv"), LOG_HEADER, TRAIN[:2])
    _write(str(data / "log_standard_4_22_to_5_08_1k.csv"), LOG_HEADER, TEST[:1])
    _write(str(data / "user_features_1k.csv"), USER_HEADER, USERS[:2])
    _write(str(data / "video_features_basic_1k_part1.csv"), VIDEO_HEADER, VIDEOS[:2])
    _write(str(data / "video_features_basic_1k_part2.csv"), VIDEO_HEADER, VIDEOS[2:3])
    spec, s, rows = _run(tmp_path, input_dir=str(tmp_path / "in"), max_bad_fraction=0.0)
    assert spec.name == "kuairand_1k" and s["extra"]["version"] == "1k" and s["bad_rows"] == 0
    assert [(r["user_id"], r["video_id"]) for r in rows["train"]] == [("1", "10"), ("1", "11"), ("2", "12")]
    d = "KuaiRand-1K/data/"
    assert list(s["rows_read"]) == [d + "user_features_1k.csv", d + "video_features_basic_1k_part1.csv",
                                    d + "video_features_basic_1k_part2.csv",
                                    d + "log_standard_4_08_to_4_21_1k_part1.csv",
                                    d + "log_standard_4_08_to_4_21_1k_part2.csv",
                                    d + "log_standard_4_22_to_5_08_1k.csv"]
    assert rows["train"][2]["music_type"] == "9" and s["extra"]["videos_loaded"] == 3
    assert "random_exposure_log" not in s["rows_skipped"]      # the random log is optional


def test_missing_file_and_ambiguous_inputs_are_named(tmp_path):
    src = write_fixture(tmp_path / "in")
    options = kuairand.KuairandOptions(input=src, output=str(tmp_path / "o"), max_bad_fraction=0.5)
    os.remove(os.path.join(src, VIDEO_FILE))
    with pytest.raises(PrepareError, match=r"no video_features_basic_pure.csv \(or .csv.gz\).*under it; expected "
                                           r"the data folder of a KuaiRand download"):
        kuairand.prepare(options, lambda m: None)
    _write(os.path.join(src, VIDEO_FILE), VIDEO_HEADER, VIDEOS)
    _write(os.path.join(src, "other", "user_features_1k.csv"), USER_HEADER, USERS)
    with pytest.raises(PrepareError, match=r"files of more than one KuaiRand version: 1k \(other/user_features_1k"):
        kuairand.prepare(options, lambda m: None)
    os.remove(os.path.join(src, "other", "user_features_1k.csv"))
    _write(os.path.join(src, "copy", "user_features_pure.csv.gz"), USER_HEADER, USERS)
    with pytest.raises(PrepareError, match="user_features_pure.csv is there more than once"):
        kuairand.prepare(options, lambda m: None)
    os.remove(os.path.join(src, "copy", "user_features_pure.csv.gz"))
    _write(os.path.join(src, DATA, "log_standard_4_08_to_4_21_pure_part1.csv"), LOG_HEADER, TRAIN)
    with pytest.raises(PrepareError, match="log_standard_4_08_to_4_21_pure is there both whole and in parts"):
        kuairand.prepare(options, lambda m: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrepareError, match=r"no log_standard_4_08_to_4_21_<v>.csv"):
        kuairand.prepare(kuairand.KuairandOptions(input=str(empty), output=str(tmp_path / "o")), lambda m: None)
    with pytest.raises(PrepareError, match="no such directory"):
        kuairand.prepare(kuairand.KuairandOptions(input=str(tmp_path / "nope"), output=str(tmp_path / "o")),
                         lambda m: None)
    assert not (tmp_path / "o").exists()


def test_log_header_problems_name_the_file(tmp_path):
    src = write_fixture(tmp_path / "in")
    _write(os.path.join(src, TRAIN_FILE), LOG_HEADER.replace(",tab", ""), [])
    with pytest.raises(PrepareError, match=r"log_standard_4_08_to_4_21_pure.csv:1: the header has no column 'tab'"):
        kuairand.prepare(kuairand.KuairandOptions(input=src, output=str(tmp_path / "o")), lambda m: None)
    assert not (tmp_path / "o").exists()


def test_default_max_bad_fraction_fails_and_writes_nothing(tmp_path):
    src = write_fixture(tmp_path / "in")
    with pytest.raises(PrepareError) as err:
        kuairand.prepare(kuairand.KuairandOptions(input=src, output=str(tmp_path / "o")), lambda m: None)
    msg = str(err.value)
    assert f"{TRAIN_FILE}: 2 of 7 lines (28.57%) are bad" in msg and f"{USER_FILE}: 1 of 3 lines" in msg
    assert "more than --max-bad-fraction 0.01" in msg and not (tmp_path / "o").exists()


def test_overwrite_rules(tmp_path):
    src = write_fixture(tmp_path / "in")
    out = tmp_path / "out"

    def run(output, **kw):
        return kuairand.prepare(kuairand.KuairandOptions(input=src, output=str(output), max_bad_fraction=0.5, **kw),
                                lambda m: None)

    run(out)
    with pytest.raises(PrepareError, match="is not empty; pass --overwrite"):
        run(out)
    (out / "marker").write_text("old")
    run(out, overwrite=True)
    assert not (out / "marker").exists() and (out / "spec.yaml").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(PrepareError, match="does not look like a previous 'msmt data prepare' output"):
        run(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(PrepareError, match="must not contain one another"):
        run(os.path.join(src, "out"))


def test_registered_in_the_adapter_table(tmp_path):
    from features.datasets import ADAPTERS, make_options, prepare

    assert ADAPTERS["kuairand"].specific_options == ("cache_size",)
    src = write_fixture(tmp_path / "in")
    s = prepare("kuairand", input=src, output=str(tmp_path / "o"), max_bad_fraction=0.5, echo=lambda m: None)
    assert s["dataset"] == "kuairand" and s["rows_written"] == {"train": 5, "test": 3}
    with pytest.raises(PrepareError, match="--test-day applies to alimama only, not to kuairand"):
        make_options("kuairand", input=src, output=str(tmp_path / "p"), test_day="2022-04-22")
    with pytest.raises(PrepareError, match="cache_size must be >= 1"):
        kuairand.KuairandOptions(input=src, output=str(tmp_path / "p"), cache_size=0)
