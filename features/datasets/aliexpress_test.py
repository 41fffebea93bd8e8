"""AliExpress adapter on the hand-made fixture tests/data/raw/aliexpress and on the shared real samples.

Fixture (see tests/data/README.md): AliExpress_NL/{train,test}.csv, ES/{train,test}.csv, fr_{train,test}.csv;
4 bad lines: NL train line 5 (81 fields), NL train line 7 (categorical_3 = abc), ES train line 4
(numerical_5 = nan), fr_train line 3 (click = 2).
"""

import os
import shutil

import pytest

from features.datasets import aliexpress
from features.datasets.common import PrepareError
from features.datasets.testing import RAW, SHARED_DATA, check_output

FIXTURE = os.path.join(RAW, "aliexpress")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("aliexpress") / "out"
    aliexpress.prepare(aliexpress.AliExpressOptions(input=FIXTURE, output=str(out), max_bad_fraction=0.5),
                       lambda m: None)
    return check_output(str(out))


def test_counts(prepared):
    _, s, _ = prepared
    assert s["rows_read"] == {"AliExpress_NL/test.csv": 3, "AliExpress_NL/train.csv": 8, "ES/test.csv": 2,
                              "ES/train.csv": 5, "fr_test.csv": 2, "fr_train.csv": 4}
    assert s["rows_written"] == {"train": 13, "test": 7}
    assert s["rows_skipped"] == {"label_out_of_range": 1, "malformed_line": 1, "non_finite": 1, "wrong_type": 1}
    assert s["scenario_values"] == ["ES", "FR", "NL"]
    assert s["scenarios"] == {"train": {"ES": 4, "FR": 3, "NL": 6}, "test": {"ES": 2, "FR": 2, "NL": 3}}
    assert s["labels"] == {"train": {"click": 6, "conversion": 2},
                           "test": {"click": 4, "conversion": 2, "conversion_without_click": 1}}
    assert s["bad_examples"]["malformed_line"] == ["AliExpress_NL/train.csv:5: 81 fields, the header has 82 "
                                                   "(malformed_line)"]
    assert s["bad_examples"]["non_finite"] == ["ES/train.csv:4: column 'numerical_5': 'nan' is not a finite "
                                               "float32 (non_finite)"]
    assert s["bad_examples"]["label_out_of_range"] == ["fr_train.csv:3: column 'click': label '2' is not 0 or 1 "
                                                       "(label_out_of_range)"]


def test_cells_and_spec(prepared):
    spec, s, rows = prepared
    assert s["columns"][:3] == ["country", "search_id", "categorical_1"] and len(s["columns"]) == 83
    first = rows["train"][0]   # ES train line 2 (files in the order country, split, name)
    assert (first["country"], first["search_id"], first["click"]) == ("ES", "2001", "0")
    nl = [r for r in rows["train"] if r["country"] == "NL"]
    assert [r["search_id"] for r in nl] == ["1001", "1001", "1001", "1002", "1003", "1004"]
    assert (nl[0]["categorical_2"], nl[0]["numerical_63"], nl[0]["click"]) == ("12", "0.5", "1")
    assert spec.scenario.name == "country" and spec.scenario.dtype == "string"
    assert spec.request_id == "search_id" and dict(spec.priors) == {"scenario": ("country",)}
    assert len(spec.by_role("categorical")) == 16 and len(spec.by_role("numeric")) == 63


def test_shared_real_samples_in_place(tmp_path):
    src = os.path.join(SHARED_DATA, "aliexpress")
    if not os.path.isdir(src):
        pytest.skip(f"public samples not found in {SHARED_DATA} (../shared/data is absent)")
    with pytest.raises(PrepareError, match="aliexpress_test_sample.csv: cannot tell its country.*--country"):
        aliexpress.prepare(aliexpress.AliExpressOptions(input=src, output=str(tmp_path / "o")), lambda m: None)
    aliexpress.prepare(aliexpress.AliExpressOptions(input=src, output=str(tmp_path / "o"), country="nl"),
                       lambda m: None)
    spec, s, rows = check_output(str(tmp_path / "o"))
    assert s["rows_read"] == {"aliexpress_test_sample.csv": 20, "aliexpress_train_sample.csv": 100}
    assert s["rows_written"] == {"train": 100, "test": 20} and s["bad_rows"] == 0
    assert s["scenarios"] == {"train": {"NL": 100}, "test": {"NL": 20}}
    assert s["labels"] == {"train": {"click": 60, "conversion": 2}, "test": {"click": 10, "conversion": 2}}
    assert rows["train"][0]["search_id"] == "81" and rows["train"][0]["categorical_1"] == "9"


@pytest.mark.parametrize("relpath,country", [
    ("AliExpress_US/train.csv", "US"), ("us/test.csv", "US"), ("ru_train.csv", "RU"),
    ("data/AliExpress_ES/x_test.csv", "ES"), ("FR_data/train_part1.csv", "FR"),
])
def test_country_and_split_from_the_path(tmp_path, relpath, country):
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("search_id,click,conversion\n")
    (f,) = aliexpress.discover(str(tmp_path))
    assert (f.country, f.split, f.display) == (country, "test" if "test" in relpath else "train", relpath)


def test_country_option_and_conflicts(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(os.path.join(FIXTURE, "fr_test.csv"), single / "test.csv")
    shutil.copy(os.path.join(FIXTURE, "fr_train.csv"), single / "train.csv")
    (single / "notes.csv").write_text("not data\n")   # neither train nor test: ignored
    s = aliexpress.prepare(aliexpress.AliExpressOptions(input=str(single), output=str(tmp_path / "o"),
                                                        country="us", max_bad_fraction=0.3), lambda m: None)
    assert s["scenarios"] == {"train": {"US": 3}, "test": {"US": 2}}
    with pytest.raises(PrepareError, match="fr_test.csv: its path names country FR, but --country is US"):
        aliexpress.discover(FIXTURE, "US")
    with pytest.raises(PrepareError, match="2-letter country code"):
        aliexpress.AliExpressOptions(input="a", output="b", country="Holland")
    with pytest.raises(PrepareError, match="no CSV file named"):   # a prepared output is not an input
        aliexpress.discover(str(tmp_path / "o"))


def test_header_problems_name_the_file(tmp_path):
    src = tmp_path / "in" / "NL"
    src.mkdir(parents=True)
    shutil.copy(os.path.join(FIXTURE, "fr_train.csv"), src / "train.csv")
    options = aliexpress.AliExpressOptions(input=str(tmp_path / "in"), output=str(tmp_path / "o"))
    (src / "test.csv").write_text("search_id,categorical_1,click,conversion\n1,2,0,0\n")
    with pytest.raises(PrepareError, match=r"NL/train.csv:1: its header differs from the one of NL/test.csv"):
        aliexpress.prepare(options, lambda m: None)
    (src / "test.csv").write_text("search_id,price,click,conversion\n")
    with pytest.raises(PrepareError, match="NL/test.csv:1: unexpected column 'price'"):
        aliexpress.prepare(options, lambda m: None)
    (src / "test.csv").write_text("search_id,categorical_1,conversion\n")
    with pytest.raises(PrepareError, match="NL/test.csv:1: the header has no column 'click'"):
        aliexpress.prepare(options, lambda m: None)
    assert not (tmp_path / "o").exists()
