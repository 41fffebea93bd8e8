"""preprocessing_fn through tft_beam on a tiny dataset, against hand-computed values (child process)."""

import math

import pytest

from tests.helpers import run_python

SPEC = {
    "name": "tiny",
    "features": [
        {"name": "user_id", "role": "id", "encoding": "hash", "hash_buckets": 100},
        {"name": "item_id", "role": "id"},
        {"name": "scen", "role": "scenario", "values": ["a", "b"]},
        {"name": "price", "role": "numeric", "transform": "log1p_zscore", "default": 0.0},
        {"name": "age", "role": "categorical", "dtype": "int64", "num_oov_buckets": 2},
        {"name": "tags", "role": "multivalent", "separator": ";"},
        {"name": "recent", "role": "sequence", "item": "item_id", "length": 3},
        {"name": "recent_users", "role": "sequence", "item": "user_id", "length": 2, "separator": ";"},
    ],
    "labels": {"click": "c", "conversion": "v", "raction": "a"},
}

CHILD = r"""
import json, math, sys, tempfile
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
from features.preprocessing import build_preprocessing_fn
from features.spec import spec_from_dict

spec = spec_from_dict(json.loads(sys.argv[2]))
raw_spec = {
    "user_id": tf.io.FixedLenFeature([], tf.string), "item_id": tf.io.FixedLenFeature([], tf.string),
    "scen": tf.io.FixedLenFeature([], tf.string), "price": tf.io.VarLenFeature(tf.float32),
    "age": tf.io.FixedLenFeature([], tf.int64), "tags": tf.io.FixedLenFeature([], tf.string),
    "recent": tf.io.FixedLenFeature([], tf.string), "recent_users": tf.io.FixedLenFeature([], tf.string),
    "c": tf.io.FixedLenFeature([], tf.int64), "v": tf.io.FixedLenFeature([], tf.int64),
    "a": tf.io.FixedLenFeature([], tf.int64),
}
meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
e = math.e
train = [
    dict(user_id=b"u1", item_id=b"i1", scen=b"a", price=[0.0], age=3, tags=b"x;y", c=1, v=1, a=0,
         recent=b"i2|i1|i9|i1", recent_users=b"u3;u1;u2"),
    dict(user_id=b"u2", item_id=b"i1", scen=b"b", price=[e - 1], age=3, tags=b"y", c=1, v=0, a=1,
         recent=b"i1", recent_users=b""),
    dict(user_id=b"u1", item_id=b"i2", scen=b"a", price=[], age=5, tags=b"", c=0, v=1, a=0,
         recent=b"", recent_users=b"u2"),
    dict(user_id=b"u3", item_id=b"i1", scen=b"b", price=[e * e - 1], age=3, tags=b"y;z;y", c=0, v=0, a=0,
         recent=b"|i2||", recent_users=b""),
]
serve = [dict(user_id=b"u1", item_id=b"never", scen=b"zzz", price=[float("nan")], age=99, tags=b"q;x",
              c=0, v=0, a=0, recent=b"never|i2", recent_users=b"u9"),
         dict(user_id=b"u1", item_id=b"i1", scen=b"a", price=[1e30], age=3, tags=b"x", c=0, v=0, a=0,
              recent=b"i1", recent_users=b"u1")]
with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (out, out_meta), transform_fn = (train, meta) | tft_beam.AnalyzeAndTransformDataset(
        build_preprocessing_fn(spec))
    served, _ = ((serve, meta), transform_fn) | tft_beam.TransformDataset()
hashes = [int(x) for x in tf.strings.to_hash_bucket_fast([b"u1", b"u2", b"u3"], 100).numpy()]
def plain(rows):
    res = []
    for r in rows:
        res.append({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()})
    return res
json.dump({"train": plain(out), "serve": plain(served), "hashes": hashes,
           "outputs": sorted(f.name for f in out_meta.schema.feature)}, open(sys.argv[1], "w"))
"""


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    import json

    path = str(tmp_path_factory.mktemp("tft") / "result.json")
    return run_python(CHILD, path, [json.dumps(SPEC)])


def test_output_keys(transformed):
    assert transformed["outputs"] == sorted([
        "user_id", "item_id", "scen", "price", "age", "tags", "recent", "recent_users",
        "label_click", "label_conversion", "label_ctcvr", "label_raction", "label_ctavr"])


def test_scenario_index_with_unknown_slot(transformed):
    assert [r["scen"] for r in transformed["train"]] == [0, 1, 0, 1]
    assert transformed["serve"][0]["scen"] == 2  # unknown scenario -> slot len(values)


def test_numeric_missing_imputed_then_log1p_zscore(transformed):
    # log1p(price) = [0, 1, default 0 -> 0, 2]; mean 0.75; population std sqrt(0.6875)
    logs = [0.0, 1.0, 0.0, 2.0]
    mean = sum(logs) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in logs) / 4)
    got = [r["price"] for r in transformed["train"]]
    assert got == pytest.approx([(x - mean) / std for x in logs], abs=1e-5)
    # NaN at serving time is imputed with the default (0 -> log1p 0)
    assert transformed["serve"][0]["price"] == pytest.approx((0.0 - mean) / std, abs=1e-5)
    # an absurd value is clipped to Z_MAX (log1p(1e30) = 69 would give z = 82)
    assert transformed["serve"][1]["price"] == pytest.approx(8.0)


def test_vocabulary_with_oov_buckets(transformed):
    items = [r["item_id"] for r in transformed["train"]]
    assert items == [0, 0, 1, 0]  # i1 (3x) is the most frequent entry
    assert transformed["serve"][0]["item_id"] == 2  # vocabulary size 2, one OOV bucket
    ages = [r["age"] for r in transformed["train"]]
    assert ages == [0, 0, 1, 0]
    assert transformed["serve"][0]["age"] in (2, 3)  # two OOV buckets after the 2-entry vocabulary


def test_hash_encoding(transformed):
    h1, h2, h3 = transformed["hashes"]
    assert [r["user_id"] for r in transformed["train"]] == [h1, h2, h1, h3]
    assert all(0 <= h < 100 for h in (h1, h2, h3))


def test_multivalent_ids_padded(transformed):
    tags = [r["tags"] for r in transformed["train"]]
    assert all(len(t) == 8 for t in tags)
    # y appears 4x (rank 0), x and z once each
    assert tags[1][:2] == [0, -1]
    assert 0 in tags[0][:2] and tags[0][2] == -1 and set(tags[0][:2]) - {0} <= {1, 2}
    assert tags[2] == [-1] * 8  # empty cell -> no ids
    assert tags[3][:4] == [0, tags[3][1], 0, -1]
    assert transformed["serve"][0]["tags"][0] == 3  # 'q' unseen -> OOV id (vocab x, y, z)


def test_label_targets(transformed):
    rows = transformed["train"]
    assert [r["label_click"] for r in rows] == [1, 1, 0, 0]
    assert [r["label_ctcvr"] for r in rows] == [1, 0, 0, 0]  # click AND conversion
    assert [r["label_ctavr"] for r in rows] == [0, 1, 0, 0]  # click AND action
    assert [r["label_conversion"] for r in rows] == [1, 0, 1, 0]  # incl. the unclicked conversion


def test_sequence_uses_its_items_vocabulary_truncated_and_padded(transformed):
    # item_id vocabulary: i1 (3x) -> 0, i2 -> 1, one OOV slot -> 2. The history's own items do not enter it
    # (i9 is OOV, as is an item only ever seen in histories). First `length` = 3 items, most recent first.
    assert [r["recent"] for r in transformed["train"]] == [[1, 0, 2], [0, -1, -1], [-1, -1, -1], [1, -1, -1]]
    assert [r["recent"] for r in transformed["serve"]] == [[2, 1, -1], [0, -1, -1]]


def test_sequence_of_a_hashed_id_uses_its_hash_buckets(transformed):
    h1, h2, h3 = transformed["hashes"]
    assert [r["recent_users"] for r in transformed["train"]] == [[h3, h1], [-1, -1], [h2, -1], [-1, -1]]
    assert transformed["serve"][1]["recent_users"] == [h1, -1]


def test_declared_tasks_give_one_label_feature_each_and_no_funnel_targets():
    """A spec of any tasks: ``label_<task>`` per task, no ctcvr/ctavr (hashed features: no analyzer, so the
    function runs eagerly)."""
    import tensorflow as tf

    from features.preprocessing import build_preprocessing_fn
    from features.spec import spec_from_dict

    spec = spec_from_dict({
        "name": "feed", "features": [{"name": "user_id", "role": "id", "encoding": "hash", "hash_buckets": 10},
                                     {"name": "tab", "role": "scenario", "values": ["0", "1"]}],
        "tasks": [{"name": "click", "label": "is_click"}, {"name": "like", "label": "is_like", "after": "click"}]})
    out = build_preprocessing_fn(spec)({
        "user_id": tf.constant([["u"], ["v"]]), "tab": tf.constant([["1"], ["7"]]),
        "is_click": tf.constant([[1], [0]], tf.int64), "is_like": tf.constant([[1], [0]], tf.int64)})
    assert sorted(out) == ["label_click", "label_like", "tab", "user_id"]
    assert out["label_like"].numpy().tolist() == [1.0, 0.0] and out["label_click"].dtype == tf.float32
    assert out["tab"].numpy().tolist() == [1, 2]  # "7" is the unknown-scenario slot
