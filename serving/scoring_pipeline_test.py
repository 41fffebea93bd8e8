"""Batch scoring end to end on Beam (in-process DirectRunner) with a stub model exported with the real
serving signatures: every input format gives, row for row, what ``serving_default`` gives on tf.Examples
built independently of the scorer (within 1e-6), and bad input stops the run naming file, row and column."""

import csv
import glob

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from serving import scoring
from serving.scoring import ScoringError
from serving.testing import export_stub_model

HEADER = "user_id,scenario,age,price,tags,click"
# user, scenario, age, price ("" = missing), tags ("" = missing)
ROWS = [("u1", "a", 3, "2.0", "x|y"), ("u2", "b", 5, "", ""), ("u3", "zz", 0, "7.5", "t1|t2,t3"),
        ("u4", "a", 7, "-1.25", "x"), ("u5", "b", 2, "0.5", "")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_stub_model(tmp_path_factory.mktemp("stub") / "1")


def _reference_examples(rows):
    """tf.Examples of the rows, built here from the raw text (an empty cell leaves the feature out)."""
    out = []
    for user, scenario, age, price, tags in rows:
        ex = tf.train.Example()
        for name, text in (("user_id", user), ("scenario", scenario)):
            if text:
                ex.features.feature[name].bytes_list.value.append(text.encode())
        ex.features.feature["age"].int64_list.value.append(age)
        if price:
            ex.features.feature["price"].float_list.value.append(float(price))
        if tags:
            ex.features.feature["tags"].bytes_list.value.append(tags.encode())
        out.append(ex.SerializeToString())
    return out


def _served(model_dir, rows):
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    outputs = serve(examples=tf.constant(_reference_examples(rows)))
    return {h: v.numpy() for h, v in outputs.items()}


def _write_csv(path, rows, blank_line_after=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER.split(","))
        for i, r in enumerate(rows):
            w.writerow(list(r) + [0])
            if i == blank_line_after:
                fh.write("\n")
    return str(path)


def _read(files, fmt):
    if fmt == "parquet":
        return pq.read_table(files).to_pylist()
    if fmt == "csv":
        rows = []
        for f in files:
            with open(f, newline="") as fh:
                rows += [{k: (float(v) if k in ("ctr", "ctcvr") else v) for k, v in r.items()}
                         for r in csv.DictReader(fh)]
        return rows
    rows = []
    for rec in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feats = tf.train.Example.FromString(rec.numpy()).features.feature
        rows.append({k: (f.float_list.value[0] if f.float_list.value else f.bytes_list.value[0].decode())
                     for k, f in feats.items()})
    return rows


def _check(result, fmt, rows, served):
    assert result["rows_in"] == result["rows_out"] == len(rows), result
    assert result["columns"] == ["user_id", "scenario", "ctr", "ctcvr"]
    got = {r["user_id"]: r for r in _read(result["files"], fmt)}
    assert sorted(got) == sorted(r[0] for r in rows), fmt
    for i, r in enumerate(rows):
        assert got[r[0]]["scenario"] == r[1]
        for head in ("ctr", "ctcvr"):
            assert abs(got[r[0]][head] - served[head][i]) <= 1e-6, (fmt, r, head)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tfrecord"])
def test_csv_input_scores_like_serving_default_in_every_output_format(model, tmp_path, fmt):
    data = _write_csv(tmp_path / "in.csv", ROWS, blank_line_after=1)
    result = scoring.score(model, data, str(tmp_path / "out"), fmt)
    _check(result, fmt, ROWS, _served(model, ROWS))
    assert all(f.endswith(scoring.OUTPUT_SUFFIX[fmt]) for f in result["files"])


def test_parquet_and_tfrecord_inputs_score_like_serving_default(model, tmp_path):
    served = _served(model, ROWS)
    table = pa.table({"user_id": [r[0] for r in ROWS], "scenario": [r[1] for r in ROWS],
                      "age": [float(r[2]) for r in ROWS],  # integral floats for an int64 column
                      "price": [float(r[3]) if r[3] else None for r in ROWS],
                      "tags": [r[4].split("|") if r[4] else [] for r in ROWS]})
    table = table.set_column(4, "tags", pa.array([["x", "y"], [], ["t1", "t2,t3"], ["x"], []]))
    pq.write_table(table, tmp_path / "in.parquet")
    _check(scoring.score(model, str(tmp_path / "in.parquet"), str(tmp_path / "pq"), "parquet"), "parquet", ROWS,
           served)
    with tf.io.TFRecordWriter(str(tmp_path / "in.tfrecord")) as w:
        for rec in _reference_examples(ROWS):
            w.write(rec)
    _check(scoring.score(model, str(tmp_path / "in.tfrecord"), str(tmp_path / "tfr"), "parquet"), "parquet", ROWS,
           served)


def test_many_batches_keep_one_row_per_input_row(model, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "CSV_BLOCK_BYTES", 256)
    rows = [(f"u{i}", "ab"[i % 2], i % 50, f"{i / 7:.3f}" if i % 3 else "", "x|y" if i % 4 else "")
            for i in range(600)]
    files = [_write_csv(tmp_path / f"in-{k}.csv", rows[k * 300:(k + 1) * 300]) for k in range(2)]
    result = scoring.score(model, str(tmp_path / "in-*.csv"), str(tmp_path / "out"), "parquet")
    assert len(files) == 2
    _check(result, "parquet", rows, _served(model, rows))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_bad_cell_stops_the_run_naming_file_row_and_column(model, tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(scoring, "CSV_BLOCK_BYTES", 256)
    rows = [(f"u{i}", "a", i, "1.5", "x") for i in range(40)]
    rows[33] = ("u33", "a", "3.5", "1.5", "x")
    if fmt == "csv":
        data = _write_csv(tmp_path / "in.csv", rows, blank_line_after=2)
        where = f"{data}: row 34 (line 36)"
    else:
        data = str(tmp_path / "in.parquet")
        pq.write_table(pa.table({"user_id": [r[0] for r in rows], "scenario": [r[1] for r in rows],
                                 "age": [float(r[2]) for r in rows], "price": [1.5] * 40, "tags": ["x"] * 40}), data)
        where = f"{data}: row 34"
    with pytest.raises(ScoringError) as e:
        scoring.score(model, data, str(tmp_path / "out"))
    assert str(e.value) == f"{where}, column 'age': {'3.5' if fmt == 'csv' else 3.5!r} is not a valid int64"
    assert not glob.glob(str(tmp_path / "out" / "scores-*"))


def test_a_row_without_a_required_id_stops_the_run(model, tmp_path):
    rows = [("u1", "a", 1, "1.0", "x"), ("", "b", 2, "1.0", "x")]
    data = _write_csv(tmp_path / "in.csv", rows)
    with pytest.raises(ScoringError) as e:
        scoring.score(model, data, str(tmp_path / "out"))
    assert str(e.value).startswith(f"{data}: row 2 (line 3), column 'user_id': no value, and the model requires one")
    # serving_default refuses the same request
    with pytest.raises(tf.errors.InvalidArgumentError, match="user_id"):
        _served(model, rows)
