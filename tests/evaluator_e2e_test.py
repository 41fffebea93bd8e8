"""The batched Evaluator gives TFX's own numbers: the same metrics, plots, validation and blessing, to 1e-6, as
TFMA running the SavedModels and its metrics one example at a time.

Both paths run :class:`pipeline.evaluator.GatedEvaluatorExecutor` (``evaluate_from`` "models" and "batches")
in a child process on the session run's newest ExampleGen output (its eval and calibration splits: two input
paths, ~1,800 rows, where TFX's own path is still quick), with its pushed model as the candidate and as the
baseline, so that both model specs, the diff metrics and the change thresholds are compared too.
"""

import glob
import os

from tests.helpers import run_python

CHILD = r"""
import json, os, sys
import tensorflow_model_analysis as tfma

from features.spec import resolve_spec
from pipeline.evaluator import evaluate_offline

examples_uri, model_uri, out = sys.argv[2:5]


def evaluate(mode):
    run = evaluate_offline(examples_uri, model_uri, os.path.join(out, mode), resolve_spec("synthetic"),
                           baseline_uri=model_uri, splits=["eval", "calibration"], evaluate_from=mode)
    seconds, evaluation_uri = run["seconds"], run["evaluation"]
    metrics, plots = {}, {}
    for m in tfma.load_metrics(evaluation_uri):
        where_ = str(tfma.slicer.deserialize_slice_key(m.slice_key))
        for kv in m.metric_keys_and_values:
            k = kv.key
            metrics[f"{where_}|{k.model_name}|{k.output_name}|{k.name}|{k.is_diff}"] = (
                kv.value.double_value.value if kv.value.HasField("double_value") else None)
    for p in tfma.load_plots(evaluation_uri):
        where_ = str(tfma.slicer.deserialize_slice_key(p.slice_key))
        for kv in p.plot_keys_and_values:
            k, v = kv.key, kv.value
            for i, b in enumerate(v.calibration_histogram_buckets.buckets):
                plots[f"{where_}|{k.model_name}|{k.output_name}|calibration|{i}"] = [
                    b.num_weighted_examples.value, b.total_weighted_label.value,
                    b.total_weighted_refined_prediction.value]
            for i, c in enumerate(v.confusion_matrix_at_thresholds.matrices):
                plots[f"{where_}|{k.model_name}|{k.output_name}|roc|{i}"] = [
                    c.threshold, c.true_positives, c.false_positives, c.true_negatives, c.false_negatives]
    validation = tfma.load_validation_result(evaluation_uri)
    return {"seconds": seconds, "metrics": metrics, "plots": plots, "ok": bool(validation.validation_ok),
            "blessed": run["blessed"],
            "failures": sorted(str(f.metric_key) for s in validation.metric_validations_per_slice
                               for f in s.failures),
            "slices": sorted(str(s) for s in validation.validation_details.slicing_details)}


json.dump({mode: evaluate(mode) for mode in sys.argv[5:]}, open(sys.argv[1], "w"))
"""


def _newest(out, component, output):
    dirs = glob.glob(str(out / "pipeline_root" / component / output / "*"))
    assert dirs, f"the session run has no {component} {output}"
    return max(dirs, key=lambda d: int(os.path.basename(d)))


def test_batched_evaluator_gives_tfmas_own_metrics_plots_and_blessing(synthetic_run, tmp_path):
    _, out, _ = synthetic_run
    res = run_python(CHILD, str(tmp_path / "res.json"),
                     [_newest(out, "CsvExampleGen", "examples"), _newest(out, "Trainer", "model"), str(tmp_path),
                      "models", "batches"],
                     timeout=900)
    models, batches = res["models"], res["batches"]
    assert models["metrics"].keys() == batches["metrics"].keys()
    names = {k.split("|")[3] for k in models["metrics"]}
    assert {"auc", "gauc", "binary_crossentropy", "calibration", "example_count"} <= names, sorted(names)
    assert {k.split("|")[1] for k in models["metrics"]} == {"candidate", "baseline"}
    assert any(k.endswith("|True") for k in models["metrics"])  # the candidate - baseline diffs
    for key, value in models["metrics"].items():
        other = batches["metrics"][key]
        assert (value is None) == (other is None), key
        assert value is None or abs(value - other) <= 1e-6 or (value != value and other != other), (key, value,
                                                                                                  other)
    assert models["plots"].keys() == batches["plots"].keys() and len(models["plots"]) > 1000
    worst = max(abs(a - b) for k in models["plots"] for a, b in zip(models["plots"][k], batches["plots"][k]))
    assert worst <= 1e-6, worst
    assert (models["ok"], models["blessed"], models["failures"]) == (batches["ok"], batches["blessed"],
                                                                     batches["failures"])
    assert models["slices"] == batches["slices"]  # the slices validated
    assert batches["seconds"] > 0 and models["seconds"] > 0
