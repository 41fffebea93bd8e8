"""Unit tests of batch scoring's row handling (no Beam pipeline, no model): typing CSV / Parquet /
tf.Example values, building tf.Examples, output rows, error messages, input detection and the CLI parser."""

import argparse
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

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


# ---------------------------------------------------------------------------- CSV -> tf.Example
def test_csv_row_to_key_and_example_exact_values(layout):
    [(where, row)] = _csv_rows(f"{HEADER}\n{ROW}\n", layout)
    assert where == "logs/a.csv: row 1 (line 2)"
    key, serialized = scoring.convert_row(row, layout, where)
    assert key == ("r7", "u19", "i1381", "search")
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
    key, serialized = scoring.convert_row(row, layout, "x")
    feats = _features(serialized)
    assert "item_price" not in feats and "device" not in feats and "user_activity" not in feats
    assert feats["user_age"] == ("int64_list", [3])
    assert key == ("r7", "u19", "i1381", "search")
    row["request_id"] = ""
    assert scoring.convert_row(row, layout, "x")[0] == (None, "u19", "i1381", "search")


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


# ---------------------------------------------------------------------------- Parquet / tf.Example values
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


def test_parquet_rows_read_only_needed_columns(layout, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = HEADER.split(",")
    values = ROW.split(",")
    table = pa.table({n: [v, v] for n, v in zip(names, values)})
    pq.write_table(table, tmp_path / "a.parquet")
    with open(tmp_path / "a.parquet", "rb") as fh:
        rows = list(scoring.iter_parquet_rows(fh, "a.parquet", layout, batch_rows=1))
    assert [w for w, _ in rows] == ["a.parquet: row 1", "a.parquet: row 2"]
    assert set(rows[0][1]) == {c.name for c in layout.columns}
    pq.write_table(table.drop(["scenario"]), tmp_path / "b.parquet")
    with open(tmp_path / "b.parquet", "rb") as fh, pytest.raises(ScoringError, match="b.parquet: no column scenario"):
        list(scoring.iter_parquet_rows(fh, "b.parquet", layout))


def test_example_key_of_a_tfrecord_example(layout):
    ex = tf.train.Example()
    ex.features.feature["user_id"].bytes_list.value.append(b"u5")
    ex.features.feature["item_id"].bytes_list.value.append(b"i9")
    ex.features.feature["scenario"].bytes_list.value.append(b"home_feed")
    ex.features.feature["request_id"].int64_list.value.append(42)
    assert scoring.example_key(ex.SerializeToString(), layout) == ("42", "u5", "i9", "home_feed")
    del ex.features.feature["request_id"]
    assert scoring.example_key(ex.SerializeToString(), layout) == (None, "u5", "i9", "home_feed")


# ---------------------------------------------------------------------------- outputs
def _prediction_log(values):
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    for name, v in values.items():
        log.predict_log.response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray([v], np.float32)))
    return log


def test_prediction_log_to_output_row_and_csv_line(layout):
    outputs = scoring.prediction_outputs(_prediction_log({"ctr": 0.25, "cvr": 0.1, "xcvr": 1e-7}))
    assert outputs == {"ctr": 0.25, "cvr": float(np.float32(0.1)), "xcvr": float(np.float32(1e-7))}
    row = scoring.output_row(("r1", "u,1", "i2", "search"), outputs, layout)
    assert list(row) == list(layout.output_names)
    assert row["ctr"] == 0.25 and row["ctavr"] is None
    line = scoring.csv_line(row, layout.output_names)
    assert line == 'r1,"u,1",i2,search,0.25,,0.100000001,,1.00000001e-07'
    assert float(line.split(",")[-1]) == np.float32(1e-7)


def test_tensor_content_outputs_are_read():
    proto = tf.make_tensor_proto(np.asarray([0.75], np.float32))
    proto.ClearField("float_val")
    proto.tensor_content = np.asarray([0.75], np.float32).tobytes()
    assert scoring._tensor_scalar(proto) == 0.75
    with pytest.raises(ScoringError, match="2 values per row"):
        scoring._tensor_scalar(tf.make_tensor_proto(np.asarray([0.1, 0.2], np.float32)))


def test_output_example_and_parquet_schema(layout):
    import pyarrow as pa

    row = scoring.output_row(("r1", "u1", "i2", "search"), {h: 0.5 for h in HEADS}, layout)
    feats = _features(scoring.row_to_output_example(row, layout))
    assert feats["user_id"] == ("bytes_list", [b"u1"]) and feats["ctcvr"] == ("float_list", [0.5])
    assert set(feats) == set(layout.output_names)
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

