"""Four consecutive days of the daily schedule: one new span a day, a rolling two-span training window, a canary.

Each day a new ``span-N`` directory appears and the same ``msmt run --train-spans 2 --warm-start
--transform-cache --canary`` runs on ``span-{SPAN}``. Observed:

* the spans each run trained and evaluated on (run summary, and the Transform's and Evaluator's inputs in
  MLMD): day 0 a hash split of span 0, then train [0] / eval 1, train [0, 1] / eval 2, train [1, 2] / eval 3;
* reuse: after day 0 no run reads an earlier span again (no ingest step; their ExampleGen and StatisticsGen
  outputs come from MLMD); each day's Transform is handed the analyzer cache of the day before, which holds
  the analysis of the training span the two windows share; and each day's Trainer starts from the last
  blessed model's weights;
* each pushed version's lineage in MLMD (Pusher -> Trainer -> Transform -> examples) names the spans it was
  trained and evaluated on, and so does its model card;
* the labels of the daily cron of the README: each new version is served as canary beside stable; day 1's is
  promoted, day 2's rolled back, day 3's waits; ``retain 2`` then deletes only the unlabelled oldest version.
"""

import json
import os

from pipeline import mlmd
from serving.versions import read_served
from tests.helpers import SMALL_SYNTHETIC_FEATURES, SMALL_SYNTHETIC_IGNORE, run_cli, served_versions

# Days of ~1,500 rows from 1,000 users: their scenario mix moves by up to ~0.1 from day to day (measured),
# so the scenario's drift limit is raised; the drift checks are tested in schema_drift_e2e_test.
RUN = ["--epochs", "1", "--batch-size", "256", "--train-spans", "2", "--warm-start", "--transform-cache", "--canary",
       "--min-auc", "0", "--max-auc-drop", "1.0", "--max-scenario-shift", "0.3"]
# The schedule is under test, not the features: a few hashed features keep Transform, the Trainer and the
# Evaluator short, and keep the embedding shapes from day to day, so that each warm start restores.
SPEC = ("name: daily\n" + SMALL_SYNTHETIC_FEATURES + "labels: {click: click, raction: action, conversion: conversion}\n"
        + SMALL_SYNTHETIC_IGNORE)
MODEL = "embedding_dim: 4\nbottom_units: [16]\ntower_units: [8]\n"
EXPECTED_SPANS = [{"mode": "hash", "train_spans": [], "eval_span": None},
                  {"mode": "next-span", "train_spans": [0], "eval_span": 1},
                  {"mode": "next-span", "train_spans": [0, 1], "eval_span": 2},
                  {"mode": "next-span", "train_spans": [1, 2], "eval_span": 3}]


def _dataset_key(examples_uri: str) -> str:
    """TFX's name for a span's train split in TFT's analyzer cache: its path below the pipeline root, with '-'
    for '/'."""
    tail = examples_uri[examples_uri.index("pipeline_root"):]
    return tail.replace("/", "-") + "-Split-train"


def _day(stage, data, out, day, configs):
    os.symlink(data / f"span-{day}", stage / f"span-{day}")
    proc = run_cli(["run", "--data", str(stage / "span-{SPAN}" / "impressions.csv"), "--output", str(out)]
                   + configs + RUN, timeout=900)
    assert proc.returncode == 0, f"day {day}\n" + proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "run_summary.json").read_text())


def test_four_daily_runs_roll_the_window_reuse_spans_and_label_versions(tmp_path):
    data, stage, out = tmp_path / "data", tmp_path / "stage", tmp_path / "run"
    gen = run_cli(["generate-data", "--rows", "6000", "--days", "4", "--users", "1000", "--items", "300",
                   "--seed", "7", "--output", str(data)])
    assert gen.returncode == 0, gen.stderr
    stage.mkdir()
    blessing, spec, model = tmp_path / "blessing.yaml", tmp_path / "spec.yaml", tmp_path / "model.yaml"
    blessing.write_text("min_calibration: null\nmax_calibration: null\n")  # small days: judge ranking only
    spec.write_text(SPEC)
    model.write_text(MODEL)
    configs = ["--spec", str(spec), "--model-config", str(model), "--blessing", str(blessing)]
    serving = str(out / "serving")
    versions, summaries, caches = [], [], []
    for day in range(4):
        summary = _day(stage, data, out, day, configs)
        summaries.append(summary)
        assert {k: summary["spans"][k] for k in ("mode", "train_spans", "eval_span")} == EXPECTED_SPANS[day], day
        assert summary["status"] == "succeeded" and summary["pushed_dir"], (day, summary["status"])
        # nothing is read twice: an earlier span's ExampleGen / StatisticsGen outputs are reused, not re-ingested
        assert not [c for c in summary["component_seconds"] if c.startswith("span ")], summary["component_seconds"]
        versions.append(int(os.path.basename(summary["pushed_dir"])))
        store = mlmd.open_store(str(out / "metadata.sqlite"))
        runs = mlmd.latest_run(store, "msmt")
        trained = sorted(mlmd.artifact_span(a) for a in runs["Transform"].inputs["examples"])
        evaluated = [mlmd.artifact_span(a) for a in runs["Evaluator"].inputs["examples"]]
        assert trained == (EXPECTED_SPANS[day]["train_spans"] or [0]) and evaluated == [day], (day, trained)
        caches.append(runs["Transform"].outputs["updated_analyzer_cache"][0].uri)
        if day:  # yesterday's window shares a training span with today's: its analysis comes from the cache
            (cache,) = runs["Transform"].inputs["analyzer_cache"]
            assert cache.uri == caches[day - 1], (day, cache.uri, caches)
            shared = next(a for a in runs["Transform"].inputs["examples"]
                          if mlmd.artifact_span(a) == (EXPECTED_SPANS[day - 1]["train_spans"] or [0])[-1])
            assert any(entry.startswith(_dataset_key(shared.uri)) for entry in os.listdir(cache.uri)), \
                (day, _dataset_key(shared.uri), os.listdir(cache.uri))
        lineage = mlmd.version_lineage(store, summary["pushed_dir"])
        assert lineage["trained_on"] == trained and lineage["evaluated_on"] == day, (day, lineage)
        card = json.loads((out / "serving" / "msmt" / str(versions[-1]) / "assets.extra" /
                           "model_card.json").read_text())
        assert card["data"]["spans"]["train_spans"] == EXPECTED_SPANS[day]["train_spans"]
        with open(os.path.join(runs["Trainer"].outputs["model_run"][0].uri, "train_summary.json")) as fh:
            warm = json.load(fh)["warm_start"]
        # each day's Trainer starts from the last blessed model (hashed features: the same shapes every day)
        assert warm == "skipped: no blessed model yet" if day == 0 else warm.startswith("warm-started from"), warm

        labels = read_served(serving, "msmt").labels
        if day == 0:
            assert labels == {"stable": versions[0]}
        else:
            assert labels == {"stable": versions[day - 1 if day < 3 else 1], "canary": versions[day]}, (day, labels)
        if day == 1:
            assert run_cli(["serving", "promote", serving]).returncode == 0
            assert read_served(serving, "msmt").labels == {"stable": versions[1]}
        if day == 2:
            assert run_cli(["serving", "rollback", serving]).returncode == 0  # the canary goes, stable stays
            assert read_served(serving, "msmt").labels == {"stable": versions[1]}

    assert run_cli(["serving", "retain", serving, "2"]).returncode == 0
    assert served_versions(out) == [str(v) for v in versions[1:]]  # v0 unlabelled and old; v2 among the newest 2
    assert read_served(serving, "msmt").labels == {"stable": versions[1], "canary": versions[3]}
