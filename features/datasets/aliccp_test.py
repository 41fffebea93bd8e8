"""Ali-CCP raw adapter on the hand-made fixture tests/data/raw/aliccp (see tests/data/README.md).

Expected numbers are derived by hand from the fixture lines (the README lists what each line is for).
"""

import csv
import os
import tracemalloc

import pytest

from features.datasets import aliccp
from features.datasets.common import BadLine, PrepareError
from features.datasets.testing import RAW, SHARED_DATA, check_output
from features.spec import resolve_spec

FIXTURE = os.path.join(RAW, "aliccp")
U1, U3 = "84dceed2e3ab8b6a", "c2d3e4f5a6b7c8d9"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("aliccp") / "out"
    messages = []
    aliccp.prepare(aliccp.AliccpOptions(input=FIXTURE, output=str(out), max_bad_fraction=0.5), messages.append)
    spec, summary, rows = check_output(str(out))
    return spec, summary, rows, messages


def test_counts(prepared):
    _, s, _, _ = prepared
    assert s["rows_read"] == {"common_features_train.csv": 6, "sample_skeleton_train.csv": 24,
                              "common_features_test.csv": 2, "sample_skeleton_test.csv": 8}
    assert s["rows_written"] == {"train": 13, "test": 8}
    assert s["rows_skipped"] == {"empty_id": 1, "label_out_of_range": 1, "malformed_feature_entry": 1,
                                 "malformed_line": 1, "missing_scenario": 1, "non_finite": 1,
                                 "purchase_without_click": 1, "unknown_common_feature_index": 2, "wrong_type": 3}
    assert s["bad_rows"] == 11 and s["bad_rows_by_file"]["common_features_train.csv"] == 1
    assert s["scenario_values"] == ["9351665", "9351666", "9351667"]
    assert s["scenarios"] == {"train": {"9351665": 7, "9351666": 4, "9351667": 2},
                              "test": {"9351665": 4, "9351666": 2, "9351667": 2}}
    assert s["labels"] == {"train": {"click": 5, "conversion": 2}, "test": {"click": 3, "conversion": 1}}
    extra = s["extra"]
    assert extra["truncated_multivalued"]["common_features_train.csv"] == {"109_14": 2, "127_14": 1}
    assert extra["truncated_multivalued"]["sample_skeleton_train.csv"] == {"508": 1}
    assert extra["duplicate_common_feature_index"] == {"common_features_train.csv": 1, "common_features_test.csv": 0}
    assert extra["feature_num_mismatch"]["sample_skeleton_train.csv"] == 1
    assert extra["common_features_indexed"] == {"common_features_train.csv": 4, "common_features_test.csv": 2}


def test_bad_lines_name_file_line_and_column(prepared):
    _, s, _, messages = prepared
    ex = s["bad_examples"]
    assert ex["wrong_type"] == [
        "common_features_train.csv:5: column '121': '12x' is not an integer (wrong_type)",
        "sample_skeleton_train.csv:16: column '206': '26x016' is not a valid int64 (wrong_type)",
        "sample_skeleton_train.csv:19: column 'sample_id': '1x9' is not an integer (wrong_type)"]
    assert ex["empty_id"] == ["sample_skeleton_train.csv:12: column '101': empty id (empty_id)"]
    assert ex["malformed_line"] == ["sample_skeleton_train.csv:15: 5 fields, expected 6 (sample_id,click,buy,"
                                    "common_feature_index,feature_num,feature_list) (malformed_line)"]
    assert ex["non_finite"] == ["sample_skeleton_train.csv:18: column 'D508': 'nan' is not a finite float32 "
                                "(non_finite)"]
    assert ex["unknown_common_feature_index"][1].startswith(
        "sample_skeleton_train.csv:14: column 'common_feature_index': 'ffffffffffffffff' is not in")
    assert ex["missing_scenario"] == ["sample_skeleton_train.csv:21: column '301': no scenario value "
                                      "(missing_scenario)"]
    assert any("bad line skipped: common_features_train.csv:5: column '121'" in m for m in messages)


def test_cells_and_the_user_join(prepared):
    _, _, rows, _ = prepared
    train = rows["train"]
    first = train[0]   # skeleton line 1, user U1
    assert (first["click"], first["purchase"], first["101"], first["121"], first["129"]) == ("0", "0", "31319",
                                                                                            "321", "329")
    assert (first["205"], first["206"], first["210"], first["301"]) == ("250001", "260001", "280001", "9351665")
    # multi-valued 109_14 / 127_14: first entry's id and value; single-valued 110_14 / 150_14
    assert (first["109_14"], first["D109_14"], first["127_14"], first["D127_14"]) == ("11001", "0.693147", "13001",
                                                                                      "0.5")
    assert (first["110_14"], first["D110_14"], first["150_14"], first["D150_14"]) == ("3110", "2.30259", "3150",
                                                                                      "1.79176")
    assert (first["508"], first["D508"], first["853"], first["D853"]) == ("5080001", "0.693147", "8530001",
                                                                          "2.30259")
    second = train[1]  # line 2: no cross fields -> empty cells
    assert [second[c] for c in ("508", "509", "702", "853", "D508", "D853")] == [""] * 6
    fourth = train[3]  # line 4: 508 has two entries, the first is kept
    assert (fourth["508"], fourth["D508"]) == ("5080004", "0.693147")
    u2 = train[4]      # line 5, user U2: no field 129 in its common line; 109_14 has two entries
    assert (u2["101"], u2["129"], u2["109_14"], u2["D109_14"]) == ("412797", "", "11004", "1.60944")
    u3 = [r for r in train if r["205"] == "250009"][0]   # line 9: U3, whose index also has a later duplicate line
    assert u3["101"] == "58821"
    no210 = [r for r in train if r["205"] == "250011"][0]
    assert no210["210"] == "" and no210["206"] == "260011"
    assert [r["205"] for r in train] == ["2500" + n for n in ("01", "02", "03", "04", "05", "06", "08", "09", "10",
                                                               "11", "22", "23", "24")]
    test = rows["test"]
    assert [r["101"] for r in test] == ["31319"] * 4 + ["600001"] * 4
    assert test[2]["click"] == "1" and test[2]["purchase"] == "1"


def test_columns_and_spec_agree_with_the_builtin_aliccp_spec(prepared):
    spec, summary, _, _ = prepared
    builtin = resolve_spec("aliccp")
    assert sorted(summary["columns"]) == sorted(builtin.raw_columns)
    assert [f.name for f in spec.features] == [f.name for f in builtin.features]
    assert [f.dtype for f in spec.features] == [f.dtype for f in builtin.features]
    roles = {f.name: (f.role, builtin.feature(f.name).role) for f in spec.features
             if f.role != builtin.feature(f.name).role}
    assert roles == {c: ("categorical", "numeric") for c in ("109_14", "110_14", "127_14", "150_14")}
    assert spec.labels.columns() == builtin.labels.columns() and spec.labels.requires_click == ("conversion",)
    assert dict(spec.priors) == dict(builtin.priors)


@pytest.mark.parametrize("name", ["aliccp_rawid_train.csv", "ali_ccp_train_sample.csv"])
def test_columns_agree_with_the_shared_samples(prepared, name):
    path = os.path.join(SHARED_DATA, "aliccp", name)
    if not os.path.exists(path):
        pytest.skip(f"public samples not found in {SHARED_DATA} (../shared/data is absent): no {name}")
    with open(path, newline="") as fh:
        shared = next(csv.reader(fh))
    header = prepared[1]["columns"]
    if name.startswith("aliccp_rawid"):   # the same data with raw ids, without 210 and the numeric columns
        assert [c for c in header if c in shared] == shared and len(shared) == 20
    else:                                 # the preprocessed sample: exactly our columns, in our order
        assert shared == header


def test_default_max_bad_fraction_fails_and_writes_nothing(tmp_path):
    with pytest.raises(PrepareError) as err:
        aliccp.prepare(aliccp.AliccpOptions(input=FIXTURE, output=str(tmp_path / "o")), lambda m: None)
    msg = str(err.value)
    assert "sample_skeleton_train.csv: 10 of 24 lines (41.67%) are bad" in msg
    assert "common_features_train.csv: 1 of 6 lines (16.67%) are bad" in msg
    assert "more than --max-bad-fraction 0.01" in msg and not (tmp_path / "o").exists()


def test_missing_file_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("sample_skeleton_train.csv", "common_features_train.csv", "sample_skeleton_test.csv"):
        os.symlink(os.path.join(FIXTURE, name), tmp_path / "in" / name)
    with pytest.raises(PrepareError, match="no common_features_test.csv"):
        aliccp.prepare(aliccp.AliccpOptions(input=str(tmp_path / "in"), output=str(tmp_path / "o")), lambda m: None)


def test_first_entries():
    found, multi = aliccp.first_entries("127_14\x0213\x030.5\x01127\x027\x031.0\x01127_14\x0214\x030.2",
                                        ("127", "127_14", "301"))
    assert found == {"127": ("7", "1.0"), "127_14": ("13", "0.5")} and multi == ["127_14"]
    with pytest.raises(BadLine) as err:
        aliccp.first_entries("205\x0212", ("205",))
    assert err.value.reason == "malformed_feature_entry" and err.value.column == "205"


def _synthetic_raw(root, users, entries_per_user=60):
    """Raw Ali-CCP files with ``users`` page views (one sample each) and long behaviour lists."""
    root.mkdir()
    for split in ("train", "test"):
        with open(root / f"common_features_{split}.csv", "w") as common_fh, \
                open(root / f"sample_skeleton_{split}.csv", "w") as sk_fh:
            for u in range(users if split == "train" else 3):
                idx = f"{u:016x}"
                entries = [f"101\x02{u}\x031.0"] + [f"{f}\x02{u % 97}\x031.0" for f in aliccp.USER_FIELDS[1:9]]
                entries += [f"109_14\x02{u * 100 + k}\x030.5" for k in range(entries_per_user)]
                common_fh.write(f"{idx},{len(entries)},{chr(1).join(entries)}\n")
                item = [f"205\x02{u}\x031.0", f"206\x02{u % 50}\x031.0", f"301\x02{1 + u % 3}\x031.0"]
                sk_fh.write(f"{u + 1},{u % 2},0,{idx},{len(item)},{chr(1).join(item)}\n")


def _peak_python_mb(tmp_path, users):
    root = tmp_path / f"raw{users}"
    _synthetic_raw(root, users)
    tracemalloc.start()
    try:
        summary = aliccp.prepare(aliccp.AliccpOptions(input=str(root), output=str(tmp_path / f"out{users}"),
                                                      cache_size=100), lambda m: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary["rows_written"]["train"] == users
    return peak / 2 ** 20, summary


def test_join_memory_does_not_grow_with_the_number_of_page_views(tmp_path):
    """The common features are indexed on disk: 10x more page views must not raise the Python heap peak.
    (Held in memory - e.g. with a cache as large as the index - 9,000 more page views add about 6 MB.)"""
    small, _ = _peak_python_mb(tmp_path, 1_000)
    large, summary = _peak_python_mb(tmp_path, 10_000)
    print(f"Python heap peak: {small:.2f} MB with 1,000 page views, {large:.2f} MB with 10,000")
    assert large - small < 1.5, (small, large)
    assert summary["extra"]["truncated_multivalued"]["common_features_train.csv"] == {"109_14": 10_000}
    assert summary["extra"]["scratch_db_mb"]["train"] > 0.5   # the index is on disk
