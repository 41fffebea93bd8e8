"""Small stand-ins for serving tests: a tiny spec, a stub transform and model, serialized examples, and a
directory shaped like a SavedModel. Shared by the serving tests (test files do not import each other)."""

import os

import tensorflow as tf

from features.spec import spec_from_dict

SPEC = spec_from_dict({
    "name": "tiny",
    "features": [{"name": "user_id", "role": "id", "encoding": "hash", "hash_buckets": 10},
                 {"name": "scenario", "role": "scenario", "values": ["a", "b"]},
                 {"name": "age", "role": "categorical", "dtype": "int64"},
                 {"name": "price", "role": "numeric", "default": 1.5},
                 {"name": "tags", "role": "multivalent"}],
    "labels": {"click": "click", "conversion": "conv"},
})
RAW_SPEC = {
    "user_id": tf.io.FixedLenFeature([1], tf.string), "scenario": tf.io.FixedLenFeature([1], tf.string),
    "age": tf.io.FixedLenFeature([1], tf.int64), "price": tf.io.VarLenFeature(tf.float32),
    "tags": tf.io.FixedLenFeature([1], tf.string), "click": tf.io.FixedLenFeature([1], tf.int64),
    "conv": tf.io.FixedLenFeature([1], tf.int64), "p_click": tf.io.FixedLenFeature([1], tf.float32),
}


class StubTransformOutput:
    """Stands in for ``tft.TFTransformOutput``: a transform with the same input forms as the real one."""

    def raw_feature_spec(self):
        return dict(RAW_SPEC)

    def transform_features_layer(self):
        def transform(raw):
            price = tf.sparse.to_dense(raw["price"], default_value=float("nan"))
            price = tf.pad(price, [[0, 0], [0, 1 - tf.shape(price)[1]]], constant_values=float("nan"))[:, 0]
            out = {"price": tf.where(tf.math.is_finite(price), price, 1.5),
                   "age": tf.cast(raw["age"][:, 0], tf.float32),
                   "tags": tf.cast(tf.strings.length(raw["tags"][:, 0]), tf.float32),
                   "user": tf.cast(tf.strings.to_hash_bucket_fast(raw["user_id"][:, 0], 10), tf.float32),
                   "scenario": tf.cast(tf.equal(raw["scenario"][:, 0], "b"), tf.float32)}
            if "click" in raw:
                out["label_click"] = tf.cast(raw["click"][:, 0], tf.float32)
            return out
        return transform


class StubModel(tf.Module):
    def __call__(self, x, training=False):
        z = 0.1 * x["price"] + 0.01 * x["age"] + 0.05 * x["tags"] + 0.02 * x["user"] + x["scenario"]
        return {"ctr": tf.sigmoid(z)[:, None], "ctcvr": tf.sigmoid(z - 2.0)[:, None]}


def example(user, scenario, age, price, tags, click=0):
    f = {"user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user])),
         "scenario": tf.train.Feature(bytes_list=tf.train.BytesList(value=[scenario])),
         "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[age])),
         "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tags])),
         "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[click])),
         "conv": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
    if price is not None:
        f["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[price]))
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


EXAMPLES = [example(b"u1", b"a", 3, 2.0, b"x|y"), example(b"u2", b"b", 5, None, b""),
            example(b"u3", b"zz", 0, 7.5, b"t1|t2|t3", click=1)]
RAW_FEATURES = {"user_id": "string", "scenario": "string", "age": "int64", "price": "float32", "tags": "string"}


def fake_saved_model(path):
    """A directory shaped like a SavedModel (publishing copies files; it does not parse them)."""
    os.makedirs(os.path.join(path, "variables"))
    for name, data in (("saved_model.pb", b"pb"), ("variables/variables.index", b"idx"),
                       ("variables/variables.data-00000-of-00001", b"data")):
        with open(os.path.join(path, name), "wb") as fh:
            fh.write(data)
    return str(path)


def export_stub_model(path) -> str:
    """:class:`StubModel` saved with the real serving signatures and export metadata (a SavedModel that
    ``serving_default``, ``predict_raw`` and batch scoring can call, built in about a second)."""
    from serving import signatures

    model = StubModel()
    sigs = signatures.build_signatures(model, StubTransformOutput(), SPEC)
    tf.saved_model.save(model, str(path), signatures=sigs)
    signatures.write_export_metadata(str(path), signatures.export_metadata(
        SPEC, ["ctr", "ctcvr"], {k: RAW_SPEC[k] for k in RAW_FEATURES}))
    return str(path)
