"""Unit tests of batch scoring's input and output handling (no Beam pipeline, no model): typing CSV /
Parquet / tf.Example values row by row and in Arrow batches, the exact errors, output batches as CSV text
and tf.Examples, input detection and the CLI parser."""

import argparse
import csv
import dataclasses
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from features import columnar

from features.spec import resolve_spec
from serving import scoring
from serving.scoring import Column, ScoringError

HEADS = ("ctr", "ctavr", "cvr", "ctcvr", "xcvr")
HEADER = ("request_id,ts,span,user_id,item_id,scenario,user_segment,user_age,user_gender,user_activity,"
          "item_category,item_brand,item_price,item_popularity,item_tags,hour,device,click,action,conversion")
ROW = "r7,1767254563,0,u19,i1381,search,6,1,0,2.2366,10,102,19.42,1.1837,t37|t45,8,web,1,0,0"


@pytest.fixture(scope="module")
def layout():
    return scoring.build_layout(resolve_spec("synthetic"), HEADS)


def _features(serialized):
    out = {}
    for name, f in tf.train.Example.FromString(serialized).features.feature.items():
        kind = f.WhichOneof("kind")
        out[name] = (kind, list(getattr(f, kind).value))
    return out


def _csv_rows(text, layout, path="logs/a.csv"):
    return list(scoring.iter_csv_rows(io.StringIO(text), path, layout))


# ---------------------------------------------------------------------------- layout
def test_layout_keys_columns_and_types(layout):
    assert layout.key_names == ("request_id", "user_id", "item_id", "scenario")
    assert layout.output_names == layout.key_names + HEADS
    names = [c.name for c in layout.columns]
    assert names[:3] == ["user_id", "item_id", "scenario"] and names[-1] == "request_id"
    assert not {"click", "action", "conversion", "p_click", "ts", "span"} & set(names)
    assert layout.column("user_age") == Column("user_age", "int64")
    assert layout.column("item_price") == Column("item_price", "float32")
    assert layout.column("item_tags") == Column("item_tags", "string", "|")
    assert layout.column("request_id") == Column("request_id", "string")


def test_layout_raw_features_of_the_export_win(layout):
    raw = {"user_id": "string", "item_id": "string", "scenario": "string", "item_price": "int64"}
    lay = scoring.build_layout(resolve_spec("synthetic"), ("ctr",), raw)
    assert [c.name for c in lay.columns] == ["user_id", "item_id", "scenario", "item_price", "request_id"]
    assert lay.column("item_price").dtype == "int64"
    with pytest.raises(ScoringError, match="'item_price': raw dtype 'float64'"):
        scoring.build_layout(resolve_spec("synthetic"), ("ctr",), {"item_price": "float64"})


def test_head_named_like_a_column_is_rejected():
    with pytest.raises(ScoringError, match=r"heads \['scenario'\]"):
        scoring.build_layout(resolve_spec("synthetic"), ("ctr", "scenario"))


# ---------------------------------------------------------------------------- CSV -> typed values -> tf.Example
def test_csv_row_to_typed_values_and_example_exact_values(layout):
    [(where, row)] = _csv_rows(f"{HEADER}\n{ROW}\n", layout)
    assert where == "logs/a.csv: row 1 (line 2)"
    values = scoring.convert_row(row, layout, where)
    assert [values[k] for k in layout.key_names] == ["r7", "u19", "i1381", "search"]
    [serialized] = scoring.serialize_examples(scoring.typed_rows([(where, row)], layout))
    feats = _features(serialized)
    assert set(feats) == {c.name for c in layout.columns}
    assert feats["user_id"] == ("bytes_list", [b"u19"])
    assert feats["item_tags"] == ("bytes_list", [b"t37|t45"])
    assert feats["user_age"] == ("int64_list", [1])
    assert feats["item_brand"] == ("int64_list", [102])
    assert feats["item_price"] == ("float_list", [np.float32(19.42)])
    assert feats["user_activity"] == ("float_list", [np.float32(2.2366)])
    assert feats["request_id"] == ("bytes_list", [b"r7"])


def test_empty_cells_are_missing_and_integral_floats_are_ints(layout):
    row = dict(zip(HEADER.split(","), ROW.split(",")), item_price="", device="", user_age="3.0", user_activity="nan")
    values = scoring.convert_row(row, layout, "x")
    assert values["item_price"] is values["device"] is values["user_activity"] is None and values["user_age"] == 3
    feats = _features(scoring.serialize_examples(scoring.typed_rows([("x", row)], layout))[0])
    assert "item_price" not in feats and "device" not in feats and "user_activity" not in feats
    assert feats["user_age"] == ("int64_list", [3])
    row["request_id"] = ""
    assert scoring.convert_row(row, layout, "x")["request_id"] is None


def test_bad_csv_value_names_file_row_and_column(layout):
    bad = ROW.replace(",1,0,2.2366,", ",abc,0,2.2366,")
    rows = _csv_rows(f"{HEADER}\n{ROW}\n\n{bad}\n", layout)
    where, row = rows[1]
    with pytest.raises(ScoringError) as e:
        scoring.convert_row(row, layout, where)
    assert str(e.value) == "logs/a.csv: row 2 (line 4), column 'user_age': 'abc' is not a valid int64"
    with pytest.raises(ScoringError, match=r"row 1 \(line 2\), column 'user_age': '1.5' is not a valid int64"):
        scoring.convert_row(dict(row, user_age="1.5"), layout, rows[0][0])
    with pytest.raises(ScoringError, match="column 'item_price': 'cheap' is not a valid float32"):
        scoring.convert_row(dict(row, user_age="1", item_price="cheap"), layout, where)


def test_csv_field_count_and_missing_column_errors(layout):
    with pytest.raises(ScoringError) as e:
        _csv_rows(f"{HEADER}\n{ROW}\n{ROW},extra\n", layout)
    assert str(e.value) == "logs/a.csv: row 2 (line 3): 21 fields, the header has 20"
    header = HEADER.replace("user_age,", "")
    with pytest.raises(ScoringError, match=r"^logs/a.csv: no column user_age, which the model or the output needs"):
        _csv_rows(f"{header}\n", layout)
    assert _csv_rows("", layout) == []


def test_quoted_csv_fields_and_line_numbers(layout):
    quoted = ROW.replace("t37|t45", '"t37|t45,x"')
    [(where, row)] = _csv_rows(f"{HEADER}\n{quoted}\n", layout)
    assert row["item_tags"] == "t37|t45,x" and where.endswith("row 1 (line 2)")


# ---------------------------------------------------------------------------- CSV files in Arrow batches
def _csv_file(tmp_path, text, name="a.csv"):
    path = tmp_path / name
    path.write_text(text)
    return lambda: open(path, "rb"), str(path)


def test_csv_batches_type_every_row_like_the_row_reader(layout, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "CSV_BLOCK_BYTES", 256)  # several batches
    fields = ROW.split(",")
    lines = [",".join(fields[:3] + [f"u{i}"] + fields[4:]) for i in range(12)]
    lines[3] = lines[3].replace("t37|t45", '"t37|\nt45,x"')  # a quoted line break
    lines[5] = lines[5].replace(",19.42,", ",,").replace(",web,", ",,")  # missing float and string
    lines[6] = lines[6].replace(",1,0,2.2366,", ",4.0,0,nan,")  # integral float as int, NaN missing
    opener, path = _csv_file(tmp_path, HEADER + "\n" + "\n".join(lines[:8]) + "\n\n" + "\n".join(lines[8:]) + "\n")
    batches = list(scoring.csv_batches(opener, path, layout))
    assert len(batches) > 1
    got = pa.Table.from_batches(batches).to_pylist()
    with opener() as fh:
        expected = scoring.typed_rows(scoring.iter_csv_rows(io.TextIOWrapper(fh, newline=""), path, layout),
                                      layout).to_pylist()
    assert got == expected and len(got) == 12
    assert got[3]["item_tags"] == "t37|\nt45,x" and got[5]["item_price"] is None and got[5]["device"] is None
    assert got[6]["user_age"] == 4 and got[6]["user_activity"] is None


def test_csv_batches_that_all_need_the_row_reader_read_the_file_twice_in_all(layout, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "CSV_BLOCK_BYTES", 256)
    fields = ROW.split(",")
    lines = [",".join(fields[:3] + [f"u{i}"] + fields[4:7] + [f" {i % 5}"] + fields[8:]) for i in range(40)]
    opener, path = _csv_file(tmp_path, HEADER + "\n" + "\n".join(lines) + "\n")  # " 3": Python's int, not Arrow's
    opened = []

    def counting_opener():
        opened.append(1)
        return opener()

    got = pa.Table.from_batches(list(scoring.csv_batches(counting_opener, path, layout))).to_pylist()
    assert [r["user_age"] for r in got] == [i % 5 for i in range(40)] and [r["user_id"] for r in got][-1] == "u39"
    assert len(opened) == 3  # the header, pyarrow's pass, one per-row pass


@pytest.mark.parametrize("change, message", [
    ((",1,0,2.2366,", ",abc,0,2.2366,"), "row 10 (line 12), column 'user_age': 'abc' is not a valid int64"),
    ((",19.42,", ",cheap,"), "row 10 (line 12), column 'item_price': 'cheap' is not a valid float32"),
    ((",u9,", ",,"), "row 10 (line 12), column 'user_id': no value, and the model requires one"),
    ((",web,", ",web,extra,"), "row 10 (line 12): 21 fields, the header has 20"),
])
def test_csv_batches_stop_at_a_bad_row_naming_file_row_line_and_column(layout, tmp_path, monkeypatch, change,
                                                                       message):
    monkeypatch.setattr(scoring, "CSV_BLOCK_BYTES", 256)
    lay = dataclasses.replace(layout, required=("user_id", "scenario"))
    fields = ROW.split(",")
    lines = [",".join(fields[:3] + [f"u{i}"] + fields[4:]) for i in range(12)]
    lines[9] = lines[9].replace(*change)
    opener, path = _csv_file(tmp_path, HEADER + "\n" + "\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    with pytest.raises(ScoringError) as e:
        list(scoring.csv_batches(opener, path, lay))
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


# ---------------------------------------------------------------------------- Parquet values
def test_typed_python_values_from_parquet(layout):
    tags, age, price, user = (layout.column(n) for n in ("item_tags", "user_age", "item_price", "user_id"))
    assert scoring.typed_value(["t1", b"t2"], tags, "w") == "t1|t2"
    assert scoring.typed_value([], tags, "w") is None
    assert scoring.typed_value(4.0, age, "w") == 4 and isinstance(scoring.typed_value(4.0, age, "w"), int)
    assert scoring.typed_value([7], age, "w") == 7
    assert scoring.typed_value(float("nan"), price, "w") is None
    assert scoring.typed_value(3, price, "w") == 3.0
    assert scoring.typed_value(123, user, "w") == "123"
    assert scoring.typed_value(b"u1", user, "w") == "u1"
    with pytest.raises(ScoringError, match=r"^f.parquet: row 3, column 'user_age': expected one value, got 2"):
        scoring.typed_value([1, 2], age, "f.parquet: row 3")
    with pytest.raises(ScoringError, match="column 'user_age': 4.5 is not a valid int64"):
        scoring.typed_value(4.5, age, "w")


def _parquet_table(rows=2):
    names = HEADER.split(",")
    values = ROW.split(",")
    return pa.table({n: [v] * rows for n, v in zip(names, values)})


def test_parquet_batches_read_only_needed_columns(layout, tmp_path):
    table = _parquet_table().set_column(6, "user_segment", pa.array([6.0, 7.0]))  # integral floats for an int
    table = table.set_column(14, "item_tags", pa.array([["t1", "t2"], []]))
    pq.write_table(table, tmp_path / "a.parquet")
    with open(tmp_path / "a.parquet", "rb") as fh:
        batches = list(scoring.parquet_batches(fh, "a.parquet", layout, batch_rows=1))
    assert len(batches) == 2 and batches[0].schema.names == [c.name for c in layout.columns]
    rows = pa.Table.from_batches(batches).to_pylist()
    assert [r["user_segment"] for r in rows] == [6, 7] and [r["item_tags"] for r in rows] == ["t1|t2", None]
    assert rows[0]["item_price"] == float(np.float32(19.42))
    pq.write_table(_parquet_table().drop(["scenario"]), tmp_path / "b.parquet")
    with open(tmp_path / "b.parquet", "rb") as fh, pytest.raises(ScoringError, match="b.parquet: no column scenario"):
        list(scoring.parquet_batches(fh, "b.parquet", layout))


def test_parquet_bad_cell_names_the_row(layout, tmp_path):
    table = _parquet_table(5).set_column(7, "user_age", pa.array([1.0, 2.0, 3.0, 4.5, 5.0]))
    pq.write_table(table, tmp_path / "c.parquet")
    with open(tmp_path / "c.parquet", "rb") as fh, pytest.raises(ScoringError) as e:
        list(scoring.parquet_batches(fh, "c.parquet", layout, batch_rows=2))
    assert str(e.value) == "c.parquet: row 4, column 'user_age': 4.5 is not a valid int64"


def test_example_key_of_a_tfrecord_example(layout):
    ex = tf.train.Example()
    ex.features.feature["user_id"].bytes_list.value.append(b"u5")
    ex.features.feature["item_id"].bytes_list.value.append(b"i9")
    ex.features.feature["scenario"].bytes_list.value.append(b"home_feed")
    ex.features.feature["request_id"].int64_list.value.append(42)
    assert scoring.example_key(ex.SerializeToString(), layout) == ("42", "u5", "i9", "home_feed")
    full = ex.SerializeToString()
    del ex.features.feature["request_id"]
    assert scoring.example_key(ex.SerializeToString(), layout) == (None, "u5", "i9", "home_feed")
    keys = scoring.example_keys([full, ex.SerializeToString()], layout)
    assert keys.to_pylist() == [{"request_id": "42", "user_id": "u5", "item_id": "i9", "scenario": "home_feed"},
                                {"request_id": None, "user_id": "u5", "item_id": "i9", "scenario": "home_feed"}]


# ---------------------------------------------------------------------------- outputs
def _output(layout, heads):
    keys = columnar.batch_from_rows([{"request_id": "r1", "user_id": "u,1", "item_id": "i2", "scenario": "search"},
                                     {"request_id": None, "user_id": 'say "hi"', "item_id": "i3",
                                      "scenario": "home_feed"}], [layout.column(k) for k in layout.key_names])
    return scoring.output_batch(keys, {h: np.asarray(v, np.float32) for h, v in heads.items()}, layout)


def test_output_batch_and_csv_text(layout):
    batch = _output(layout, {"ctr": [0.25, 0.5], "cvr": [0.1, 0.2], "xcvr": [1e-7, 1.0]})
    assert batch.schema.names == list(layout.output_names)
    assert batch.column("ctavr").null_count == 2 and batch.column("ctr").type == pa.float32()
    text = scoring.csv_text(batch)
    assert text == ('r1,"u,1",i2,search,0.25,,0.1,,1e-7\n'
                    ',"say ""hi""",i3,home_feed,0.5,,0.2,,1')
    rows = list(csv.reader(io.StringIO(scoring.csv_header(layout.output_names) + "\n" + text)))
    assert rows[0] == list(layout.output_names) and rows[2][1] == 'say "hi"'
    assert np.float32(float(rows[1][-1])) == np.float32(1e-7) and np.float32(float(rows[1][6])) == np.float32(0.1)


def test_model_outputs_need_one_value_per_row():
    assert scoring.ScoringModel._outputs({"ctr": tf.constant([[0.5], [0.25]])}, 2)["ctr"].tolist() == [0.5, 0.25]
    with pytest.raises(ScoringError, match="model output 'ctr' has 4 values for 2 rows"):
        scoring.ScoringModel._outputs({"ctr": tf.zeros([2, 2])}, 2)


def test_output_example_and_parquet_schema(layout):
    batch = _output(layout, {h: [0.5, 0.75] for h in HEADS})
    first, second = (_features(s) for s in scoring.serialize_examples(batch))
    assert first["user_id"] == ("bytes_list", [b"u,1"]) and first["ctcvr"] == ("float_list", [0.5])
    assert set(first) == set(layout.output_names)
    assert set(second) == set(layout.output_names) - {"request_id"} and second["ctr"] == ("float_list", [0.75])
    schema = scoring.parquet_schema(layout)
    assert schema.names == list(layout.output_names)
    assert schema.field("request_id").type == pa.string() and schema.field("ctr").type == pa.float32()
    int_scenario = scoring.ScoringLayout((Column("301", "int64"),), ("301",), ("ctr",))
    assert scoring.parquet_schema(int_scenario).field("301").type == pa.int64()


# ---------------------------------------------------------------------------- model directory and metadata
def _fake_model(path, heads=("xcvr", "score2", "ctr"), meta=None):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    graph = saved.meta_graphs.add()
    graph.meta_info_def.tags.append("serve")
    sig = graph.signature_def["serving_default"]
    sig.inputs["examples"].name = "examples:0"
    for h in heads:
        sig.outputs[h].name = f"{h}:0"
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as fh:
        fh.write(saved.SerializeToString())
    if meta is not None:
        os.makedirs(os.path.join(path, "assets.extra"))
        with open(os.path.join(path, scoring.EXPORT_METADATA), "w") as fh:
            json.dump(meta, fh)
    return str(path)


def test_model_dir_versions_heads_and_metadata(tmp_path):
    spec = resolve_spec("synthetic")
    meta = {"spec": spec.to_dict(), "heads": ["ctr", "xcvr"], "raw_features": {"user_id": "string",
                                                                               "scenario": "string"}}
    _fake_model(tmp_path / "msmt" / "7")
    newest = _fake_model(tmp_path / "msmt" / "12", meta=meta)
    assert scoring.resolve_model_dir(str(tmp_path / "msmt")) == newest
    assert scoring.serving_heads(newest) == ("ctr", "xcvr", "score2")
    lay = scoring.load_layout(newest)
    assert [c.name for c in lay.columns] == ["user_id", "scenario", "request_id", "item_id"]
    assert lay.key_names == ("request_id", "user_id", "item_id", "scenario")
    with pytest.raises(ScoringError, match="no version directory"):
        scoring.resolve_model_dir(str(tmp_path))


def test_spec_needed_without_export_metadata(tmp_path):
    model = _fake_model(tmp_path / "m")
    with pytest.raises(ScoringError, match=r"carries no assets.extra/msmt_export.json .* --spec synthetic"):
        scoring.load_layout(model)
    assert scoring.load_layout(model, "synthetic").heads == ("ctr", "xcvr", "score2")


# ---------------------------------------------------------------------------- inputs, Beam options, CLI
def test_detect_input_format():
    assert scoring.detect_input_format("/d/span-*/impressions.csv", []) == "csv"
    assert scoring.detect_input_format("/d/*.tfrecord.gz", []) == "tfrecord"
    assert scoring.detect_input_format("/d/*", ["/d/a.parquet", "/d/b.parquet"]) == "parquet"
    assert scoring.detect_input_format("/d/*", ["/d/a.CSV.gz"]) == "csv"
    with pytest.raises(ScoringError, match="--input-format csv|tfrecord|parquet"):
        scoring.detect_input_format("/d/*", ["/d/a.csv", "/d/b.parquet"])


def test_match_files_errors(tmp_path):
    with pytest.raises(ScoringError, match="no file matches"):
        scoring.match_files(str(tmp_path / "*.csv"))
    (tmp_path / "a.csv").write_text("x\n")
    assert scoring.match_files(str(tmp_path / "*.csv")) == [str(tmp_path / "a.csv")]


def test_beam_options_defaults_unless_given():
    assert scoring.beam_options() == list(scoring.DEFAULT_BEAM_ARGS)
    assert scoring.beam_options(["--direct_num_workers=2"]) == ["--direct_running_mode=in_memory",
                                                                "--direct_num_workers=2"]


def _parser():
    parser = argparse.ArgumentParser(prog="msmt")
    scoring.add_score_parser(parser.add_subparsers(dest="command"))
    return parser


def test_score_parser_passes_unknown_options_to_beam():
    args = _parser().parse_args(["score", "--model", "m", "--input", "in/*.csv", "--output", "o",
                                 "--beam-arg=--direct_num_workers=2", "--runner=DirectRunner", "--foo", "1"])
    assert (args.model, args.input, args.output, args.format, args.spec) == ("m", "in/*.csv", "o", "parquet", None)
    assert args.beam_args == ["--direct_num_workers=2", "--runner=DirectRunner", "--foo", "1"]
    assert args.func is scoring.cmd_score
    args = _parser().parse_args(["score", "--model", "m", "--input", "i", "--output", "o", "--format", "csv",
                                 "--spec", "synthetic", "--input-format", "tfrecord"])
    assert (args.format, args.spec, args.input_format, args.beam_args) == ("csv", "synthetic", "tfrecord", [])
    with pytest.raises(SystemExit):
        _parser().parse_args(["score", "--model", "m", "--input", "i", "--output", "o", "stray"])


def test_score_help_names_formats(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["score", "--help"])
    text = capsys.readouterr().out
    for word in ("--model MODEL_DIR", "--input PATTERN", "{parquet,csv,tfrecord}", "--spec NAME_OR_PATH",
                 "--beam-arg ARG", "DirectRunner in_memory"):
        assert word in text, word


def test_existing_scores_need_overwrite(tmp_path):
    (tmp_path / "scores-00000-of-00001.csv").write_text("a\n")
    with pytest.raises(ScoringError, match="--overwrite"):
        scoring._prepare_output(str(tmp_path), overwrite=False)
    scoring._prepare_output(str(tmp_path), overwrite=True)
    assert os.listdir(tmp_path) == []
    scoring._prepare_output(str(tmp_path / "new"), overwrite=False)
    assert os.path.isdir(tmp_path / "new")

