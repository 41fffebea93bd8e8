"""Generator statistics against the configured values, and oracle AUC sanity."""

import dataclasses

import numpy as np
import pytest

from features import synthetic


@pytest.fixture(scope="module")
def data():
    cfg = synthetic.GeneratorConfig(rows=120_000, seed=3, drift=0.0)
    return cfg, synthetic.generate(cfg)


def test_scenario_shares_and_label_rates_match_config(data):
    cfg, cols = data
    summary = synthetic.summarize(cols, cfg)
    assert len(cfg.scenarios) >= 3
    for sc in cfg.scenarios:
        row = summary[sc.name]
        assert abs(row["share"] - sc.share) < 0.01, (sc.name, row["share"])
        assert abs(row["ctr"] - sc.ctr) / sc.ctr < 0.10, (sc.name, row["ctr"], sc.ctr)
        assert abs(row["action_rate"] - sc.action_rate) / sc.action_rate < 0.15, (sc.name, row["action_rate"])
        assert abs(row["cvr"] - sc.cvr) / sc.cvr < 0.25, (sc.name, row["cvr"], sc.cvr)
        assert abs(row["unclicked_cvr"] - sc.unclicked_cvr) / sc.unclicked_cvr < 0.35, (sc.name, row)


def test_funnel_and_truth_identities(data):
    _, cols = data
    click, action, conv = cols["click"], cols["action"], cols["conversion"]
    assert np.all(action <= click), "an action requires a click"
    assert (conv & (1 - click)).sum() > 0, "some conversions happen without a click"
    assert np.all(cols["p_click_action"] <= cols["p_click"] + 1e-6)
    assert np.all(cols["p_click_conv"] <= cols["p_click"] + 1e-6)
    assert np.all(cols["p_click_conv"] <= cols["p_conv"] + 1e-6)
    # The truth columns are calibrated: mean truth ~ observed rate.
    assert abs(cols["p_click"].mean() - click.mean()) < 0.003
    assert abs(cols["p_conv"].mean() - conv.mean()) < 0.002


def test_oracle_auc_above_chance_for_every_label(data):
    cfg, cols = data
    summary = synthetic.summarize(cols, cfg)
    for name, row in summary.items():
        for label in ("click", "action", "conversion", "click_conv"):
            assert row[f"oracle_auc_{label}"] > 0.6, (name, label, row[f"oracle_auc_{label}"])


def test_scenarios_have_specific_preferences(data):
    """The same (user, item) pairs get different click truth in different scenarios."""
    cfg, _ = data
    world = synthetic._World(cfg)
    users, items = np.arange(2000) % cfg.num_users, np.arange(2000) % cfg.num_items
    m0 = world.match("c", users, items, 0, 0)
    m2 = world.match("c", users, items, 2, 0)
    corr = np.corrcoef(m0, m2)[0, 1]
    assert 0.1 < corr < 0.9, corr


def test_seeded_and_drifting_spans():
    cfg = synthetic.GeneratorConfig(rows=3000, seed=7, num_users=300, num_items=200)
    a, b = synthetic.generate(cfg), synthetic.generate(cfg)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert sorted(set(a["span"])) == [0, 1, 2]
    world = synthetic._World(cfg)
    assert not np.allclose(world.matrix("c", 0, 0), world.matrix("c", 0, 2))


def test_oracle_auc_hand_computed():
    # pairs (pos, neg): (0.9,0.1) win, (0.9,0.5) win, (0.4,0.1) win, (0.4,0.5) loss -> 3/4
    assert synthetic.oracle_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.4, 0.5])) == pytest.approx(0.75)
    # ties count one half
    assert synthetic.oracle_auc(np.array([1, 0]), np.array([0.3, 0.3])) == pytest.approx(0.5)


def test_write_spans_csv(tmp_path):
    import pandas as pd

    cfg = synthetic.GeneratorConfig(rows=1000, seed=1, num_users=100, num_items=50)
    files = synthetic.write_spans(synthetic.generate(cfg), str(tmp_path), ("csv",))
    assert len(files) == 3
    total = sum(len(pd.read_csv(f)) for f in files)
    assert total == 1000
    frame = pd.read_csv(files[0])
    assert frame["item_price"].isna().any() or cfg.missing_price_rate * len(frame) < 3
    assert set(synthetic.ORACLE_COLUMNS) <= set(frame.columns)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="shares must sum to 1"):
        synthetic.GeneratorConfig(scenarios=(synthetic.ScenarioConfig("a", 0.5, ctr=0.1),))
    with pytest.raises(ValueError, match="rows must be >= 1"):
        synthetic.GeneratorConfig(rows=0)


def test_write_spans_tfrecord_round_trip(tmp_path):
    import tensorflow as tf

    cfg = synthetic.GeneratorConfig(rows=600, seed=2, num_users=50, num_items=40, missing_price_rate=0.2)
    cols = synthetic.generate(cfg)
    files = synthetic.write_spans(cols, str(tmp_path), ("tfrecord",))
    examples = [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(examples) == 600
    first = examples[0].features.feature
    order = np.argsort(cols["span"], kind="stable")
    assert first["user_id"].bytes_list.value[0].decode() == cols["user_id"][order[0]]
    assert first["click"].int64_list.value[0] == cols["click"][order[0]]
    missing = sum(1 for e in examples if len(e.features.feature["item_price"].float_list.value) == 0)
    assert missing == int(np.isnan(cols["item_price"]).sum()) > 0  # NaN -> absent feature


def test_history_is_drawn_from_the_users_preferences_and_leaves_every_other_column_unchanged():
    base = synthetic.GeneratorConfig(rows=3000, days=2, num_users=300, num_items=400, seed=3)
    with_history = synthetic.generate(dataclasses.replace(base, history_length=10))
    without = synthetic.generate(base)
    assert set(with_history) - set(without) == {"recent_items"}
    for name, values in without.items():
        np.testing.assert_array_equal(with_history[name], values, err_msg=name)
    lists = [h.split("|") for h in with_history["recent_items"]]
    assert all(len(items) == 10 == len(set(items)) for items in lists)
    by_user = dict(zip(with_history["user_id"], with_history["recent_items"]))
    assert all(by_user[u] == h for u, h in zip(with_history["user_id"], with_history["recent_items"]))
    # The history follows the click preference: its items score higher for the user than exposure alone.
    world = synthetic._World(dataclasses.replace(base, history_length=10))
    preference = world.U @ world.B["c"] @ world.V.T / base.latent_dim
    histories = world.histories()
    exposure = np.average(preference, axis=1, weights=world.item_weights)
    assert (preference[np.arange(300)[:, None], histories].mean(axis=1) > exposure).mean() > 0.9
