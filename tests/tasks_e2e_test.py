"""End to end: a KuaiRand-shaped log of six declared tasks, from ``msmt spec infer`` (no hand edits) through
``msmt run`` with MMoE and then EKTM, to the served models and ``msmt score``.

The log is made here (numpy, fixed seed; no line comes from KuaiRand): the columns of a prepared KuaiRand log
(``tab`` as the scenario, ``is_click``, ``long_view``, ``is_like``, ``is_follow``, ``is_comment``,
``is_forward``), whose like, follow, comment and forward happen only after a click and whose long views do not.
``spec infer`` must declare the six tasks with those ``after`` links. MMoE serves one head per task; Transform
writes ``label_<task>``; the Evaluator evaluates and gates exactly those heads, overall and per tab; the
pushed model's ``serving_default`` and the batch scores carry them by name; the report lists them. EKTM then
runs in the same pipeline root: ExampleGen and Transform come from the cache, MMoE's pushed model is its
baseline, and it serves the same six heads, its router drawn from the declared ``after`` links.
"""

import csv
import glob
import json
import os

import numpy as np

from pipeline.results import read_tfma_metrics
from tests.helpers import component, pipeline_states, run_cli, serve_eval_examples, served_versions

TASKS = ["click", "long_view", "like", "follow", "comment", "forward"]
AFTER_CLICK = ["like", "follow", "comment", "forward"]
TABS = ["0", "1", "2", "4"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def write_kuairand_shaped_log(path, rows=2400, seed=7):
    """A prepared-KuaiRand-shaped CSV whose tasks depend on the user's activity, the video type and the tab."""
    rng = np.random.default_rng(seed)
    degrees = np.array(["high_active", "full_active", "middle_active", "low_active"])
    degree = rng.integers(0, 4, rows)
    user = degree * 50 + rng.integers(0, 50, rows)  # a user's activity degree is fixed
    video = rng.integers(0, 300, rows)
    is_ad = video % 3 == 0
    tab = rng.integers(0, 4, rows)
    duration = np.exp(rng.normal(9.5, 0.8, rows)).round()
    u = np.array([1.0, 0.5, 0.0, -1.0])[degree]
    v = np.where(is_ad, -1.0, 0.4)
    t = np.array([0.6, 0.0, -0.4, 0.2])[tab]
    click = rng.random(rows) < _sigmoid(-0.3 + u + v + t)
    long_view = rng.random(rows) < _sigmoid(-1.0 + 1.2 * u - 0.6 * (np.log(duration) - 9.5))
    after_click = {"like": -0.8 + 1.5 * v + u, "follow": -1.2 + 1.5 * u, "comment": -1.2 + 2.0 * t + 0.5 * v,
                   "forward": -1.2 + 2.0 * v}
    labels = {"click": click, "long_view": long_view}
    labels.update({k: click & (rng.random(rows) < _sigmoid(x)) for k, x in after_click.items()})
    columns = {"user_id": [f"u{x}" for x in user], "video_id": [f"v{x}" for x in video],
               "time_ms": 1649383200000 + np.arange(rows) * 1000, "tab": [TABS[x] for x in tab],
               "user_active_degree": degrees[degree], "video_type": np.where(is_ad, "AD", "NORMAL"),
               "video_duration": duration.astype(int),
               **{("long_view" if k == "long_view" else f"is_{k}"): labels[k].astype(int) for k in TASKS}}
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    return labels


def test_a_six_task_kuairand_shaped_log_runs_from_spec_infer_with_mmoe_and_ektm(tmp_path):
    data, spec, out = tmp_path / "impressions.csv", tmp_path / "spec.yaml", tmp_path / "run"
    labels = write_kuairand_shaped_log(data)
    assert all(labels[k].sum() >= 150 for k in TASKS), {k: int(v.sum()) for k, v in labels.items()}

    proc = run_cli(["spec", "infer", str(data), "--output", str(spec)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = spec.read_text()
    assert not [line for line in text.splitlines() if "TODO" in line and not line.startswith("#")], text
    for task in AFTER_CLICK:
        assert f"- {{name: {task}, label: is_{task}, after: click}}" in text, text
    assert "- {name: long_view, label: long_view}" in text and "- {name: tab, role: scenario" in text, text

    blessing = tmp_path / "blessing.yaml"  # 2,400 rows: judge ranking only; EKTM against MMoE: no drop check
    blessing.write_text("min_calibration: null\nmax_calibration: null\nmax_auc_drop: null\n")
    common = ["run", "--data", str(data), "--spec", str(spec), "--output", str(out), "--epochs", "3",
              "--batch-size", "256", "--min-auc", "0.5", "--blessing", str(blessing)]
    proc = run_cli(common + ["--model", "mmoe"])
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
    assert {s for _, s in metrics} == {"overall", *TABS}
    with open(os.path.join(evaluation, "gating.json")) as fh:
        assert {h.split("/")[0] for h in json.load(fh)["positives"]} == set(TASKS)
    report = (out / "report" / "report.md").read_text()
    assert all(f"| {t} | overall |" in report for t in TASKS), report[:3000]

    version = os.path.join(str(out / "serving" / "msmt"), served_versions(out)[-1])
    examples = component(runs, "ExampleGen").outputs["examples"][0].uri
    transform_graph = component(runs, "Transform").outputs["transform_graph"][0].uri
    served = serve_eval_examples(tmp_path, version, examples)
    assert set(served["outputs"]) == set(TASKS) and served["n"] == 200

    scores = tmp_path / "scores"
    proc = run_cli(["score", "--model", version, "--input", str(data), "--output", str(scores), "--format", "csv"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [r for path in sorted(glob.glob(str(scores / "scores-*"))) for r in csv.DictReader(open(path))]
    assert len(rows) == len(labels["click"])  # one score row per input row
    for row in rows[:50]:
        p = {t: float(row[t]) for t in TASKS}
        assert all(0 <= p[t] <= p["click"] + 1e-6 <= 1 + 1e-6 for t in AFTER_CLICK) and 0 <= p["long_view"] <= 1, row

    # EKTM in the same root: the data work is cached, MMoE's pushed model is the baseline.
    proc = run_cli(common + ["--model", "ektm"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads((out / "run_summary.json").read_text())["status"] == "succeeded"
    _, runs = pipeline_states(str(out))
    assert component(runs, "ExampleGen").outputs["examples"][0].uri == examples  # cached, not re-run
    assert component(runs, "Transform").outputs["transform_graph"][0].uri == transform_graph
    with open(os.path.join(component(runs, "Trainer").outputs["model_run"][0].uri, "train_summary.json")) as fh:
        summary = json.load(fh)
    assert summary["model"] == "ektm" and summary["outputs"] == TASKS
    assert len(served_versions(out)) == 2
    served = serve_eval_examples(tmp_path, os.path.join(str(out / "serving" / "msmt"), served_versions(out)[-1]),
                                 examples)
    assert set(served["outputs"]) == set(TASKS) and served["n"] == 200
