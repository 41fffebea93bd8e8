"""``msmt spec infer``: drafts from the hand-made fixture, the public samples, Parquet / TFRecord, and the CLI.

The public samples are read in place from ``../shared/data`` (never copied); those tests skip when it is absent.
"""

import csv
import gzip
import os
import random
import subprocess
import sys

import pytest
import yaml

from features import spec_infer
from features.row_check import RowChecker, infer_column_types, split_csv_line
from features.spec import builtin_spec_path, load_spec
from features.spec_infer import InferError, infer_spec, summary

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
FIXTURE = os.path.join(REPO_ROOT, "tests", "data", "corrupted_impressions.csv")
NO_SHARED = f"public samples not found in {SHARED_DATA} (../shared/data is absent)"


def _shared(relpath):
    path = os.path.join(SHARED_DATA, relpath)
    if not os.path.exists(path):
        pytest.skip(f"{NO_SHARED}: no {relpath}")
    return path


def _load(tmp_path, draft, name="draft.yaml"):
    """Write the draft and load it with the spec loader, as ``msmt run --spec`` does."""
    path = tmp_path / name
    path.write_text(draft.text)
    return load_spec(str(path))


def _roles(spec):
    return {f.name: f.role for f in spec.features}


def _rows_pass_row_checker(spec, path):
    """Every data row of a CSV is a good row for the pipeline's row checker under ``spec``."""
    with open(path, newline="") as fh:
        lines = fh.read().splitlines()
    header = split_csv_line(lines[0])
    sample = [split_csv_line(line) for line in lines[1:]]
    checker = RowChecker(spec, header, infer_column_types(spec, header, sample), path)
    bad = [(i, checker.check_line(line).problems) for i, line in enumerate(lines[1:], 1)]
    return [b for b in bad if b[1]]


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory):
    """The 30 good rows of the corrupted fixture (bad rows dropped with the pipeline's own row checker)."""
    from features.spec import resolve_spec

    spec = resolve_spec("synthetic")
    with open(FIXTURE, newline="") as fh:
        lines = fh.read().splitlines()
    header = split_csv_line(lines[0])
    sample = [split_csv_line(line) for line in lines[1:3]]
    checker = RowChecker(spec, header, infer_column_types(spec, header, sample), FIXTURE)
    good = [line for line in lines[1:] if checker.check_line(line).values is not None]
    assert len(good) == 30
    path = tmp_path_factory.mktemp("fixture") / "impressions.csv"
    path.write_text("\n".join([lines[0]] + good) + "\n")
    return str(path)


# ---------------------------------------------------------------------------- the hand-made fixture
def test_fixture_draft_finds_scenario_labels_ids_and_loads(good_csv, tmp_path):
    draft = infer_spec(good_csv)
    assert draft.error is None, draft.error
    spec = _load(tmp_path, draft)
    roles = _roles(spec)
    assert spec.scenario.name == "scenario" and set(spec.scenario.values) <= {"home_feed", "search", "detail_page"}
    assert spec.label_columns == {"click": "click", "raction": "action", "conversion": "conversion"}
    assert roles["user_id"] == "id" and roles["item_id"] == "id"
    assert spec.feature("item_tags").is_multivalent and spec.feature("item_tags").separator == "|"
    assert {"p_click", "p_click_action", "p_click_conv", "p_conv", "span"} <= set(spec.ignore)
    assert spec.request_id == "request_id" and spec.timestamp == "ts"
    assert {roles[c] for c in ("user_segment", "user_age", "user_gender", "item_category", "item_brand", "hour",
                               "device")} == {"categorical"}
    assert spec.feature("item_price").is_numeric and spec.feature("user_activity").is_numeric
    assert "user_id" in spec.priors["user"] and "user_age" in spec.priors["user"]
    assert "item_id" in spec.priors["item"] and spec.priors["scenario"] == ("scenario",)
    # The dtypes agree with the hand-written synthetic spec, and the pipeline's row checker accepts every row.
    shipped = load_spec(builtin_spec_path("synthetic"))
    assert {f.name: f.dtype for f in shipped.features} == {f.name: f.dtype for f in spec.features}
    assert _rows_pass_row_checker(spec, good_csv) == []


def test_every_guess_has_a_comment(good_csv):
    text = infer_spec(good_csv).text
    body = [line for line in text.splitlines() if not line.startswith("#")]
    entries = [line for line in body if line.startswith("  ") or line.startswith(("request_id:", "timestamp:"))]
    assert len(entries) > 20
    for line in entries:
        assert " # " in line, line
    assert "# int64, 2 distinct values {0,1} -> 3.3% positive, named like a click label -> label click" in text
    # No positive conversion in 30 rows: flagged, and named in the warnings.
    assert "TODO check: no positive conversion in the sample" in text
    assert any(w.startswith("labels.conversion (conversion)") for w in infer_spec(good_csv).warnings)


def test_fixture_with_bad_rows_still_drafts_and_names_what_to_fill_in(tmp_path):
    draft = infer_spec(FIXTURE)
    spec = _load(tmp_path, draft)  # loads: missing labels are TODO_ placeholders
    # click holds a 2, conversion a -1 (bad rows): neither is taken as a label; the warnings say so.
    assert spec.labels.click == "TODO_click_column" and spec.labels.conversion == "TODO_conversion_column"
    assert any("labels.click" in w and "click named so, but not 0/1" in w for w in draft.warnings)
    assert any("3 malformed line(s) skipped" in w for w in draft.warnings)
    assert "click: TODO_click_column" in draft.text and "# TODO: no 0/1 integer column" in draft.text


# ---------------------------------------------------------------------------- public samples
@pytest.mark.parametrize("name", ["ali_ccp_train_sample.csv", "ali_ccp_val_sample.csv", "ali_ccp_test_sample.csv"])
def test_aliccp_samples(name, tmp_path):
    path = _shared(os.path.join("aliccp", name))
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert draft.layout is not None and draft.layout.name == "aliccp"
    assert spec.label_columns == {"click": "click", "conversion": "purchase"}
    assert spec.scenario.name == "301" and spec.scenario.values == ("1", "2", "3")
    assert spec.feature("101").role == "id" and spec.feature("205").role == "id"
    assert spec.priors["user"][0] == "101" and spec.priors["item"][0] == "205"
    # Every role agrees with the shipped aliccp spec; the pipeline's row checker accepts every row.
    assert _roles(spec) == _roles(load_spec(builtin_spec_path("aliccp")))
    assert _rows_pass_row_checker(spec, path) == []


def test_aliccp_rawid_train(tmp_path):
    path = _shared(os.path.join("aliccp", "aliccp_rawid_train.csv"))
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert spec.label_columns == {"click": "click", "conversion": "purchase"}
    assert spec.scenario.name == "301" and {"2", "3"} <= set(spec.scenario.values)
    assert spec.feature("101").role == "id" and "210" not in _roles(spec)
    assert _rows_pass_row_checker(spec, path) == []


def test_aliccp_rawid_test_has_no_header(tmp_path):
    path = _shared(os.path.join("aliccp", "aliccp_rawid_test.csv"))
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert draft.profile.headerless and draft.profile.rows == 50  # the first line is a data row
    assert any("no header" in w and "add a header line" in w for w in draft.warnings)
    assert spec.label_columns == {"click": "column_1", "conversion": "column_2"}
    assert "TODO check: no header" in draft.text
    assert any("named like a scenario" in w for w in draft.warnings)  # a guessed scenario, flagged


@pytest.mark.parametrize("name", ["aliexpress_train_sample.csv", "aliexpress_test_sample.csv"])
def test_aliexpress_samples(name, tmp_path):
    path = _shared(os.path.join("aliexpress", name))
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert spec.label_columns == {"click": "click", "conversion": "conversion"}
    assert spec.request_id == "search_id" and spec.scenario.name == "categorical_1"
    shipped = load_spec(builtin_spec_path("aliexpress"))
    assert _roles(spec) == _roles(shipped)
    assert {f.name: f.dtype for f in spec.features} == {f.name: f.dtype for f in shipped.features}
    assert _rows_pass_row_checker(spec, path) == []


# ---------------------------------------------------------------------------- generic guesses
def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_generic_guesses_hash_ids_log1p_separators_constants(tmp_path):
    rng = random.Random(0)
    rows = []
    for i in range(3000):
        clk = int(rng.random() < 0.1)
        rows.append([f"u{i}", f"ad{rng.randrange(50)}", rng.choice(["feed", "search", "cart"]),
                     rng.choice(["FR", "US"]), round(rng.lognormvariate(2, 1.2), 2), rng.randrange(5000),
                     ";".join(rng.sample("abcdefgh", 3)), "x", rng.random(), clk,
                     int(clk and rng.random() < 0.2), int(clk and rng.random() < 0.3), f"{rng.random():.3f}"])
    path = _write_csv(tmp_path / "log.csv",
                      ["uid", "ad_id", "page", "country", "price", "view_count", "interests", "const", "u_score",
                       "is_click", "is_buy", "add_cart", "prob_click"], rows)
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    uid, ad = spec.feature("uid"), spec.feature("ad_id")
    assert uid.role == "id" and uid.encoding == "hash" and uid.hash_buckets == 10_000   # 3000 distinct -> 2x -> 10k
    assert ad.role == "id" and ad.encoding == "vocab"
    assert spec.scenario.name == "page" and spec.scenario.values == ("cart", "feed", "search")
    assert spec.feature("country").role == "categorical"   # a second scenario-like name stays categorical
    assert spec.feature("price").transform == "log1p_zscore"
    assert spec.feature("view_count").is_numeric and spec.feature("u_score").transform == "zscore"
    assert spec.feature("interests").separator == ";"
    assert set(spec.ignore) == {"const", "prob_click"}
    assert spec.label_columns == {"click": "is_click", "conversion": "is_buy", "raction": "add_cart"}
    assert spec.priors["user"] == ("uid", "u_score") and spec.priors["item"] == ("ad_id",)
    assert "some positives have no click" not in draft.text and "every positive has a click" in draft.text
    # --rows reads only the first rows.
    assert infer_spec(path, rows=100).profile.rows == 100


def test_no_scenario_name_picks_a_candidate_and_flags_it(tmp_path):
    rows = [[f"u{i % 7}", f"i{i % 11}", i % 3, i % 5, int(i % 4 == 0), int(i % 8 == 0)] for i in range(40)]
    path = _write_csv(tmp_path / "log.csv", ["user_id", "item_id", "a", "b", "click", "conversion"], rows)
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert spec.scenario.name == "a" and spec.scenario.values == ("0", "1", "2")
    assert "TODO check: no column is named like a scenario" in draft.text
    assert any(w.startswith("a: no column is named like a scenario") for w in draft.warnings)


def test_float_written_labels_and_empty_labels(tmp_path):
    # pandas writes a label column with a NaN as 1.0 / 0.0 / empty: still the label, the empty cells flagged.
    rows = [[f"u{i}", "a" if i % 3 else "b", "1.0" if i % 5 == 0 else ("" if i == 7 else "0.0"),
             int(i % 10 == 0), f"{i}.5"] for i in range(40)]
    path = _write_csv(tmp_path / "log.csv", ["user_id", "scene", "clicked", "order", "clicks_7d"], rows)
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert spec.label_columns == {"click": "clicked", "conversion": "order"}
    assert "(0.0 / 1.0 floats, read as integers)" in draft.text
    assert any(w.startswith("labels.click (clicked): 2.5% empty") for w in draft.warnings)
    assert spec.feature("clicks_7d").is_numeric   # named like a click, but a count: not a label
    bad = _rows_pass_row_checker(spec, path)   # the empty label is the one bad row, as the warning says
    assert [(row, [p.kind for p in problems]) for row, problems in bad] == [(8, ["missing_label"])]


def test_nothing_scenario_like_gives_a_placeholder(tmp_path):
    rows = [[f"u{i}", f"{i * 0.37:.2f}", int(i % 4 == 0), int(i % 8 == 0)] for i in range(40)]
    path = _write_csv(tmp_path / "log.csv", ["user_id", "x", "click", "conversion"], rows)
    draft = infer_spec(path)
    spec = _load(tmp_path, draft)
    assert spec.scenario.name == "TODO_scenario_column"
    assert any("TODO_scenario_column" in w and "no column looks like a scenario" in w for w in draft.warnings)


def test_glob_pattern_reads_files_in_order(tmp_path):
    for day in range(3):
        (tmp_path / f"span-{day}").mkdir()
        _write_csv(tmp_path / f"span-{day}" / "impressions.csv", ["user_id", "scenario", "click", "conversion"],
                   [[f"u{day}{i}", "s1" if i % 2 else "s2", i % 2, 0] for i in range(10)])
    draft = infer_spec(str(tmp_path / "span-*" / "impressions.csv"), rows=25)
    assert draft.profile.rows == 25 and len(draft.profile.files) == 3
    assert draft.spec["name"] == "impressions"


def test_errors_are_clear(tmp_path):
    with pytest.raises(InferError, match="no such file"):
        infer_spec(str(tmp_path / "missing.csv"))
    with pytest.raises(InferError, match="no file matches"):
        infer_spec(str(tmp_path / "span-*" / "x.csv"))
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(InferError, match="cannot tell the format"):
        infer_spec(str(tmp_path / "data.json"))
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(InferError, match="no data rows"):
        infer_spec(str(tmp_path / "empty.csv"))
    (tmp_path / "dupes.csv").write_text("a,a,b\n1,2,3\n")
    with pytest.raises(InferError, match="names a more than once"):
        infer_spec(str(tmp_path / "dupes.csv"))
    (tmp_path / "junk.tfrecord").write_bytes(b"\xff" * 40)
    with pytest.raises(InferError, match="not a TFRecord"):
        list(spec_infer.iter_tfrecords(str(tmp_path / "junk.tfrecord")))


def test_nice_buckets():
    assert [spec_infer._nice_buckets(n) for n in (1, 3, 14_000, 20_000, 20_001, 60_000)] == \
        [1, 5, 20_000, 20_000, 50_000, 100_000]


# ---------------------------------------------------------------------------- Parquet and TFRecord
def _typed_rows(csv_path, spec):
    """The CSV's rows as typed values (None when empty) with the drafted dtypes; labels and extras too."""
    dtypes = {f.name: f.dtype for f in spec.features}
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    prof = spec_infer.read_profile(csv_path)
    for name in header:
        dtypes.setdefault(name, prof.columns[name].dtype)
    conv = {"int64": int, "float32": float, "string": str}
    return header, dtypes, [{h: (conv[dtypes[h]](v) if v != "" else None) for h, v in zip(header, r)} for r in rows]


def _comparable(draft):
    """The drafted spec without its file-dependent parts; features keyed by name (column order may differ)."""
    spec = dict(draft.spec)
    spec.pop("name")
    spec.pop("description")
    spec["features"] = {f["name"]: f for f in spec["features"]}
    spec["priors"] = {k: sorted(v) for k, v in spec["priors"].items()}
    spec["ignore"] = sorted(spec["ignore"])
    return spec


def test_parquet_gives_the_same_draft_as_csv(good_csv, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    csv_draft = infer_spec(good_csv)
    header, dtypes, rows = _typed_rows(good_csv, _load(tmp_path, csv_draft))
    types = {"int64": pa.int64(), "float32": pa.float64(), "string": pa.string()}
    table = pa.table({h: pa.array([r[h] for r in rows], type=types[dtypes[h]]) for h in header})
    path = tmp_path / "impressions.parquet"
    pq.write_table(table, str(path), row_group_size=7)
    draft = infer_spec(str(path))
    assert draft.profile.format == "parquet" and draft.profile.rows == 30
    assert _comparable(draft) == _comparable(csv_draft)
    _load(tmp_path, draft)
    # A list column is multivalent.
    lists = pa.table({"user_id": ["u1", "u2", "u3"], "scenario": ["a", "b", "a"], "click": [0, 1, 0],
                      "conversion": [0, 0, 0], "tags": [["x", "y"], ["z"], []]})
    pq.write_table(lists, str(tmp_path / "lists.parquet"))
    spec = _load(tmp_path, infer_spec(str(tmp_path / "lists.parquet")), "lists.yaml")
    assert spec.feature("tags").is_multivalent and spec.feature("tags").dtype == "string"


@pytest.mark.parametrize("gzipped", [True, False])
def test_tfrecord_gives_the_same_draft_as_csv(good_csv, tmp_path, gzipped):
    tf = pytest.importorskip("tensorflow")
    from tensorflow.core.example import example_pb2

    csv_draft = infer_spec(good_csv)
    header, dtypes, rows = _typed_rows(good_csv, _load(tmp_path, csv_draft))
    path = str(tmp_path / ("impressions.tfrecord" + (".gz" if gzipped else "")))
    with tf.io.TFRecordWriter(path, options="GZIP" if gzipped else None) as writer:
        for row in rows:
            ex = example_pb2.Example()
            for name in header:
                value = row[name]
                if value is None:
                    continue  # a missing value is an absent feature
                feat = ex.features.feature[name]
                if dtypes[name] == "int64":
                    feat.int64_list.value.append(value)
                elif dtypes[name] == "float32":
                    feat.float_list.value.append(value)
                else:
                    feat.bytes_list.value.append(value.encode())
            writer.write(ex.SerializeToString())
    with open(path, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == gzipped
    draft = infer_spec(path)
    assert draft.profile.format == "tfrecord" and draft.profile.rows == 30
    assert _comparable(draft) == _comparable(csv_draft)
    _load(tmp_path, draft)


# ---------------------------------------------------------------------------- the CLI
def _cli(args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + (os.pathsep + os.environ["PYTHONPATH"]
                                                    if os.environ.get("PYTHONPATH") else ""))
    return subprocess.run([sys.executable, "-m", "pipeline.cli"] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_yaml_to_stdout(good_csv):
    proc = _cli(["spec", "infer", good_csv, "--rows", "1000"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = yaml.safe_load(proc.stdout)
    assert doc["labels"] == {"click": "click", "raction": "action", "conversion": "conversion"}
    assert proc.stdout.startswith("# Draft feature spec written by `msmt spec infer`")
    assert "msmt spec infer: TODO: labels.conversion" in proc.stderr


def test_cli_output_file_and_missing_file(good_csv, tmp_path):
    out = tmp_path / "spec.yaml"
    proc = _cli(["spec", "infer", good_csv, "--output", str(out), "--name", "mine"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote {out}" in proc.stdout and load_spec(str(out)).name == "mine"
    proc = _cli(["spec", "infer", str(tmp_path / "nope.csv")])
    assert proc.returncode == 1
    assert f"msmt spec: error: {tmp_path / 'nope.csv'}: no such file" in proc.stderr


def test_gzipped_csv(good_csv, tmp_path):
    path = tmp_path / "impressions.csv.gz"
    with open(good_csv, "rb") as src, gzip.open(path, "wb") as dst:
        dst.write(src.read())
    assert _comparable(infer_spec(str(path))) == _comparable(infer_spec(good_csv))


def test_kuairand_shaped_log_takes_tab_as_the_scenario(tmp_path):
    # KuaiRand's log columns (user_id, video_id, date, ..., tab) with joined user features onehot_feat*: the
    # scenario is `tab`, not the first low-cardinality feature.
    rng = random.Random(1)
    header = ["user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
              "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "is_rand", "tab",
              "onehot_feat0", "onehot_feat1"]
    rows = []
    for i in range(600):
        click = int(rng.random() < 0.3)
        rows.append([f"{rng.randrange(80)}", f"{rng.randrange(300)}", 20220408 + i % 3, 1200 + i % 60,
                     1649390000000 + i * 1000, click, int(click and rng.random() < 0.1), 0,
                     int(click and rng.random() < 0.05), 0, 0, int(click and rng.random() < 0.4),
                     rng.randrange(60000), rng.randrange(10000, 90000), 0, rng.choice([0, 1, 2, 4, 6]),
                     rng.randrange(2), rng.randrange(3)])
    draft = infer_spec(_write_csv(tmp_path / "log_standard.csv", header, rows))
    spec = _load(tmp_path, draft)
    assert spec.scenario.name == "tab" and spec.scenario.values == ("0", "1", "2", "4", "6")
    assert spec.feature("onehot_feat0").role != "scenario"
    # Its engagement labels are declared tasks (no conversion label: not the funnel), after click where every
    # positive of the sample has a click; labels without a positive (follow, forward, hate) are tasks too,
    # flagged for checking.
    assert [(t.name, t.label, t.after) for t in spec.tasks] == [
        ("click", "is_click", None), ("like", "is_like", "click"), ("follow", "is_follow", None),
        ("comment", "is_comment", "click"), ("forward", "is_forward", None), ("hate", "is_hate", None),
        ("long_view", "long_view", "click")]
    assert "- {name: like, label: is_like, after: click}" in draft.text
    assert {w.split(":")[0] for w in draft.warnings if "no row is positive" in w} == {
        "tasks (is_follow)", "tasks (is_forward)", "tasks (is_hate)"}
    assert "TODO_" not in draft.text and not spec.is_funnel
    assert "tasks click, like (after click)" in summary(draft)


def test_a_mind_shaped_log_is_one_task_over_news_categories(tmp_path):
    # MIND's impression log flattened to one row per shown news: the impression id groups a request, the news
    # id is the item, the news category is the only scenario-like column (flagged for checking), one label.
    rng = random.Random(3)
    cats = ["news", "sports", "finance", "lifestyle", "health", "travel", "autos", "weather", "tv", "music"]
    rows = []
    for i in range(400):
        cat = rng.choice(cats)
        rows.append([i // 10, f"U{rng.randrange(80)}", f"11/15/2019 {rng.randrange(1, 12)}:{rng.randrange(60):02d}:00 AM",
                     f"N{rng.randrange(300)}", cat, f"{cat}_{rng.randrange(8)}", int(rng.random() < 0.05)])
    draft = infer_spec(_write_csv(tmp_path / "mind.csv", ["impression_id", "user_id", "time", "news_id", "category",
                                                          "subcategory", "click"], rows))
    spec = _load(tmp_path, draft)
    assert spec.scenario.name == "category" and len(spec.scenario.values) == len(cats)
    assert spec.feature("news_id").role == "id" and spec.feature("user_id").role == "id"
    assert spec.request_id == "impression_id" and spec.timestamp == "time"
    assert [(t.name, t.label, t.after) for t in spec.tasks] == [("click", "click", None)]
    assert [w.split(":")[0] for w in draft.warnings] == ["category"]  # the fallback scenario, to check


def test_a_timestamp_with_a_unit_suffix_is_the_timestamp_and_a_duration_is_not(tmp_path):
    rng = random.Random(4)
    rows = [[f"u{rng.randrange(50)}", f"i{rng.randrange(90)}", 1649383200000 + 1000 * i, rng.randrange(60000),
             int(rng.random() < 0.3)] for i in range(200)]
    draft = infer_spec(_write_csv(tmp_path / "log.csv", ["user_id", "item_id", "time_ms", "play_time_ms", "click"],
                                  rows))
    spec = _load(tmp_path, draft)
    assert spec.timestamp == "time_ms" and spec.feature("play_time_ms").name == "play_time_ms"  # a feature


def test_one_click_label_across_domains_is_a_single_task(tmp_path):
    rng = random.Random(2)
    rows = [[f"u{rng.randrange(50)}", f"n{rng.randrange(200)}", rng.choice(["books", "movies", "music"]),
             int(rng.random() < 0.2)] for _ in range(300)]
    draft = infer_spec(_write_csv(tmp_path / "douban.csv", ["user_id", "item_id", "domain", "click"], rows))
    spec = _load(tmp_path, draft)
    assert spec.scenario.name == "domain" and [(t.name, t.label, t.after) for t in spec.tasks] == [
        ("click", "click", None)]
    assert not any("conversion" in w for w in draft.warnings), draft.warnings
