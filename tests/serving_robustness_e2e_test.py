"""End to end: the pushed model serves odd requests with finite probabilities and rejects malformed ones clearly.

Uses the session's synthetic pipeline run (``synthetic_run``). One child process loads the newest pushed
version once (``tf.saved_model.load``, plus a TF1 session like TF Serving's), takes the first real eval
``tf.Example`` of the run with every raw feature present (ExampleGen ``Split-eval``), keeps only the raw
feature columns of ``assets.extra/msmt_export.json`` (a request carries no labels) and derives the cases
below from it. Every case goes through ``serving_default`` (serialized examples) and ``predict_raw`` (the
same rows decoded with ``serving.signatures.raw_inputs_from_examples``: a missing value becomes ``""``, ``0``
or NaN); the parent asserts every head is finite and in [0, 1], both signatures agree within 1e-5, the
funnel holds (``ctcvr <= ctr``, ``ctcvr <= xcvr``) and NaN / inf floats score exactly like absent ones.

Valid requests (case name: what it injects into the base example):

* ``base``: nothing, the real eval row.
* ``unseen_ids``: ``user_id`` and ``item_id`` strings never seen in training (one of them non-ASCII UTF-8).
* ``unseen_scenario``: ``scenario = "never_seen_scenario"`` (the transform's unknown-scenario slot).
* ``unseen_everything``: unseen ids, scenario, every other string (``device``, ``item_tags``) and every
  int64 categorical set to 987654321.
* ``missing:<feature>``: one optional feature removed from the example, for every optional feature of the
  spec: categorical ints and strings (``user_segment``, ``user_age``, ``user_gender``, ``item_category``,
  ``item_brand``, ``hour``, ``device``), numeric (``item_price``), multivalent (``item_tags``) and float
  priors (``user_activity``, ``item_popularity``).
* ``missing:all_optional``: only the required features (``user_id``, ``item_id``, ``scenario``) are sent;
  ``missing:all_floats``: every float32 feature removed (the reference for the NaN / inf cases).
* ``empty:<feature>``: one string feature (ids, scenario, ``device``, ``item_tags``) set to ``""``;
  ``empty:all_strings``: all of them at once.
* ``float:<value>``: every float32 feature (``item_price``, ``user_activity``, ``item_popularity``) set to
  1e30, -1e30, 0, float32 max, -float32 max, the smallest denormal 1e-45 or 2**62.
* ``int:<value>``: every int64 feature set to 0, -1, 10**15, int64 max or int64 min.
* ``nonfinite:<value>``: every float32 feature set to NaN, +inf or -inf.
* ``tags:separators_only`` (``item_tags = "|||"``), ``tags:many_unseen`` (100 unseen tags, more than the
  transform's 8 slots), ``long_strings`` (100 kB ``user_id`` / ``item_id`` / ``device`` / ``item_tags``).
* ``batch:all_valid``: every case above in one batch gives what each gave alone (within 1e-5);
  ``batch:empty``: a batch of zero examples gives zero rows per head.

Malformed requests (each followed by the good ``base`` request on the same loaded model, which must still
give the base scores):

* ``missing_required:<feature>``: ``user_id``, ``item_id`` or ``scenario`` removed. "Required" is the id and
  scenario roles of the spec (``serving.signatures.REQUIRED_ROLES``) that the training data always had:
  without them a row cannot be attributed or routed, whereas an unseen or empty value is a legitimate
  cold-start request (an id column the data sometimes lacked stays optional). ``serving_default`` must
  fail with an ``InvalidArgumentError`` that names the feature, through TF2 and through the TF1 session;
  a batch mixing the bad row with a good one fails the same way. ``predict_raw`` called without that input
  must raise a ``TypeError``/``ValueError`` naming it (TF Serving rejects such a request before running).
* ``wrong_dtype:<feature>``: ``user_id`` sent as an int64 list, ``user_age`` as bytes;
  ``two_values:user_age``: two values for a single-valued feature. ``InvalidArgumentError`` naming it.
* ``predict_raw:ragged_batch``: ``user_id`` with 2 rows, every other input with 1: an
  ``InvalidArgumentError`` naming ``user_id`` (before the fix it failed deep in the model's concat).
"""

import math

import pytest

from tests.helpers import eval_examples_glob, newest_pushed_version, run_python

REQUIRED = ["item_id", "scenario", "user_id"]
OPTIONAL = ["device", "hour", "item_brand", "item_category", "item_popularity", "item_price", "item_tags",
            "user_activity", "user_age", "user_gender", "user_segment"]
ATOL = 1e-5

CHILD = r"""
import glob, json, sys, traceback
import numpy as np
import tensorflow as tf
from features.spec import spec_from_dict
from serving.signatures import (PREDICT_RAW_SIGNATURE, SERVING_SIGNATURE, raw_inputs_from_examples,
                                read_export_metadata, required_features)

result_path, model_dir, examples_glob = sys.argv[1:4]
meta = read_export_metadata(model_dir)
raw_features = meta["raw_features"]
spec = spec_from_dict(meta["spec"], source="export metadata")
required = required_features(spec, raw_features)
loaded = tf.saved_model.load(model_dir)
serving, predict_raw = loaded.signatures[SERVING_SIGNATURE], loaded.signatures[PREDICT_RAW_SIGNATURE]
KIND = {"string": "bytes_list", "int64": "int64_list", "float32": "float_list"}


def decode(serialized):
    ex = tf.train.Example.FromString(serialized)
    out = {}
    for name, kind in raw_features.items():
        values = getattr(ex.features.feature[name], KIND[kind]).value if name in ex.features.feature else []
        if len(values) == 1:
            out[name] = values[0]
    return out


def encode(values, kinds=None):
    ex = tf.train.Example()
    for name, v in values.items():
        kind = (kinds or {}).get(name, raw_features[name])
        getattr(ex.features.feature[name], KIND[kind]).value.extend(v if isinstance(v, list) else [v])
    return ex.SerializeToString()


files = sorted(glob.glob(examples_glob))
base = next(v for v in (decode(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
            if set(v) == set(raw_features))


def case(**changes):
    v = dict(base)
    for k, x in changes.items():
        if x is None:
            v.pop(k)
        else:
            v[k] = x
    return v


names = {kind: [n for n, k in raw_features.items() if k == kind] for kind in KIND}
optional = [n for n in raw_features if n not in required]
ids = [f.name for f in spec.features if f.role == "id"]
scenario = spec.scenario.name
cases = {
    "base": base,
    "unseen_ids": case(**{ids[0]: "user-never-seen-\u2603".encode(), ids[-1]: b"item-never-seen"}),
    "unseen_scenario": case(**{scenario: b"never_seen_scenario"}),
    "unseen_everything": case(**{n: b"never-seen-" + n.encode() for n in names["string"]},
                              **{n: 987654321 for n in names["int64"]}),
}
for n in optional:
    cases["missing:" + n] = case(**{n: None})
cases["missing:all_optional"] = case(**{n: None for n in optional})
cases["missing:all_floats"] = case(**{n: None for n in names["float32"]})
for n in names["string"]:
    cases["empty:" + n] = case(**{n: b""})
cases["empty:all_strings"] = case(**{n: b"" for n in names["string"]})
for label, x in [("1e30", 1e30), ("-1e30", -1e30), ("0", 0.0), ("float32_max", 3.4028235e38),
                 ("-float32_max", -3.4028235e38), ("denormal", 1e-45), ("2**62", 2.0 ** 62)]:
    cases["float:" + label] = case(**{n: x for n in names["float32"]})
for label, x in [("0", 0), ("-1", -1), ("1e15", 10 ** 15), ("int64_max", 2 ** 63 - 1), ("int64_min", -2 ** 63)]:
    cases["int:" + label] = case(**{n: x for n in names["int64"]})
for label, x in [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))]:
    cases["nonfinite:" + label] = case(**{n: x for n in names["float32"]})
multivalent = [f.name for f in spec.features if f.role == "multivalent"]
for n in multivalent:
    cases["tags:separators_only"] = case(**{n: b"|||"})
    cases["tags:many_unseen"] = case(**{n: b"|".join(b"zz%d" % i for i in range(100))})
cases["long_strings"] = case(**{n: b"x" * 100_000 for n in names["string"] if n != scenario})


def listed(outputs):
    return {k: np.asarray(v).reshape(-1).astype(float).tolist() for k, v in outputs.items()}


def serve(batch):
    return listed(serving(examples=tf.constant(batch, dtype=tf.string)))


def raw(batch):
    inputs = raw_inputs_from_examples(batch, raw_features)
    return listed(predict_raw(**{k: tf.constant(v) for k, v in inputs.items()}))


def attempt(fn, *args):
    try:
        return {"outputs": fn(*args), "error": None}
    except Exception as e:
        return {"outputs": None, "error": {"type": type(e).__name__, "message": str(e)[:3000],
                                           "traceback": traceback.format_exc()[-3000:]}}


good = encode(base)
result = {"required": required, "optional": optional, "heads": meta["heads"], "cases": {}, "bad": {}}
serialized = {}
for name, values in cases.items():
    serialized[name] = encode(values)
    result["cases"][name] = {"serving_default": attempt(serve, [serialized[name]]),
                             "predict_raw": attempt(raw, [serialized[name]]),
                             "sent": sorted(values)}
result["batch:all_valid"] = {"serving_default": attempt(serve, list(serialized.values())),
                             "predict_raw": attempt(raw, list(serialized.values())), "order": list(serialized)}
result["batch:empty"] = {"serving_default": attempt(serve, []), "predict_raw": attempt(raw, [])}


def bad_then_good(name, bad_fn, good_fn=lambda: serve([good])):
    result["bad"][name] = {"bad": attempt(bad_fn), "good_after": attempt(good_fn)}


for n in required:
    bad = encode(case(**{n: None}))
    bad_then_good("missing_required:" + n, lambda: serve([bad]))
    bad_then_good("missing_required_in_batch:" + n, lambda: serve([good, bad]))
    inputs = raw_inputs_from_examples([good], raw_features)
    inputs.pop(n)
    bad_then_good("predict_raw_missing_input:" + n,
                  lambda: listed(predict_raw(**{k: tf.constant(v) for k, v in inputs.items()})),
                  lambda: raw([good]))
bad_then_good("wrong_dtype:user_id", lambda: serve([encode(case(user_id=7), {"user_id": "int64"})]))
bad_then_good("wrong_dtype:user_age", lambda: serve([encode(case(user_age=b"young"), {"user_age": "string"})]))
bad_then_good("two_values:user_age", lambda: serve([encode(case(user_age=[3, 4]))]))
ragged = raw_inputs_from_examples([good], raw_features)
ragged[ids[0]] = np.array([ragged[ids[0]][0]] * 2, dtype=object)
bad_then_good("predict_raw:ragged_batch",
              lambda: listed(predict_raw(**{k: tf.constant(v) for k, v in ragged.items()})), lambda: raw([good]))

# The same missing-required request through a TF1 session, the way TF Serving runs a SignatureDef.
tf1 = {}
with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], model_dir)
    sig = meta_graph.signature_def[SERVING_SIGNATURE]
    fetches = {k: v.name for k, v in sig.outputs.items()}
    feed = sig.inputs["examples"].name
    run = lambda batch: {k: v.reshape(-1).astype(float).tolist() for k, v in sess.run(fetches, {feed: batch}).items()}
    for n in required:
        bad = encode(case(**{n: None}))
        tf1[n] = {"bad": attempt(run, [bad]), "good_after": attempt(run, [good])}
result["tf1"] = tf1

with open(result_path, "w") as fh:
    json.dump(result, fh)
"""


@pytest.fixture(scope="module")
def robustness(synthetic_run, tmp_path_factory):
    _, out, _ = synthetic_run
    work = tmp_path_factory.mktemp("serving-robustness")
    return run_python(CHILD, str(work / "result.json"), [newest_pushed_version(out), eval_examples_glob(out)],
                      timeout=900)


def _check_probabilities(where, outputs, heads, rows):
    assert outputs is not None
    assert sorted(outputs) == sorted(heads), where
    for head, values in outputs.items():
        assert len(values) == rows, (where, head, values)
        for v in values:
            assert math.isfinite(v) and 0.0 <= v <= 1.0, (where, head, values)


def _close(a, b):
    return all(abs(x - y) <= ATOL for h in a for x, y in zip(a[h], b[h])) and set(a) == set(b)


def test_required_and_optional_features_follow_the_spec_roles(robustness):
    assert sorted(robustness["required"]) == REQUIRED
    assert sorted(robustness["optional"]) == OPTIONAL
    sent = robustness["cases"]["missing:all_optional"]["sent"]
    assert sorted(sent) == REQUIRED


def test_every_valid_request_gives_finite_probabilities_from_both_signatures(robustness):
    heads = robustness["heads"]
    expected = ({"base", "unseen_ids", "unseen_scenario", "unseen_everything", "missing:all_optional",
                 "empty:all_strings", "tags:separators_only", "tags:many_unseen", "long_strings"}
                | {"missing:" + n for n in OPTIONAL} | {"empty:" + n for n in REQUIRED + ["device", "item_tags"]})
    assert expected <= set(robustness["cases"])
    failures = {}
    for name, res in robustness["cases"].items():
        for sig in ("serving_default", "predict_raw"):
            if res[sig]["error"]:
                failures[f"{name} {sig}"] = res[sig]["error"]["type"] + ": " + res[sig]["error"]["message"][:500]
    assert not failures, failures
    for name, res in robustness["cases"].items():
        served, raw = res["serving_default"]["outputs"], res["predict_raw"]["outputs"]
        _check_probabilities(name + " serving_default", served, heads, 1)
        _check_probabilities(name + " predict_raw", raw, heads, 1)
        assert _close(served, raw), (name, served, raw)


def test_odd_values_change_the_scores_but_stay_funnel_ordered(robustness):
    cases = robustness["cases"]
    for name, res in cases.items():
        out = res["serving_default"]["outputs"]
        assert out["ctcvr"][0] <= out["ctr"][0] + 1e-6 and out["ctcvr"][0] <= out["xcvr"][0] + 1e-6, (name, out)
    # the injected values reach the model: an unseen scenario or an all-unseen row is not scored as the base row
    base = cases["base"]["serving_default"]["outputs"]
    assert not _close(cases["unseen_everything"]["serving_default"]["outputs"], base)
    # NaN / inf floats are imputed exactly like absent floats
    absent = cases["missing:all_floats"]["serving_default"]["outputs"]
    for label in ("nan", "inf", "-inf"):
        assert _close(cases["nonfinite:" + label]["serving_default"]["outputs"], absent), label


def test_batches_score_each_row_as_alone(robustness):
    heads = robustness["heads"]
    batch = robustness["batch:all_valid"]
    order = batch["order"]
    for sig in ("serving_default", "predict_raw"):
        assert batch[sig]["error"] is None, batch[sig]["error"]
        out = batch[sig]["outputs"]
        _check_probabilities("batch " + sig, out, heads, len(order))
        for i, name in enumerate(order):
            alone = robustness["cases"][name][sig]["outputs"]
            for h in heads:
                assert abs(out[h][i] - alone[h][0]) <= ATOL, (sig, name, h, out[h][i], alone[h][0])
    empty = robustness["batch:empty"]
    for sig in ("serving_default", "predict_raw"):
        assert empty[sig]["error"] is None, empty[sig]["error"]
        assert empty[sig]["outputs"] == {h: [] for h in heads}


def _assert_clear_error_then_serving(name, res, base, feature, error_types=("InvalidArgumentError",)):
    bad, after = res["bad"], res["good_after"]
    assert bad["outputs"] is None, f"{name}: a malformed request was scored: {bad['outputs']}"
    assert bad["error"]["type"] in error_types, (name, bad["error"])
    assert feature in bad["error"]["message"], (name, bad["error"]["message"])
    assert after["error"] is None, (name, after["error"])
    assert _close(after["outputs"], base), (name, after["outputs"], base)


def test_a_request_missing_a_required_feature_gets_a_clear_error_and_serving_goes_on(robustness):
    base = robustness["cases"]["base"]["serving_default"]["outputs"]
    bad = robustness["bad"]
    for feature in REQUIRED:
        for name in ("missing_required:" + feature, "missing_required_in_batch:" + feature):
            _assert_clear_error_then_serving(name, bad[name], base, feature)
            assert "required" in bad[name]["bad"]["error"]["message"]
        _assert_clear_error_then_serving("predict_raw_missing_input:" + feature,
                                         bad["predict_raw_missing_input:" + feature], base, feature,
                                         ("TypeError", "ValueError"))
        tf1 = robustness["tf1"][feature]
        _assert_clear_error_then_serving("tf1 missing " + feature, tf1, base, feature)


def test_other_malformed_requests_get_a_clear_error_and_serving_goes_on(robustness):
    base = robustness["cases"]["base"]["serving_default"]["outputs"]
    bad = robustness["bad"]
    for name, feature in (("wrong_dtype:user_id", "user_id"), ("wrong_dtype:user_age", "user_age"),
                          ("two_values:user_age", "user_age")):
        _assert_clear_error_then_serving(name, bad[name], base, feature)
    ragged = bad["predict_raw:ragged_batch"]
    _assert_clear_error_then_serving("predict_raw:ragged_batch", ragged, base, "user_id")
    assert "has a different number of rows" in ragged["bad"]["error"]["message"]
