"""Feature spec validation: the shipped specs load; bad files fail with the file and key named."""

import os
import textwrap

import pytest

from features.spec import SPEC_DIR, SpecError, builtin_spec_path, load_spec, resolve_spec, spec_from_dict

GOOD = """
name: tiny
features:
  - {name: user_id, role: id, encoding: hash, hash_buckets: 100}
  - {name: item_id, role: id}
  - {name: scen, role: scenario, values: [a, b]}
  - {name: price, role: numeric, transform: log1p_zscore, default: 1.5}
  - {name: tags, role: multivalent, separator: ";"}
  - {name: act, role: prior, dtype: float32}
priors: {user: [user_id, act], item: [item_id], scenario: [scen]}
labels: {click: c, conversion: v, raction: a}
ignore: [truth]
"""


def _write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_good_spec_loads_with_roles(tmp_path):
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.name == "tiny"
    assert spec.scenario.name == "scen" and spec.num_scenarios == 2
    assert spec.feature("user_id").encoding == "hash" and spec.feature("user_id").hash_buckets == 100
    assert spec.feature("item_id").encoding == "vocab" and spec.feature("item_id").num_oov_buckets == 1
    assert spec.feature("price").is_numeric and spec.feature("price").default == 1.5
    assert spec.feature("act").is_numeric and not spec.feature("act").is_categorical
    assert spec.feature("tags").is_multivalent and spec.feature("tags").separator == ";"
    assert spec.label_columns == {"click": "c", "conversion": "v", "raction": "a"}
    assert spec.priors["user"] == ("user_id", "act")


def test_to_dict_round_trip(tmp_path):
    spec = load_spec(_write(tmp_path, GOOD))
    again = spec_from_dict(spec.to_dict(), source="roundtrip")
    assert again.features == spec.features
    assert again.labels == spec.labels and dict(again.priors) == dict(spec.priors)


@pytest.mark.parametrize("name", ["synthetic", "aliccp", "aliexpress", "synthetic_sequence"])
def test_shipped_specs_load(name):
    spec = load_spec(builtin_spec_path(name))
    assert spec.name == name
    assert spec.labels.click and spec.labels.conversion


def test_shipped_spec_names_match_files():
    names = sorted(f[:-5] for f in os.listdir(SPEC_DIR) if f.endswith(".yaml"))
    assert names == ["aliccp", "aliexpress", "synthetic", "synthetic_sequence"]


@pytest.mark.parametrize("edit, key", [
    (("role: scenario, values: [a, b]", "role: scenario"), "features[2] (scen).values"),
    (("role: id}", "role: idd}"), "features[1] (item_id).role"),
    (("hash_buckets: 100", "hash_buckets: 0"), "features[0] (user_id).hash_buckets"),
    (("transform: log1p_zscore", "transform: sqrt"), "features[3] (price).transform"),
    (("conversion: v, ", ""), "labels.conversion"),
    (("item: [item_id]", "item: [nope]"), "priors.item"),
    (("ignore: [truth]", "ignore: [c]"), "ignore"),
    (("name: tiny", "name: tiny\ncolour: red"), "colour"),
    (("separator: \";\"", "separator: \";;\""), "features[4] (tags).separator"),
])
def test_bad_spec_names_file_and_key(tmp_path, edit, key):
    old, new = edit
    text = textwrap.dedent(GOOD)
    assert old in text
    path = _write(tmp_path, text.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(path + ": "), msg
    assert key in msg, msg


def test_two_scenarios_rejected(tmp_path):
    text = textwrap.dedent(GOOD).replace("role: id}", "role: scenario, values: [x]}")
    with pytest.raises(SpecError, match="exactly one feature must have role 'scenario'"):
        load_spec(_write(tmp_path, text))


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(_write(tmp_path, "name: [unclosed"))
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(str(tmp_path / "absent.yaml"))
    with pytest.raises(SpecError, match="no built-in spec 'nope'"):
        resolve_spec("nope")


SEQUENCE = GOOD.replace('  - {name: act, role: prior, dtype: float32}\n',
                        '  - {name: act, role: prior, dtype: float32}\n'
                        '  - {name: recent, role: sequence, item: item_id, length: 5}\n')


def test_sequence_feature_shares_its_item_and_defaults_to_target_attention(tmp_path):
    spec = load_spec(_write(tmp_path, SEQUENCE))
    recent = spec.feature("recent")
    assert recent.is_sequence and recent.is_list and not recent.is_multivalent
    assert (recent.item, recent.length, recent.pooling, recent.separator) == ("item_id", 5, "attention", "|")
    assert spec_from_dict(spec.to_dict(), source="roundtrip").features == spec.features
    mean = load_spec(_write(tmp_path, SEQUENCE.replace("length: 5}", "length: 5, pooling: mean}"), "m.yaml"))
    assert mean.feature("recent").pooling == "mean"


@pytest.mark.parametrize("old, new, key, message", [
    ("item: item_id, length: 5", "item: item_id", "(recent).length", "is required: the number of recent items"),
    ("length: 5", "length: 0", "(recent).length", "an integer in [1, 512]"),
    ("item: item_id, ", "", "(recent).item", "is required: the candidate item feature"),
    ("item: item_id", "item: price", "(recent).item", "must name an id or categorical feature"),
    ("item: item_id", "item: nope", "(recent).item", "must name an id or categorical feature"),
    ("length: 5}", "length: 5, encoding: hash}", "(recent).encoding", "encoded and embedded as its item"),
    ("length: 5}", "length: 5, pooling: sum}", "(recent).pooling", "must be one of attention, mean"),
    ("length: 5}", "length: 5, dtype: int64}", "(recent).dtype", "separator-joined string"),
    ("{name: tags, role: multivalent,", "{name: tags, role: multivalent, length: 3,", "(tags).length",
     "only a sequence feature has it"),
])
def test_bad_sequence_features_name_the_key(tmp_path, old, new, key, message):
    text = textwrap.dedent(SEQUENCE)
    assert old in text
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, text.replace(old, new)))
    assert key in str(err.value) and message in str(err.value), str(err.value)


def test_drift_levels_default_per_kind_and_per_feature_override(tmp_path):
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.drift.levels("tags", "string") == spec.drift.levels("price", "float32")  # the defaults
    assert (spec.drift.levels("price", "float32").warn, spec.drift.levels("price", "float32").block) == (0.05, 0.2)
    assert "drift" not in spec.to_dict()  # a spec without a drift section writes none (Transform graphs unchanged)
    text = GOOD + "drift:\n  numeric: {warn: 0.1, block: 0.4}\n  features: {price: {warn: 0.02}, scen: {block: 0.3}}\n"
    spec = load_spec(_write(tmp_path, text))
    price, scen, tags = (spec.drift.levels(n, d) for n, d in (("price", "float32"), ("scen", "string"),
                                                                ("tags", "string")))
    assert (price.warn, price.block) == (0.02, 0.4)  # its own warn, its kind's block
    assert (scen.warn, scen.block) == (0.05, 0.3) and (tags.warn, tags.block) == (0.05, 0.2)
    assert spec_from_dict(spec.to_dict(), source="roundtrip").drift == spec.drift


@pytest.mark.parametrize("section, message", [
    ("drift: {numeric: {warn: 0.3, block: 0.2}}", "drift.numeric: warn 0.3 is above block 0.2"),
    ("drift: {numeric: {warn: 0}}", "drift.numeric.warn: must be a number in (0, 1], got 0"),
    ("drift: {numeric: {warn: high}}", "drift.numeric.warn: must be a number in (0, 1], got 'high'"),
    ("drift: {numeric: {alert: 0.1}}", "drift.numeric: must be a mapping with 'warn' and/or 'block'"),
    ("drift: {text: {warn: 0.1}}", "drift: unknown key(s) ['text']"),
    ("drift: {features: {nope: {warn: 0.1}}}", "drift.features.nope: not a feature of the spec"),
])
def test_bad_drift_sections_name_the_key(tmp_path, section, message):
    path = _write(tmp_path, GOOD + section + "\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}"), str(err.value)


TASKS = """
name: feed
features:
  - {name: user_id, role: id, encoding: hash, hash_buckets: 100}
  - {name: tab, role: scenario, values: [0, 1]}
tasks:
  - {name: click, label: is_click}
  - {name: like, label: is_like, after: click}
  - {name: follow, label: is_follow, after: like}
  - {name: long_view, label: long_view}
"""


def test_tasks_section_declares_any_binary_tasks_and_their_after_edges(tmp_path):
    spec = load_spec(_write(tmp_path, TASKS))
    assert [(t.name, t.label, t.after) for t in spec.tasks] == [
        ("click", "is_click", None), ("like", "is_like", "click"), ("follow", "is_follow", "like"),
        ("long_view", "long_view", None)]
    assert spec.label_columns == {"click": "is_click", "like": "is_like", "follow": "is_follow",
                                  "long_view": "long_view"}
    assert not spec.is_funnel and spec.labels is None
    assert spec.describe_tasks() == "click, like (after click), follow (after like), long_view"
    assert spec.raw_columns == ["user_id", "tab", "is_click", "is_like", "is_follow", "long_view"]
    again = spec_from_dict(spec.to_dict())
    assert again.tasks == spec.tasks and "labels" not in spec.to_dict()


def test_the_labels_block_is_the_funnel_as_tasks(tmp_path):
    old = load_spec(_write(tmp_path, GOOD))  # labels: {click: c, conversion: v, raction: a}
    assert [(t.name, t.label, t.after) for t in old.tasks] == [
        ("click", "c", None), ("raction", "a", "click"), ("conversion", "v", None)]  # view-through allowed
    assert old.is_funnel and old.labels.requires_click == ("raction",)
    declared = spec_from_dict(dict({k: v for k, v in old.to_dict().items() if k != "labels"}, tasks=[
        {"name": "click", "label": "c"}, {"name": "raction", "label": "a", "after": "click"},
        {"name": "conversion", "label": "v"}]))
    assert declared.tasks == old.tasks and declared.labels == old.labels
    strict = spec_from_dict(dict(old.to_dict(), labels={"click": "c", "conversion": "v",
                                                        "requires_click": ["conversion"]}))
    assert strict.task("conversion").after == "click" and strict.labels.requires_click == ("conversion",)
    assert spec_from_dict(strict.to_dict()).tasks == strict.tasks


@pytest.mark.parametrize("tasks,key,message", [
    ("[]", "tasks", "non-empty list"),
    ("[{name: click}]", "tasks[0] (click).label", "is required"),
    ("[{name: 'is-click', label: c}]", "tasks[0].name", "identifier"),
    ("[{name: click, label: c, weight: 2}]", "tasks[0].weight", "unknown task key"),
    ("[{name: click, label: c}, {name: click, label: d}]", "tasks[0] (click).name", "declared twice"),
    ("[{name: click, label: c}, {name: like, label: c}]", "tasks[0] (click).label", "another task too"),
    ("[{name: click, label: c}, {name: like, label: l, after: clik}]", "tasks[1] (like).after", "'clik'"),
    ("[{name: a, label: x, after: b}, {name: b, label: y, after: a}]", "tasks[0] (a).after", "a -> b -> a"),
    ("[{name: click, label: user_id}]", "tasks (click).label", "also declared as a feature"),
])
def test_bad_tasks_fail_naming_the_task_and_key(tmp_path, tasks, key, message):
    text = TASKS[:TASKS.index("tasks:")] + "tasks: " + tasks + "\n"
    with pytest.raises(SpecError) as e:
        load_spec(_write(tmp_path, text))
    assert f": {key}: " in str(e.value) and message in str(e.value), str(e.value)


def test_labels_and_tasks_together_or_neither_fail(tmp_path):
    both = TASKS + "labels: {click: is_click, conversion: is_like}\n"
    neither = TASKS[:TASKS.index("tasks:")]
    for text in (both, neither):
        with pytest.raises(SpecError, match="exactly one of them"):
            load_spec(_write(tmp_path, text))
