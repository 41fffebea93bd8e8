"""End to end: `msmt run` on ~8k synthetic impressions in 3 daily spans (the session run) and on the Ali-CCP sample.

Checks an MLMD execution for every component, that the model trained on the earlier spans and was evaluated on
the latest, then loads the pushed SavedModel in a fresh process and calls ``serving_default`` on real serialized
tf.Examples. Later tests rerun the pipeline in a copy of the session's run directory (cached upstream) with
other models and with candidates that the gate must refuse.
"""

import glob
import json
import os
import pathlib
import re

import pytest

from pipeline import mlmd
from pipeline.pipeline import COMPONENT_ORDER
from serving.versions import read_served
from tests.helpers import SHARED_DATA, component, pipeline_states, run_cli, run_python, serve_eval_examples, \
    served_versions, synthetic_data

BULK_CHILD = r"""
import glob, json, os, sys
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
files = glob.glob(os.path.join(sys.argv[2], "*"))
n, heads, values = 0, set(), []
for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    outputs = log.predict_log.response.outputs
    heads |= set(outputs)
    values += [v for t in outputs.values() for v in tf.make_ndarray(t).ravel().tolist()]
    n += 1
json.dump({"n": n, "heads": sorted(heads), "min": min(values), "max": max(values)}, open(sys.argv[1], "w"))
"""


def test_aliccp_sample_pipeline(tmp_path):
    out = tmp_path / "aliccp"
    proc = run_cli(["run", "--data", os.path.join(SHARED_DATA, "aliccp", "ali_ccp_*_sample.csv"), "--spec", "aliccp",
                    "--output", str(out), "--epochs", "3", "--batch-size", "32", "--min-auc", "0.0"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = pipeline_states(str(out))
    states = {c: component(runs, c).state for c in COMPONENT_ORDER}
    assert all(s == "COMPLETE" for s in states.values()), states
    # A first run: no span was accepted before. The resolver finds nothing, which is not a failure.
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["blessed"], summary["status"]
    assert summary["states"]["latest_accepted_statistics_resolver"] == "COMPLETE", summary["states"]
    assert all(state in ("COMPLETE", "CACHED") for state in summary["states"].values()), summary["states"]
    assert not component(runs, "ExampleValidator").inputs.get("baseline_statistics")
    model_dir = component(runs, "Trainer").outputs["model"][0].uri
    res = serve_eval_examples(tmp_path, os.path.join(model_dir, "Format-Serving"),
                 component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["n"] > 0
    for values in res["outputs"].values():
        assert all(0.0 <= v <= 1.0 for v in values)


def test_every_component_executed_in_mlmd(synthetic_run):
    _, out, _ = synthetic_run
    store, runs = pipeline_states(str(out))
    states = {c: component(runs, c).state for c in COMPONENT_ORDER}
    assert all(s == "COMPLETE" for s in states.values()), states
    # StatisticsGen counted top values with TFDV's sketches (features.drift.statistics_options)
    [execution] = store.get_executions_by_id([component(runs, "StatisticsGen").execution_id])
    assert json.loads(execution.custom_properties["stats_options_json"].string_value)[
        "_use_sketch_based_topk_uniques"] is True
    # On the in-process DirectRunner no Beam executor packaged TFX as an sdist for remote workers
    # (pipeline.tfx_patches.no_tfx_sdist_for_local_beam): TFX logs each packaging it does.
    log = pathlib.Path(json.loads((out / "run_summary.json").read_text())["log_path"]).read_text()
    assert "ExampleGen" in log and "Attempting to infer TFX Python dependency" not in log


def test_every_feature_is_checked_for_drift_against_the_accepted_span(synthetic_run):
    """The newest span against the span accepted before it: one measurement per spec feature, none blocking
    (the run went on), in the run summary and in the report's drift section with its plot."""
    from features.spec import resolve_spec

    _, out, _ = synthetic_run
    drift = json.loads((out / "run_summary.json").read_text())["drift"]
    assert drift["baseline"] and drift["split"] == "train"
    rows = {r["feature"]: r for r in drift["features"]}
    assert set(rows) == {f.name for f in resolve_spec("synthetic").features}
    assert all(r["level"] in ("ok", "warn") and 0.0 <= r["value"] < r["block"] for r in rows.values()), rows
    assert rows["scenario"]["measure"] == "L-infinity" and rows["item_price"]["measure"] == "Jensen-Shannon"
    report = (out / "report" / "report.md").read_text()
    assert "## Data drift against the last accepted span" in report and "| item_price | Jensen-Shannon |" in report
    assert (out / "report" / "drift.png").stat().st_size > 1000


def test_the_pushed_version_carries_its_model_card_and_stable_label(synthetic_run):
    _, out, _ = synthetic_run
    (version,) = served_versions(out)
    card_dir = out / "serving" / "msmt" / version / "assets.extra"
    card = json.loads((card_dir / "model_card.json").read_text())
    assert card["model"]["name"] == "shared_bottom" and card["model"]["version"] == version
    assert card["data"]["spans"] == {"mode": "next-span", "train_spans": [0, 1], "eval_span": 2, "note": ""}
    assert {(r["head"], r["slice"]) for r in card["evaluation"]} >= {("ctr", "overall"), ("xcvr", "search")}
    assert card["blessing"]["blessed"] and card["drift"]["baseline"]
    text = (card_dir / "model_card.md").read_text()
    assert f"# Model card: shared_bottom version {version}" in text and "evaluated on span 2" in text
    assert read_served(str(out / "serving"), "msmt").labels == {"stable": int(version)}


def test_skew_of_rows_to_score_against_the_training_data(synthetic_run, tmp_path):
    """``msmt skew``: the next day's rows are like the training spans; the same rows with tripled prices and a
    changed device mix are not, and the two features are named at block level (exit code 3)."""
    import csv

    root, out, _ = synthetic_run
    (version,) = served_versions(out)
    model = str(out / "serving" / "msmt" / version)
    day = root / "data" / "span-2" / "impressions.csv"
    proc = run_cli(["skew", "--model", model, "--input", str(day), "--output", str(tmp_path / "same")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    same = json.loads((tmp_path / "same" / "skew.json").read_text())
    assert same["trained_on"] == [0, 1] and same["span"] == 1
    assert {r["feature"] for r in same["features"]} >= {"item_price", "device", "scenario", "user_id"}
    assert all(r["level"] != "block" for r in same["features"]), same["features"]
    with open(day) as fh:
        rows = list(csv.DictReader(fh))
    shifted = tmp_path / "shifted.csv"
    with open(shifted, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(dict(r, item_price=str(3 * float(r["item_price"])) if r["item_price"] else "",
                         device="web" if i % 2 else r["device"]) for i, r in enumerate(rows))
    proc = run_cli(["skew", "--model", model, "--input", str(shifted), "--output", str(tmp_path / "shifted")])
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    levels = {r["feature"]: r["level"] for r in
              json.loads((tmp_path / "shifted" / "skew.json").read_text())["features"]}
    assert levels["item_price"] == levels["device"] == "block", levels
    assert "above the block level: " in proc.stderr and "item_price" in proc.stderr and "device" in proc.stderr
    assert "| item_price | Jensen-Shannon |" in (tmp_path / "shifted" / "skew.md").read_text()


def test_trains_on_the_earlier_spans_and_evaluates_the_latest(synthetic_run):
    _, out, stdout = synthetic_run
    assert "next-span evaluation: trains on span(s) 0, 1, evaluates and gates on span 2" in stdout
    assert "reading training span 0" in stdout and "reading training span 1" in stdout
    _, runs = pipeline_states(str(out))
    assert sorted(mlmd.artifact_span(a) for a in component(runs, "Transform").inputs["examples"]) == [0, 1]
    assert len(component(runs, "Trainer").inputs["examples"]) == 2  # Transform's output of each training span
    (evaluated,) = component(runs, "Evaluator").inputs["examples"]
    assert mlmd.artifact_span(evaluated) == 2
    evaluation = component(runs, "Evaluator").outputs["evaluation"][0].uri
    with open(os.path.join(evaluation, "gating.json")) as fh:
        gating = json.load(fh)
    assert gating["splits"] == ["train", "calibration", "eval"]  # the whole evaluated span
    with open(os.path.join(component(runs, "Trainer").outputs["model_run"][0].uri, "train_summary.json")) as fh:
        summary = json.load(fh)
    assert summary["calibration"]["fitted"] and summary["calibration"]["rows"] > 0
    assert summary["calibration"]["prior_positives"] == 100.0  # the default (docs/calibration.md)
    assert summary["supervised_heads"] == ["ctr", "ctavr", "ctcvr", "xcvr"]


def test_progress_and_summary_printed(synthetic_run):
    _, out, stdout = synthetic_run
    for c in COMPONENT_ORDER:
        assert re.search(rf"\] {c} +finished in [0-9.]+s \(peak RSS [0-9.]+ GiB\)", stdout), c
    with open(out / "run_summary.json") as fh:
        summary = json.load(fh)
    peaks = summary["component_peak_rss"]
    assert set(COMPONENT_ORDER) <= set(peaks) and all(2 ** 27 < peaks[c] <= summary["peak_rss"] for c in peaks)
    assert "pushed model: " + str(out / "serving" / "msmt") in stdout
    assert "ctr    overall" in stdout
    assert os.path.exists(out / "run_summary.json")
    # The input rows of every span the run read (trained on spans 0 and 1, evaluated on 2): all 8,000.
    assert summary["input_rows"]["total"] == 8000 and len(summary["input_rows"]["quarantines"]) == 3
    assert "msmt run: input rows: 0 bad rows of 8000 (0.00%); 8000 good rows kept" in stdout


def test_model_blessed_and_pushed_to_versioned_dir(synthetic_run):
    _, out, _ = synthetic_run
    _, runs = pipeline_states(str(out))
    blessing = component(runs, "Evaluator").outputs["blessing"][0]
    assert mlmd.custom_property(blessing, "blessed") == 1
    versions = glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))
    assert len(versions) == 1, versions


def test_report_of_the_run_through_mlmd(synthetic_run, tmp_path):
    """``msmt evaluate``'s path: the evaluation found through ML Metadata, its verdict and metrics table."""
    from pipeline import report as R

    _, out, _ = synthetic_run
    ref = R.find_evaluation(str(out))
    assert ref.source == "ML Metadata" and ref.blessed is True
    text = open(R.write_report(str(out), output_dir=str(tmp_path))).read()
    assert "Verdict: **BLESSED**" in text and "| ctcvr | overall |" in text and "## Blessing" in text


def test_pushed_model_serves_serialized_examples(synthetic_run, tmp_path):
    _, out, _ = synthetic_run
    _, runs = pipeline_states(str(out))
    model_dir = os.path.dirname(glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb"))[0])
    res = serve_eval_examples(tmp_path, model_dir, component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["inputs"] == {"examples": "string"}
    assert {"serving_default", "transform_features"} <= set(res["signatures"])
    outs = res["outputs"]
    assert {"ctr", "ctcvr", "xcvr"} <= set(outs)
    for head, values in outs.items():
        assert len(values) == res["n"] == 200, head
        assert all(0.0 <= v <= 1.0 for v in values), head
    assert all(c <= r + 1e-6 for c, r in zip(outs["ctcvr"], outs["ctr"]))
    assert all(c <= x + 1e-6 for c, x in zip(outs["ctcvr"], outs["xcvr"]))
    assert len(set(round(v, 6) for v in outs["ctr"])) > 10, "predictions should vary across examples"


def test_unchanged_rerun_trains_nothing_and_publishes_no_new_version(synthetic_run, session_run_copy):
    """Same data and config: everything up to the Trainer is CACHED, except the ExampleValidator, which checks
    every run against the last accepted span (now the first run's). The Evaluator runs once more (the resolver
    now gives it the model itself as baseline) and the Pusher sees the model is already served."""
    root, out = synthetic_run[0], session_run_copy
    before = served_versions(out)
    proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic",
                    "--output", str(out), "--epochs", "4", "--batch-size", "256"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = pipeline_states(str(out))
    states = {c: component(runs, c).state for c in COMPONENT_ORDER}
    upstream = ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer")
    assert all(states[c] == "CACHED" for c in upstream), states
    assert states["ExampleValidator"] == "COMPLETE", states
    assert component(runs, "ExampleValidator").inputs.get("baseline_statistics"), "no accepted baseline resolved"
    pushed = component(runs, "Pusher").outputs["pushed_model"][0]
    assert mlmd.custom_property(pushed, "pushed") == 1
    assert mlmd.custom_property(pushed, "pushed_destination") == str(out / "serving" / "msmt" / before[-1])
    assert served_versions(out) == before


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "aliccp")),
                    reason="../shared/data/aliccp is absent (third-party samples are read in place, never copied)")
def test_aem2tl_rerun_reuses_cached_upstream_and_pushes(synthetic_run, session_run_copy, tmp_path):
    root, out = synthetic_run[0], session_run_copy
    cfg = tmp_path / "aem2tl.yaml"
    cfg.write_text("embedding_dim: 8\nscenario_expert_units: [32]\ntask_expert_units: [16]\ntower_units: [16]\n")
    train = tmp_path / "train.yaml"
    train.write_text("weighting: {strategy: gradnorm, alpha: 1.5}\n")
    proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic",
                    "--output", str(out), "--model", "aem2tl", "--model-config", str(cfg), "--train-config",
                    str(train), "--epochs", "1", "--batch-size", "256", "--max-auc-drop", "1.0", "--min-auc", "0",
                    "--warm-start", "--bulk-inference", "--canary"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = pipeline_states(str(out))
    states = {c: component(runs, c).state for c in COMPONENT_ORDER}
    upstream = ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform")
    assert all(states[c] == "CACHED" for c in upstream), states
    assert all(states[c] == "COMPLETE" for c in ("ExampleValidator", "Trainer", "Evaluator", "Pusher")), states
    bulk = run_python(BULK_CHILD, str(tmp_path / "bulk.json"),
                      [component(runs, "BulkInferrer").outputs["inference_result"][0].uri])
    assert bulk["n"] > 100 and {"ctr", "ctavr", "ctcvr", "xcvr"} <= set(bulk["heads"]), bulk
    assert 0.0 <= bulk["min"] and bulk["max"] <= 1.0, bulk
    versions = sorted(glob.glob(str(out / "serving" / "msmt" / "*" / "saved_model.pb")))
    assert len(versions) == 2, versions
    # --canary: the new version is served as canary beside the stable one until it is promoted
    stable, canary = (int(os.path.basename(os.path.dirname(v))) for v in versions)
    assert read_served(str(out / "serving"), "msmt").labels == {"stable": stable, "canary": canary}
    promoted = run_cli(["serving", "promote", str(out / "serving")])
    assert promoted.returncode == 0 and f"stable is now {canary}" in promoted.stdout, promoted.stderr
    # warm start asked for: the resolver hands the SharedBottom model to the Trainer, which does not fit AEM2TL
    trainer = component(runs, "Trainer")
    assert trainer.inputs.get("base_model"), "the resolver gave the Trainer no base model"
    with open(os.path.join(trainer.outputs["model_run"][0].uri, "train_summary.json")) as fh:
        assert json.load(fh)["warm_start"].startswith("skipped: the base model does not fit")
    res = serve_eval_examples(tmp_path, os.path.dirname(versions[-1]),
                              component(runs, "ExampleGen").outputs["examples"][0].uri)
    outs = res["outputs"]
    assert {"ctr", "ctavr", "ctcvr", "xcvr"} <= set(outs)
    assert all(c <= x + 1e-6 for c, x in zip(outs["ctcvr"], outs["xcvr"]))


VALIDATION_CHILD = r"""
import json, sys
import tensorflow_model_analysis as tfma
from pipeline.report import blessing_failures
result = tfma.load_validation_result(sys.argv[2])
failures = [str(f).replace("\n", " ") for slice_failure in result.metric_validations_per_slice
            for f in slice_failure.failures]
failed = [(head, where, threshold) for head, where, threshold, _, _ in blessing_failures(result)]
json.dump({"ok": bool(result.validation_ok), "failures": failures, "failed": failed}, open(sys.argv[1], "w"))
"""


def test_candidate_with_untrained_conversion_heads_is_not_blessed_although_ctr_holds(synthetic_run, session_run_copy,
                                                                                     tmp_path):
    """A candidate trained on the click label only: its ctr ranks as well as before, its ctavr, ctcvr and xcvr come
    from untrained, uncalibrated edges. A gate on ctr alone would bless it; the gate covers every served head,
    so it is not pushed, and the CLI and the report name the failing heads."""
    root, out = synthetic_run[0], session_run_copy
    before = served_versions(out)
    train = tmp_path / "train.yaml"
    train.write_text("supervised_heads: [ctr]\ncalibrate: false\n")
    # Small eval span: judge calibration at 10 positives. Its ~150 click positives put the AUC's standard error
    # near 0.025, so "ctr holds" is "ctr within 0.1 of the baseline"; the other heads keep the default 0.01
    # and drop by far more (their edges are untrained).
    blessing = _write(tmp_path / "blessing.yaml", "min_positives: 10\nheads: {ctr: {max_auc_drop: 0.1}}\n")
    proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic", "--output", str(out),
                    "--epochs", "4", "--batch-size", "256", "--train-config", str(train), "--blessing", str(blessing)])
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-4000:]  # RunStatus.NOT_BLESSED
    assert "not pushed (model not blessed)" in proc.stdout
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "not_blessed" and summary["blessed"] is False and not summary["pushed_dir"]
    _, runs = pipeline_states(str(out))
    evaluator = component(runs, "Evaluator")
    assert mlmd.custom_property(evaluator.outputs["blessing"][0], "blessed") == 0
    validation = run_python(VALIDATION_CHILD, str(tmp_path / "validation.json"),
                            [evaluator.outputs["evaluation"][0].uri])
    overall = [(head, threshold) for head, where, threshold in validation["failed"] if where == "overall"]
    assert any(head == "ctcvr" for head, _ in overall), validation["failed"]
    assert not any(head == "ctr" and threshold.startswith("AUC") for head, threshold in overall), overall
    assert "not blessed: ctcvr / overall" in proc.stdout
    with open(out / "report" / "report.md") as fh:
        report = fh.read()
    assert "NOT BLESSED" in report and "| ctcvr | overall |" in report
    assert served_versions(out) == before
    res = serve_eval_examples(tmp_path, str(out / "serving" / "msmt" / before[-1]),  # the served version still serves
                 component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["n"] == 200

def test_model_with_fewer_heads_runs_and_is_evaluated_on_its_own_heads(synthetic_run, session_run_copy, tmp_path):
    """ESMM has no action edge and no view-through edge: on this spec (view-through conversions) it serves ctr,
    cvr and ctcvr only. The Evaluator evaluates and gates exactly ctr and ctcvr. The run also tunes (TFX Tuner,
    two trials): the Trainer trains with the best point."""
    root, out = synthetic_run[0], session_run_copy
    proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic", "--output", str(out),
                    "--model", "esmm", "--epochs", "4", "--batch-size", "256", "--max-auc-drop", "1.0",
                    "--tune", "--max-trials", "2",
                    "--blessing", str(_write(tmp_path / "b.yaml", "min_calibration: null\nmax_calibration: null\n"))])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = pipeline_states(str(out))
    with open(os.path.join(component(runs, "Trainer").outputs["model_run"][0].uri, "train_summary.json")) as fh:
        summary = json.load(fh)
    assert summary["outputs"] == ["ctr", "cvr", "ctcvr"] and summary["supervised_heads"] == ["ctr", "ctcvr"]
    tuner = component(runs, "Tuner")
    assert tuner.state == "COMPLETE" and component(runs, "Trainer").inputs.get("hyperparameters")
    tuned = summary["tuned_hyperparameters"]
    assert "train.learning_rate" in tuned and "train.epochs" not in tuned  # --epochs 4 is held fixed
    assert summary["train_config"]["learning_rate"] == tuned["train.learning_rate"]
    assert summary["train_config"]["epochs"] == 4
    evaluation = component(runs, "Evaluator").outputs["evaluation"][0].uri
    from pipeline.results import read_tfma_metrics
    assert {h for h, _ in read_tfma_metrics(evaluation)} == {"ctr", "ctcvr"}
    with open(os.path.join(evaluation, "gating.json")) as fh:
        assert set(h.split("/")[0] for h in json.load(fh)["positives"]) == {"ctr", "ctcvr"}
    assert "pushed model: " + str(out / "serving" / "msmt") in proc.stdout
    res = serve_eval_examples(tmp_path, os.path.join(str(out / "serving" / "msmt"), served_versions(out)[-1]),
                 component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert set(res["outputs"]) == {"ctr", "cvr", "ctcvr"}


def _write(path, text):
    path.write_text(text)
    return path
