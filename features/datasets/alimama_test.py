"""Ali-mama adapter on the hand-made fixture tests/data/raw/alimama (see tests/data/README.md).

The fixture's raw_sample.csv lines 2-21 each test one labelling or split rule (the README and the comments
below say which); lines 22-27 are bad lines. Times are UTC+8.
"""

import datetime
import os
import shutil

import pytest

from features.datasets import alimama
from features.datasets.common import PrepareError
from features.datasets.testing import RAW, check_output

FIXTURE = os.path.join(RAW, "alimama")
TZ = datetime.timezone(datetime.timedelta(hours=8))


def T(month, day, hh=0, mm=0, ss=0):
    return str(int(datetime.datetime(2017, month, day, hh, mm, ss, tzinfo=TZ).timestamp()))


def _run(tmp_path, name="out", input_dir=FIXTURE, **kw):
    kw.setdefault("max_bad_fraction", 0.5)
    out = tmp_path / name
    alimama.prepare(alimama.AlimamaOptions(input=str(input_dir), output=str(out), **kw), lambda m: None)
    return check_output(str(out))


def _labels(rows):
    """(user, time_stamp, adgroup_id) -> (click, raction, conversion) of every written row."""
    return {(r["user"], r["time_stamp"], r["adgroup_id"]): (r["click"], r.get("raction"), r["conversion"])
            for split in rows.values() for r in split}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("alimama"))


def test_counts(prepared):
    _, s, _ = prepared
    assert s["rows_read"] == {"ad_feature.csv": 7, "user_profile.csv": 5, "behavior_log.csv": 20,
                              "raw_sample.csv": 28}
    assert s["rows_written"] == {"train": 15, "test": 6}
    assert s["rows_skipped"] == {"after_test_day": 1, "inconsistent_labels": 1, "label_out_of_range": 1,
                                 "malformed_line": 2, "unknown_adgroup_id": 2, "unknown_btag": 1, "wrong_type": 2}
    assert s["bad_rows_by_file"] == {"ad_feature.csv": 1, "user_profile.csv": 0, "behavior_log.csv": 2,
                                     "raw_sample.csv": 6}
    assert s["scenario_values"] == ["0", "1", "2", "3", "4"]
    assert s["scenarios"] == {"train": {"0": 4, "1": 3, "2": 3, "3": 3, "4": 2},
                              "test": {"0": 2, "1": 1, "2": 1, "3": 1, "4": 1}}
    assert s["labels"] == {"train": {"click": 5, "conversion": 4, "conversion_without_click": 3, "raction": 2},
                           "test": {"click": 2, "conversion": 1}}
    extra = s["extra"]
    assert extra["behavior_events_kept"] == {"buy": 6, "cart": 1, "fav": 2}
    assert extra["behavior_lines_dropped"] == {"cate_brand_of_no_ad": 1, "no_brand": 1, "outside_time_range": 1,
                                               "pv": 5, "user_without_impressions": 1}
    assert (extra["impressions_without_profile"], extra["impressions_of_ads_without_brand"]) == (2, 2)
    assert extra["rows_per_day_utc8"]["2017-05-12"] == 1 and extra["rows_per_day_utc8"]["2017-05-13"] == 6
    assert s["bad_examples"]["inconsistent_labels"] == [
        "raw_sample.csv:25: column 'nonclk': nonclk='1' with clk='1': nonclk must be 1 - clk (inconsistent_labels)"]
    assert s["bad_examples"]["unknown_adgroup_id"][1] == ("raw_sample.csv:27: column 'adgroup_id': '700001' is not "
                                                          "in ad_feature.csv (unknown_adgroup_id)")
    assert s["bad_examples"]["wrong_type"][0] == ("ad_feature.csv:8: column 'price': 'free' is not a number "
                                                  "(wrong_type)")
    assert s["bad_examples"]["unknown_btag"] == ["behavior_log.csv:20: column 'btag': 'click' is not one of pv, "
                                                 "cart, fav, buy (unknown_btag)"]


def test_conversion_window_and_raction_edges(prepared):
    labels = _labels(prepared[2])
    expect = {
        ("234", T(5, 6, 10), "63133"): ("0", "0", "1"),    # buy exactly 24 h later: converts, without a click
        ("234", T(5, 6, 12), "63133"): ("1", "1", "1"),    # the same buy 22 h later; cart 30 min after the click
        ("523", T(5, 7, 9), "313401"): ("0", "0", "0"),    # buy 24 h + 1 s later: outside the window
        ("523", T(5, 8, 8), "63133"): ("0", "0", "0"),     # buy 1 h later of the same cate, another brand
        ("612", T(5, 8, 10, 30), "208458"): ("0", "0", "0"),  # a buy of this (cate, brand) by another user
        ("523", T(5, 8, 10), "208458"): ("0", "0", "1"),   # own buy 1 h later; a fav, but no click: raction 0
        ("612", T(5, 9, 12), "110847"): ("1", "0", "0"),   # buy 1 s before the impression
        ("234", T(5, 9, 10), "248909"): ("1", "0", "0"),   # ad brand NULL: (cate, brand) never matches
        ("2545", T(5, 10, 8), "607788"): ("0", "0", "1"),  # buy in the same second
        ("2545", T(5, 11, 9), "110847"): ("1", "1", "0"),  # fav 10 min after a click
        ("234", T(5, 13, 8), "208458"): ("1", "0", "1"),   # test day, buy 12 h later
    }
    assert {k: labels[k] for k in expect} == expect


def test_split_profile_and_cells(prepared):
    spec, _, rows = prepared
    train, test = rows["train"], rows["test"]
    last_train = [r for r in train if r["time_stamp"] == T(5, 12, 23, 59, 59)]
    first_test = [r for r in test if r["time_stamp"] == T(5, 13)]
    assert len(last_train) == 1 and len(first_test) == 1
    assert (last_train[0]["hour"], first_test[0]["hour"]) == ("23", "0")
    assert all(r["time_stamp"] < T(5, 13) for r in train) and all(r["time_stamp"] >= T(5, 13) for r in test)
    first = train[0]
    assert first == {"user": "234", "cms_segid": "0", "cms_group_id": "5", "final_gender_code": "2",
                     "age_level": "5", "pvalue_level": "", "shopping_level": "3", "occupation": "0",
                     "city_level": "3", "adgroup_id": "63133", "cate_id": "6406", "campaign_id": "83237",
                     "customer": "1", "brand": "95471", "price": "170.0", "pid": "430548_1007", "hour": "10",
                     "time_stamp": T(5, 6, 10), "click": "0", "raction": "0", "conversion": "1"}
    no_profile = [r for r in train if r["user"] == "9999"][0]
    assert [no_profile[c] for c in alimama.PROFILE_FEATURES] == [""] * 7 and no_profile["city_level"] == "0"
    empty_city = [r for r in train if r["user"] == "612"][0]
    assert (empty_city["city_level"], empty_city["pvalue_level"]) == ("0", "2")
    no_brand = [r for r in train if r["adgroup_id"] == "248909"][0]
    assert (no_brand["brand"], no_brand["price"]) == ("", "32.99")
    with open(os.path.join(FIXTURE, "user_profile.csv")) as fh:
        assert fh.readline().rstrip("\n").endswith("new_user_class_level ")   # the released trailing space
    assert spec.labels.raction == "raction" and spec.labels.requires_click == ("raction",)
    assert spec.timestamp == "time_stamp" and spec.feature("price").transform == "log1p_zscore"
    assert dict(spec.priors) == {
        "user": ("user",) + alimama.PROFILE_FEATURES,
        "item": ("adgroup_id", "cate_id", "brand", "campaign_id", "customer", "price"),
        "scenario": ("city_level", "pid")}


@pytest.mark.parametrize("hours,expect", [
    # 22 h: the buy 24 h after line 2 is now outside; the one exactly 22 h after line 3 still inside
    (22, {("234", T(5, 6, 10)): "0", ("234", T(5, 6, 12)): "1", ("523", T(5, 7, 9)): "0"}),
    # 24 h + 1 s: the buy 24 h + 1 s after line 4 is now inside
    (24 + 1 / 3600, {("234", T(5, 6, 10)): "1", ("234", T(5, 6, 12)): "1", ("523", T(5, 7, 9)): "1"}),
])
def test_conversion_window_option(tmp_path, hours, expect):
    _, s, rows = _run(tmp_path, conversion_window_hours=hours)
    conv = {(r["user"], r["time_stamp"]): r["conversion"] for r in rows["train"]}
    assert {k: conv[k] for k in expect} == expect
    assert s["extra"]["conversion_window_hours"] == hours


def test_test_day_option(tmp_path):
    _, s, rows = _run(tmp_path, test_day="2017-05-12")
    assert s["rows_written"] == {"train": 14, "test": 1} and s["rows_skipped"]["after_test_day"] == 7
    assert rows["test"][0]["time_stamp"] == T(5, 12, 23, 59, 59)
    with pytest.raises(PrepareError, match="--test-day must be a date YYYY-MM-DD"):
        alimama.AlimamaOptions(input="a", output="b", test_day="13/05/2017")
    with pytest.raises(PrepareError, match="--conversion-window-hours must be > 0"):
        alimama.AlimamaOptions(input="a", output="b", conversion_window_hours=0)


def _input_with_buy_column(tmp_path, with_log):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("ad_feature.csv", "user_profile.csv") + (("behavior_log.csv",) if with_log else ()):
        shutil.copy(os.path.join(FIXTURE, name), src / name)
    (src / "raw_sample.csv").write_text(
        "user,time_stamp,adgroup_id,pid,nonclk,clk,buy\n"
        f"234,{T(5, 6, 12)},63133,430548_1007,0,1,0\n"     # the log has a buy 22 h later: ignored
        f"523,{T(5, 7, 9)},313401,430539_1007,1,0,1\n"     # a view-through buy from the column
        f"612,{T(5, 13, 1)},208458,430548_1007,0,1,1\n")
    return src


def test_buy_column_of_a_processed_release(tmp_path):
    spec, s, rows = _run(tmp_path, input_dir=_input_with_buy_column(tmp_path, with_log=False))
    assert spec.labels.raction is None and "raction" not in s["columns"]
    assert [r["conversion"] for r in rows["train"]] == ["0", "1"] and rows["test"][0]["conversion"] == "1"
    assert s["extra"]["conversion_source"] == "buy column" and s["extra"]["raction"] is False
    assert s["labels"]["train"] == {"click": 1, "conversion": 1, "conversion_without_click": 1}


def test_buy_column_with_a_behaviour_log_takes_raction_from_the_log(tmp_path):
    _, s, rows = _run(tmp_path, input_dir=_input_with_buy_column(tmp_path, with_log=True))
    assert [(r["click"], r["raction"], r["conversion"]) for r in rows["train"]] == [("1", "1", "0"),
                                                                                      ("0", "0", "1")]
    assert s["extra"]["conversion_source"] == "buy column" and s["extra"]["raction"] is True


def test_neither_buy_column_nor_behaviour_log_says_what_to_provide(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("raw_sample.csv", "ad_feature.csv", "user_profile.csv"):
        shutil.copy(os.path.join(FIXTURE, name), src / name)
    with pytest.raises(PrepareError, match=r"raw_sample.csv has no buy column and there is no behavior_log.csv.*"
                                           r"Provide behavior_log.csv \(user,time_stamp,btag,cate,brand\)"):
        alimama.prepare(alimama.AlimamaOptions(input=str(src), output=str(tmp_path / "o")), lambda m: None)
    (src / "user_profile.csv").write_text("userid,cms_segid\n1,2\n")
    (src / "raw_sample.csv").write_text("user,time_stamp,adgroup_id,pid,nonclk,clk,buy\n")
    with pytest.raises(PrepareError, match="user_profile.csv:1: the header has no column 'cms_group_id'"):
        alimama.prepare(alimama.AlimamaOptions(input=str(src), output=str(tmp_path / "o")), lambda m: None)
    assert not (tmp_path / "o").exists()
