"""End to end: a multi-scenario single-task log (Douban-shaped: one click label across the books, movies and
music domains) from ``msmt spec infer``, with no hand edits, through ``msmt run`` to a served model.

The log is made here (numpy, fixed seed): ``domain`` is the scenario, ``genre`` an item attribute, ``click``
the only label. The draft declares the single task ``click``; the pipeline trains, evaluates and gates that
one head overall and per domain, and pushes a model whose ``serving_default`` returns it alone.
"""

import csv
import json
import os

import numpy as np

from pipeline.results import read_tfma_metrics
from tests.helpers import component, pipeline_states, run_cli, serve_eval_examples, served_versions

DOMAINS = ["books", "movies", "music"]


def write_douban_shaped_log(path, rows=2400, seed=11):
    """Clicks depend on the domain, the item's genre and the user's taste for the domain."""
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, 3, rows)
    user = rng.integers(0, 150, rows)
    item = domain * 1000 + rng.integers(0, 200, rows)
    genre = item % 6
    logit = -0.8 + np.array([0.5, 0.0, -0.5])[domain] + np.array([1.2, 0.6, 0.0, -0.4, -0.8, -1.2])[genre] \
        + np.where((user + domain) % 2 == 0, 0.6, -0.6)
    click = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "domain", "genre", "click"])
        writer.writerows(zip([f"u{x}" for x in user], [f"i{x}" for x in item], [DOMAINS[x] for x in domain],
                             [f"g{x}" for x in genre], click))
    return click


def test_a_single_task_multi_scenario_log_runs_from_spec_infer_to_a_served_model(tmp_path):
    data, spec, out = tmp_path / "douban.csv", tmp_path / "spec.yaml", tmp_path / "run"
    click = write_douban_shaped_log(data)
    proc = run_cli(["spec", "infer", str(data), "--output", str(spec)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = spec.read_text()
    assert "- {name: click, label: click}" in text and "- {name: domain, role: scenario" in text, text
    assert not [line for line in text.splitlines() if "TODO" in line and not line.startswith("#")], text

    blessing = tmp_path / "blessing.yaml"  # 2,400 rows: judge ranking only
    blessing.write_text("min_calibration: null\nmax_calibration: null\n")
    proc = run_cli(["run", "--data", str(data), "--spec", str(spec), "--output", str(out), "--model", "ple",
                    "--epochs", "3", "--batch-size", "256", "--min-auc", "0.55", "--blessing", str(blessing)])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads((out / "run_summary.json").read_text())["status"] == "succeeded"
    _, runs = pipeline_states(str(out))
    with open(os.path.join(component(runs, "Trainer").outputs["model_run"][0].uri, "train_summary.json")) as fh:
        summary = json.load(fh)
    assert summary["outputs"] == summary["supervised_heads"] == ["click"]
    base_rate = summary["edge_base_rates"]["click"]
    assert abs(base_rate - click.mean()) < 0.03, (base_rate, click.mean())  # the training split's click rate
    metrics = read_tfma_metrics(component(runs, "Evaluator").outputs["evaluation"][0].uri)
    assert {h for h, _ in metrics} == {"click"} and {s for _, s in metrics} == {"overall", *DOMAINS}
    assert metrics[("click", "overall")]["auc"] > 0.55
    report = (out / "report" / "report.md").read_text()
    assert "| click | overall |" in report and "ctcvr" not in report, report[:3000]

    versions = served_versions(out)
    assert len(versions) == 1
    served = serve_eval_examples(tmp_path, os.path.join(str(out / "serving" / "msmt"), versions[0]),
                                 component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert set(served["outputs"]) == {"click"} and served["n"] == 200
