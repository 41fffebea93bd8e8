"""The model card: its content from hand-made run outputs, its Markdown, and the files it writes."""

import json

from pipeline.model_card import CARD_JSON, CARD_MARKDOWN, build_card, render_markdown, write_card

TRAIN_SUMMARY = {"model": "esmm", "outputs": ["ctr", "cvr", "ctcvr"], "seed": 3, "train_seconds": 41.6,
                 "model_config": {"embedding_dim": 16}, "train_config": {"epochs": 2, "calibrate": True}}
METADATA = {"heads": ["ctr", "ctcvr"], "spec": {"name": "synthetic", "features": [
    {"name": "user_id", "role": "id"}, {"name": "scenario", "role": "scenario", "values": ["a", "b"]}],
    "labels": {"click": "click", "conversion": "conversion", "requires_click": []}}}  # no action label
DRIFT = {"split": "train", "baseline": "/p/ExampleValidator/accepted_statistics/7", "features": [
    {"feature": "item_price", "measure": "Jensen-Shannon", "value": 0.081, "warn": 0.05, "block": 0.2,
     "level": "warn"},
    {"feature": "scenario", "measure": "L-infinity", "value": 0.012, "warn": 0.05, "block": 0.1, "level": "ok"}]}


def _card():
    return build_card(model_uri="/p/Trainer/model/9", version="1767225600", train_summary=TRAIN_SUMMARY,
                      export_metadata=METADATA, spans={"mode": "next-span", "train_spans": [0, 1], "eval_span": 2},
                      metrics={("ctr", "overall"): {"auc": 0.71234, "calibration": 1.02, "example_count": 2000.0},
                               ("ctcvr", "search"): {"auc": 0.6, "calibration": 0.93, "example_count": 700.0}},
                      drift=DRIFT,
                      gating={"min_positives": 200, "not_gated": [
                          {"head": "ctcvr", "slice": "search", "metric": "AUC", "positives": 37}]})


def test_card_content_and_known_limits():
    card = _card()
    assert card["model"]["name"] == "esmm" and card["model"]["served_heads"] == ["ctr", "ctcvr"]
    assert card["data"]["features"] == ["user_id (id)", "scenario (scenario)"]
    assert card["data"]["labels"] == {"click": "click", "conversion": "conversion"}
    assert [r["feature"] for r in card["drift"]["above_warning"]] == ["item_price"]
    assert card["known_limits"] == [
        "ctcvr on search: 37 positives, under the 200 needed to gate its AUC",
        "item_price shifted by 0.0810 (Jensen-Shannon) against the last accepted span, above its warning level 0.05",
        "serves no xcvr, which this spec's labels support (the model cannot compose them)"]


def test_markdown_lists_spans_metrics_verdict_and_drift():
    text = render_markdown(_card())
    assert text.startswith("# Model card: esmm version 1767225600\n")
    assert "trained on span(s) 0, 1, evaluated on span 2" in text
    assert "| ctr | overall | 0.7123 | 1.020 | 2000 |" in text and "| ctcvr | search | 0.6000 | 0.930 | 700 |" in text
    assert "Verdict: BLESSED" in text and "| item_price | Jensen-Shannon | 0.0810 | 0.05 | 0.2 |" in text
    assert "* serves no xcvr, which this spec's labels support" in text


def test_a_first_run_card_says_there_was_nothing_to_compare(tmp_path):
    card = build_card(model_uri="/m", version="1", train_summary=None, export_metadata=None, spans=None,
                      metrics={}, gating=None, drift={"baseline": None, "features": []})
    text = render_markdown(card)
    assert "No accepted span to compare with (a first run)." in text and "* none recorded" in text
    md, js = write_card(str(tmp_path / "assets.extra"), card)
    assert md.endswith(CARD_MARKDOWN) and json.load(open(js)) == json.loads(json.dumps(card))
    assert js.endswith(CARD_JSON)
