"""Shared adapter machinery: staged (atomic) output, overwrite rules, bad-line accounting, the written spec.

:func:`~features.datasets.testing.check_output` is the check every adapter test applies to what it wrote: the spec loads, its columns are
exactly the header, every row passes the pipeline's row checker (0 bad rows), and the summary's counts are the
rows in the files.
"""

import gzip
import os

import pytest

from features.datasets import aliexpress, common
from features.datasets.common import PrepareError
from features.datasets.testing import RAW, check_output
from features.spec import load_spec

def _ali_options(tmp_path, out, **kw):
    kw.setdefault("max_bad_fraction", 0.5)
    return aliexpress.AliExpressOptions(input=os.path.join(RAW, "aliexpress"), output=str(out), **kw)


def test_output_appears_only_at_the_end_under_a_hidden_staging_name(tmp_path):
    out = tmp_path / "out"
    seen = []

    def echo(msg):
        seen.append((msg, out.exists(), sorted(p.name for p in tmp_path.iterdir())))

    aliexpress.prepare(_ali_options(tmp_path, out, progress_every=1), echo)
    during = [s for s in seen[:-1]]
    assert during and all(not exists for _, exists, _ in during)
    assert all(len(names) == 1 and names[0].startswith(".out.partial-") for _, _, names in during)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]           # staging renamed, nothing left
    assert sorted(os.listdir(out)) == ["prepare_summary.json", "spec.yaml", "test", "train"]
    assert any("rows read" in msg and "rows/s" in msg for msg, _, _ in seen)  # progress lines


def test_a_failing_run_leaves_no_output_and_keeps_an_old_one(tmp_path):
    out = tmp_path / "out"
    aliexpress.prepare(_ali_options(tmp_path, out), lambda m: None)
    before = (out / "train" / "impressions.csv").read_text()
    with pytest.raises(PrepareError, match="more than --max-bad-fraction 0.01"):
        aliexpress.prepare(_ali_options(tmp_path, out, overwrite=True, max_bad_fraction=0.01), lambda m: None)
    assert (out / "train" / "impressions.csv").read_text() == before    # the old output is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]          # no staging directory left
    new = tmp_path / "new"
    with pytest.raises(PrepareError):
        aliexpress.prepare(_ali_options(tmp_path, new, max_bad_fraction=0.0), lambda m: None)
    assert not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_rules(tmp_path):
    out = tmp_path / "out"
    aliexpress.prepare(_ali_options(tmp_path, out), lambda m: None)
    with pytest.raises(PrepareError, match="is not empty; pass --overwrite"):
        aliexpress.prepare(_ali_options(tmp_path, out), lambda m: None)
    (out / "marker").write_text("old")
    aliexpress.prepare(_ali_options(tmp_path, out, overwrite=True), lambda m: None)
    assert not (out / "marker").exists() and (out / "spec.yaml").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(PrepareError, match="does not look like a previous 'msmt data prepare' output"):
        aliexpress.prepare(_ali_options(tmp_path, other, overwrite=True), lambda m: None)
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    aliexpress.prepare(_ali_options(tmp_path, empty), lambda m: None)   # an empty directory is fine
    with pytest.raises(PrepareError, match="must not contain one another"):
        aliexpress.prepare(aliexpress.AliExpressOptions(input=str(tmp_path), output=str(tmp_path / "x")),
                           lambda m: None)


def test_bad_share_is_per_input_file_and_the_error_names_file_line_column(tmp_path):
    # 4 bad lines: NL train 2 of 8 (25%), ES train 1 of 5 (20%), fr_train 1 of 4 (25%); the others are clean.
    with pytest.raises(PrepareError) as err:
        aliexpress.prepare(_ali_options(tmp_path, tmp_path / "o", max_bad_fraction=0.22), lambda m: None)
    msg = str(err.value)
    assert "AliExpress_NL/train.csv: 2 of 8 lines (25.00%) are bad" in msg
    assert "fr_train.csv: 1 of 4 lines (25.00%) are bad" in msg and "ES/train.csv: 1" not in msg
    assert "AliExpress_NL/train.csv:7: column 'categorical_3': 'abc' is not a valid int64 (wrong_type)" in msg
    summary = aliexpress.prepare(_ali_options(tmp_path, tmp_path / "o", max_bad_fraction=0.25), lambda m: None)
    assert summary["bad_rows_by_file"] == {"AliExpress_NL/test.csv": 0, "AliExpress_NL/train.csv": 2,
                                           "ES/test.csv": 0, "ES/train.csv": 1, "fr_test.csv": 0,
                                           "fr_train.csv": 1}


def test_a_mostly_bad_input_stops_early(tmp_path):
    src = tmp_path / "in" / "NL"
    src.mkdir(parents=True)
    header = open(os.path.join(RAW, "aliexpress", "fr_train.csv")).readline()
    (src / "train.csv").write_text(header + "1,2,3\n" * (common.EARLY_ABORT_ROWS + 5))
    (src / "test.csv").write_text(header)
    lines = []
    with pytest.raises(PrepareError, match="stopped early.*is this the right input format"):
        aliexpress.prepare(aliexpress.AliExpressOptions(input=str(tmp_path / "in"), output=str(tmp_path / "o")),
                           lines.append)
    assert sum("bad line skipped" in m for m in lines) == common.PRINTED_BAD_LINES
    assert not (tmp_path / "o").exists()


def test_options_are_validated():
    with pytest.raises(PrepareError, match="--max-bad-fraction must be in"):
        common.PrepareOptions(input="a", output="b", max_bad_fraction=1.5)
    with pytest.raises(PrepareError, match="--progress-every"):
        common.PrepareOptions(input="a", output="b", progress_every=0)


def test_write_spec_quotes_numeric_names_and_round_trips(tmp_path):
    spec = {"name": "t", "features": [{"name": "301", "role": "scenario", "dtype": "int64", "values": ["1", "2"]},
                                      {"name": "yes", "role": "categorical"}],
            "labels": {"click": "click", "conversion": "on"}, "timestamp": "ts"}
    path = tmp_path / "s.yaml"
    common.write_spec(str(path), spec, "line one\nline two")
    text = path.read_text()
    assert text.startswith("# line one\n# line two\nname: t\n")
    loaded = load_spec(str(path))
    assert [f.name for f in loaded.features] == ["301", "yes"] and loaded.scenario.values == ("1", "2")
    assert loaded.labels.conversion == "on" and loaded.timestamp == "ts"


def test_sort_values_numeric_when_all_integers():
    assert common.sort_values(["10", "9", "0"]) == ["0", "9", "10"]
    assert common.sort_values(["NL", "ES", "US"]) == ["ES", "NL", "US"]


def test_find_input_file_in_a_subdirectory_and_gzip(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.csv.gz").write_bytes(b"")
    assert common.find_input_file(str(tmp_path), "a.csv") == str(tmp_path / "sub" / "a.csv.gz")
    assert common.find_input_file(str(tmp_path), "b.csv", required=False) is None
    with pytest.raises(PrepareError, match="no b.csv"):
        common.find_input_file(str(tmp_path), "b.csv")
    (tmp_path / "a.csv").write_text("")
    with pytest.raises(PrepareError, match="more than once"):
        common.find_input_file(str(tmp_path), "a.csv")


def test_gzip_crlf_bom_and_non_utf8_input(tmp_path):
    src = tmp_path / "in" / "AliExpress_NL"
    src.mkdir(parents=True)
    text = open(os.path.join(RAW, "aliexpress", "fr_train.csv")).read()     # 4 lines, line 3 has click=2
    with gzip.open(src / "train.csv.gz", "wt") as fh:
        fh.write(text)
    lines = open(os.path.join(RAW, "aliexpress", "fr_test.csv")).read().splitlines()
    raw = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
    raw = raw.replace(b",0,0\r\n", b",0,\xff\r\n", 1)                      # test line 2: a non-UTF-8 label
    (src / "test.csv").write_bytes(raw)
    s = aliexpress.prepare(aliexpress.AliExpressOptions(input=str(tmp_path / "in"), output=str(tmp_path / "o"),
                                                        max_bad_fraction=0.5), lambda m: None)
    assert s["rows_read"] == {"AliExpress_NL/test.csv": 2, "AliExpress_NL/train.csv.gz": 4}
    assert s["rows_written"] == {"train": 3, "test": 1}
    assert s["bad_examples"]["wrong_type"] == ["AliExpress_NL/test.csv:2: column 'conversion': '\ufffd' is not a "
                                               "valid int64 (wrong_type)"]
    check_output(str(tmp_path / "o"))
