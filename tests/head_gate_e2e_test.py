"""End to end: the gate covers every served head. Reruns in a copy of the session's run directory (cached
upstream) with a candidate whose conversion heads are untrained (refused although its ctr holds) and with a
model that serves fewer heads (evaluated and gated on its own heads, after a two-trial tuning)."""

import json
import os

from pipeline import mlmd
from tests.helpers import component, pipeline_states, run_cli, run_python, serve_eval_examples, served_versions, \
    synthetic_data


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
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "not pushed (model not blessed)" in proc.stdout
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
