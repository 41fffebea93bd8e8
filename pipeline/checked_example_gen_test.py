"""The checked CSV ExampleGen on the hand-made corrupted log ``tests/data/corrupted_impressions.csv``.

The fixture holds 30 good rows of the synthetic generator and 16 bad rows, 2-3 of each kind (see
``tests/data/README.md``). The executor runs in-process on Beam's DirectRunner.
"""

import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from features.spec import resolve_spec
from pipeline import checked_example_gen as ceg

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                       "corrupted_impressions.csv")
EXPECTED_BAD = {"malformed_line": 3, "wrong_type": 3, "non_finite": 2, "empty_id": 2, "missing_label": 2,
                "label_out_of_range": 2, "impossible_labels": 2}
TOTAL_ROWS = 46


def _run(tmp_path, max_bad_fraction, shuffle=True):
    data = tmp_path / "data"
    data.mkdir(parents=True)
    shutil.copy(FIXTURE, data / "impressions.csv")
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split",
                                                                             pattern="*.csv")])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=4),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)]))
    exec_properties = {
        "input_base": str(data),
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "custom_config": proto_utils.proto_to_json(
            ceg.make_custom_config(resolve_spec("synthetic"), max_bad_fraction, shuffle)),
    }
    ceg.Executor().Do({}, {"examples": [examples]}, exec_properties)
    return examples


def _examples(uri):
    records = []
    for split in ("train", "eval"):
        d = os.path.join(uri, f"Split-{split}")
        for name in os.listdir(d):
            records += [tf.train.Example.FromString(r.numpy())
                        for r in tf.data.TFRecordDataset(os.path.join(d, name), compression_type="GZIP")]
    return records


def test_bad_rows_are_counted_per_kind_quarantined_and_the_good_rows_kept(tmp_path):
    examples = _run(tmp_path, max_bad_fraction=0.5)
    q = ceg.read_quarantine(examples.uri)
    assert q["bad"] == EXPECTED_BAD
    assert q["total"] == TOTAL_ROWS and q["bad_total"] == 16
    assert q["good"] == TOTAL_ROWS - q["bad_total"] == 30
    records = _examples(examples.uri)
    assert len(records) == 30
    assert examples.get_int_custom_property("bad_rows") == 16
    assert examples.get_int_custom_property("bad_rows_non_finite") == 2
    # typed by the spec: ids bytes, labels and categoricals int64, numerics float32; the extras kept
    f = records[0].features.feature
    assert f["user_id"].bytes_list.value and f["click"].int64_list.value and f["user_age"].int64_list.value
    assert f["item_price"].float_list.value and f["p_click"].float_list.value and f["ts"].int64_list.value

    bad = [json.loads(line) for p in q["bad_rows_files"] for line in open(p) if line.strip()]
    assert len(bad) == 16
    by_kind = {}
    for r in bad:
        by_kind.setdefault(r["kind"], []).append(r)
    # file, row, line, column and value of each kind (row numbers as in the fixture, header = line 1)
    assert [(r["row"], r["line"]) for r in by_kind["malformed_line"]] == [(3, 4), (6, 7), (9, 10)]
    assert all(r["file"].endswith("impressions.csv") for r in bad)
    assert [(r["column"], r["value"]) for r in by_kind["wrong_type"]] == [
        ("user_age", "abc"), ("item_price", "12,5"), ("hour", "7.5")]
    assert [p["kind"] for p in by_kind["wrong_type"][2]["problems"]] == ["wrong_type", "missing_label"]
    assert [(r["column"], r["value"]) for r in by_kind["non_finite"]] == [("item_price", "nan"),
                                                                           ("user_activity", "inf")]
    assert [r["column"] for r in by_kind["empty_id"]] == ["user_id", "item_id"]
    assert [r["column"] for r in by_kind["missing_label"]] == ["click", "conversion"]
    assert [(r["column"], r["value"]) for r in by_kind["label_out_of_range"]] == [("click", "2"),
                                                                                   ("conversion", "-1")]
    assert [(r["column"], r["value"]) for r in by_kind["impossible_labels"]] == [("action", "action=1, click=0")] * 2
    assert all(r["raw"] for r in bad)
    text = ceg.describe(q)
    assert "16 bad rows of 46" in text and "column 'user_age': 'abc'" in text


def test_reading_in_many_small_blocks_gives_the_same_examples_splits_and_quarantine(tmp_path, monkeypatch):
    """Blocks of ~5 lines: rows, line numbers and splits do not depend on where the blocks end."""
    whole = _run(tmp_path / "whole", max_bad_fraction=0.5)
    monkeypatch.setattr(ceg, "BLOCK_BYTES", 700)
    blocks = _run(tmp_path / "blocks", max_bad_fraction=0.5)
    quarantined = [[dict(json.loads(line), file=None) for p in ceg.read_quarantine(x.uri)["bad_rows_files"]
                    for line in open(p)] for x in (whole, blocks)]
    assert quarantined[0] == quarantined[1] and len(quarantined[0]) == 16
    for split in ("train", "eval"):
        assert sorted(_split_records(whole.uri, split)) == sorted(_split_records(blocks.uri, split))


def _split_records(uri, split):
    d = os.path.join(uri, f"Split-{split}")
    return [r.numpy() for name in sorted(os.listdir(d))
            for r in tf.data.TFRecordDataset(os.path.join(d, name), compression_type="GZIP")]


def test_without_shuffle_the_splits_keep_reading_order_and_the_same_rows(tmp_path):
    from tfx.components.example_gen import write_split

    original = write_split.WriteSplit
    shuffled = _run(tmp_path / "shuffled", max_bad_fraction=0.5, shuffle=True)
    in_order = _run(tmp_path / "in_order", max_bad_fraction=0.5, shuffle=False)
    assert write_split.WriteSplit is original  # the in-order writer is swapped in only during Do
    assert ceg.read_quarantine(in_order.uri)["bad"] == EXPECTED_BAD
    for split in ("train", "eval"):
        a, b = _split_records(shuffled.uri, split), _split_records(in_order.uri, split)
        assert sorted(a) == sorted(b) and b
        # reading order: each split's rows come out in the fixture's line order
        positions = [_fixture_line(tf.train.Example.FromString(r)) for r in b]
        assert positions == sorted(positions), split


def _fixture_line(example):
    f = example.features.feature
    key = (f["user_id"].bytes_list.value[0].decode(), f["item_id"].bytes_list.value[0].decode(),
           str(f["ts"].int64_list.value[0]))
    with open(FIXTURE) as fh:
        for number, line in enumerate(fh, start=1):
            cells = line.split(",")
            if len(cells) > 4 and (cells[3], cells[4], cells[1]) == key:
                return number
    raise AssertionError(f"row {key} is not in the fixture")


def test_too_many_bad_rows_fail_with_counts_and_the_quarantine_path(tmp_path):
    with pytest.raises(ceg.BadRowsError) as e:
        _run(tmp_path, max_bad_fraction=0.1)
    msg = str(e.value)
    assert msg.startswith(ceg.ERROR_PREFIX)
    assert "34.78% of the rows are bad, more than max_bad_fraction 0.1" in msg
    assert "impressions.csv: row 3 (line 4)" in msg and "quarantine" in msg


def test_a_spec_column_missing_from_the_header_names_the_file_and_column(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(FIXTURE) as fh:
        lines = fh.read().splitlines()
    header = lines[0].split(",")
    keep = [i for i, c in enumerate(header) if c != "conversion"]
    with open(data / "x.csv", "w") as fh:
        for line in [lines[0], lines[1]]:
            fields = line.split(",")
            fh.write(",".join(fields[i] for i in keep) + "\n")
    spec = resolve_spec("synthetic")
    header, types = ceg._file_layout(spec, str(data / "x.csv"))
    with pytest.raises(ValueError, match=r"x.csv: the header has no column conversion"):
        ceg.RowChecker(spec, header, types, str(data / "x.csv"))


def test_quarantines_of_several_spans_merge_into_one_count():
    from pipeline.checked_example_gen import EXAMPLES_PER_KIND, merge_quarantines

    def part(name, good, bad, rows):
        return {"good": good, "total": good + bad, "bad": {"wrong_type": bad}, "quarantine": f"/q/{name}",
                "bad_rows_files": [f"/q/{name}/bad.jsonl"], "examples": {"wrong_type": rows}}

    merged = merge_quarantines([part("a", 90, 10, [{"row": 1}] * EXAMPLES_PER_KIND), part("b", 45, 5, [{"row": 2}])])
    assert (merged["good"], merged["total"], merged["bad_total"]) == (135, 150, 15)
    assert merged["bad"]["wrong_type"] == 15 and merged["bad_fraction"] == pytest.approx(0.1)
    assert merged["quarantines"] == ["/q/a", "/q/b"] and merged["quarantine"] == "/q/b"
    assert merged["bad_rows_files"] == ["/q/a/bad.jsonl", "/q/b/bad.jsonl"]
    assert len(merged["examples"]["wrong_type"]) == EXAMPLES_PER_KIND  # the first ones, not every one
    assert merge_quarantines([]) is None
