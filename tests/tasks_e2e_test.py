"""End to end: a spec of declared tasks (not the click -> conversion funnel) through ``msmt run`` and
``msmt score``.

The session's synthetic logs are read as three tasks of a feed product: ``click``, ``like`` (the action column,
after click) and ``purchase`` (the conversion column, after nothing: view-through). MMoE serves one head per
task; Transform writes ``label_<task>``; the Evaluator evaluates and gates exactly those heads, overall and per
scenario; the pushed model's ``serving_default`` and the batch scores carry them by name; the report lists
them.
"""

import csv
import glob
import json
import os

from pipeline.results import read_tfma_metrics
from tests.helpers import SMALL_SYNTHETIC_FEATURES, SMALL_SYNTHETIC_IGNORE, component, pipeline_states, run_cli, \
    serve_eval_examples, served_versions

TASKS = ["click", "like", "purchase"]
SPEC = ("name: feed\n" + SMALL_SYNTHETIC_FEATURES + """tasks:
  - {name: click, label: click}
  - {name: like, label: action, after: click}
  - {name: purchase, label: conversion}
""" + SMALL_SYNTHETIC_IGNORE)


def test_declared_tasks_are_trained_evaluated_gated_served_and_scored_by_name(synthetic_run, tmp_path):
    root = synthetic_run[0]
    spec, blessing, out = tmp_path / "feed.yaml", tmp_path / "blessing.yaml", tmp_path / "run"
    spec.write_text(SPEC)
    blessing.write_text("min_calibration: null\nmax_calibration: null\n")  # 2,000-row span: judge ranking only
    data = os.path.join(str(root), "data", "span-2", "impressions.csv")
    proc = run_cli(["run", "--data", data, "--spec", str(spec), "--output", str(out), "--model", "mmoe",
                    "--epochs", "2", "--batch-size", "256", "--min-auc", "0.5", "--blessing", str(blessing)])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads((out / "run_summary.json").read_text())["status"] == "succeeded"
    _, runs = pipeline_states(str(out))
    with open(os.path.join(component(runs, "Trainer").outputs["model_run"][0].uri, "train_summary.json")) as fh:
        summary = json.load(fh)
    assert summary["outputs"] == summary["supervised_heads"] == TASKS
    assert set(summary["edge_base_rates"]) == set(TASKS)
    evaluation = component(runs, "Evaluator").outputs["evaluation"][0].uri
    metrics = read_tfma_metrics(evaluation)
    assert {h for h, _ in metrics} == set(TASKS)
    assert {s for _, s in metrics} == {"overall", "home_feed", "search", "detail_page"}
    with open(os.path.join(evaluation, "gating.json")) as fh:
        assert {h.split("/")[0] for h in json.load(fh)["positives"]} == set(TASKS)
    report = (out / "report" / "report.md").read_text()
    assert all(f"| {t} | overall |" in report for t in TASKS), report[:3000]

    version = os.path.join(str(out / "serving" / "msmt"), served_versions(out)[-1])
    served = serve_eval_examples(tmp_path, version, component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert set(served["outputs"]) == set(TASKS) and served["n"] == 200

    scores = tmp_path / "scores"
    proc = run_cli(["score", "--model", version, "--input", data, "--output", str(scores), "--format", "csv"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [r for path in sorted(glob.glob(str(scores / "scores-*"))) for r in csv.DictReader(open(path))]
    with open(data) as fh:
        assert len(rows) == sum(1 for _ in fh) - 1  # one score row per input row
    for row in rows[:50]:
        p = {t: float(row[t]) for t in TASKS}
        assert 0 <= p["like"] <= p["click"] + 1e-6 <= 1 + 1e-6 and 0 <= p["purchase"] <= 1, row
