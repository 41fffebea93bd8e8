"""End to end: batch scoring (``serving.scoring.score``) with the model pushed by the session's pipeline run.

500 raw CSV rows are scored in a fresh process (Beam may crash at interpreter exit) to Parquet and to CSV,
and the same rows, written as a gzipped TFRecord of tf.Examples, to TFRecord. Every output must have one
row per input row, carry the ids and the scenario, and give for every head what ``serving_default`` gives
when called directly on the same rows (within 1e-6). Rows are matched by (request, user, item, scenario);
a key that repeats is compared as the sorted list of its rows' scores, so output order does not matter.
"""

import collections
import glob
import os

from tests.helpers import run_python

ROWS = 500
KEYS = ("request_id", "user_id", "item_id", "scenario")

SCORE_CHILD = r"""
import csv, glob, json, os, sys
import pyarrow.parquet as pq
import tensorflow as tf
from features.spec import resolve_spec
from serving import scoring

model_dir, data, out, csv_spec = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None
spec = resolve_spec("synthetic")

def reference_example(row):
    # built from the spec alone, independently of serving.scoring's conversion
    ex = tf.train.Example()
    for name, dtype in [(f.name, f.dtype) for f in spec.features] + [("request_id", "string")]:
        text = row[name]
        if text == "":
            continue
        if dtype == "int64":
            ex.features.feature[name].int64_list.value.append(int(text))
        elif dtype == "float32":
            ex.features.feature[name].float_list.value.append(float(text))
        else:
            ex.features.feature[name].bytes_list.value.append(text.encode())
    return ex.SerializeToString()

with open(data, newline="") as fh:
    rows = list(csv.DictReader(fh))
records = [reference_example(r) for r in rows]
tfrecord = os.path.join(out, "input", "rows.tfrecord.gz")
os.makedirs(os.path.dirname(tfrecord))
with tf.io.TFRecordWriter(tfrecord, options="GZIP") as w:
    for rec in records:
        w.write(rec)

runs = {"parquet": scoring.score(model_dir, data, os.path.join(out, "parquet"), "parquet", spec="synthetic"),
        "csv": scoring.score(model_dir, data, os.path.join(out, "csv"), "csv", spec=csv_spec),
        "tfrecord": scoring.score(model_dir, tfrecord, os.path.join(out, "tfrecord"), "tfrecord", spec="synthetic")}

def read_tfrecord(files):
    out_rows = []
    for rec in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feats = tf.train.Example.FromString(rec.numpy()).features.feature
        row = {}
        for name, f in feats.items():
            kind = f.WhichOneof("kind")
            v = getattr(f, kind).value[0]
            row[name] = v.decode() if isinstance(v, bytes) else v
        out_rows.append(row)
    return out_rows

def read_csv(files):
    out_rows = []
    for path in files:
        with open(path, newline="") as fh:
            out_rows += list(csv.DictReader(fh))
    return out_rows

got = {"parquet": pq.read_table(runs["parquet"]["files"]).to_pylist(), "csv": read_csv(runs["csv"]["files"]),
       "tfrecord": read_tfrecord(runs["tfrecord"]["files"])}
served = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(records))
expected = [dict({k: r[k] for k in ("request_id", "user_id", "item_id", "scenario")},
                 **{h: float(v[i]) for h, v in served.items()}) for i, r in enumerate(rows)]
json.dump({"runs": runs, "got": got, "expected": expected}, open(sys.argv[1], "w"))
"""


def _model_dir(out):
    versions = glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))
    assert versions, "the session's pipeline run pushed no model"
    # the fixture's own push is the oldest version; later tests may push more into the same run directory
    return min((os.path.dirname(v) for v in versions), key=lambda d: int(os.path.basename(d)))


def _sample_csv(root, path):
    source = sorted(glob.glob(str(root / "data" / "span-*" / "impressions.csv")))[0]
    with open(source) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i > ROWS:
                break
            dst.write(line)
    return str(path)


def _by_key(rows, heads):
    grouped = collections.defaultdict(list)
    for r in rows:
        grouped[tuple(str(r[k]) for k in KEYS)].append(tuple(float(r[h]) for h in heads))
    return {k: sorted(v) for k, v in grouped.items()}


def _assert_same_scores(got, expected, heads, fmt):
    assert len(got) == len(expected) == ROWS, fmt
    assert set(got[0]) == set(KEYS) | set(heads), (fmt, sorted(got[0]))
    got_by_key, exp_by_key = _by_key(got, heads), _by_key(expected, heads)
    assert got_by_key.keys() == exp_by_key.keys(), fmt
    assert all(len(got_by_key[k]) == len(exp_by_key[k]) for k in exp_by_key), fmt
    worst = max(abs(a - b) for k in exp_by_key for ga, ea in zip(got_by_key[k], exp_by_key[k])
                for a, b in zip(ga, ea))
    assert worst <= 1e-6, (fmt, worst)


def test_batch_scoring_matches_serving_default(synthetic_run, tmp_path):
    root, out, _ = synthetic_run
    model_dir = _model_dir(out)
    data = _sample_csv(root, tmp_path / "sample.csv")
    has_metadata = os.path.exists(os.path.join(model_dir, "assets.extra", "msmt_export.json"))
    res = run_python(SCORE_CHILD, str(tmp_path / "result.json"),
                     [model_dir, data, str(tmp_path / "scores"), "" if has_metadata else "synthetic"], timeout=600)
    heads = [h for h in ("ctr", "ctavr", "cvr", "ctcvr", "xcvr") if h in res["expected"][0]]
    assert {"ctr", "ctcvr", "xcvr"} <= set(heads)
    for fmt, run in res["runs"].items():
        assert run["rows_in"] == run["rows_out"] == ROWS, (fmt, run)
        assert run["heads"][:len(heads)] == heads and len(run["files"]) >= 1, (fmt, run)
        _assert_same_scores(res["got"][fmt], res["expected"], run["heads"], fmt)
    assert res["runs"]["csv"]["files"][0].endswith(".csv")
    assert res["runs"]["parquet"]["files"][0].endswith(".parquet")
