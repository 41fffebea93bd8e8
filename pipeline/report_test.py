"""Evaluation report on a hand-made tiny TFMA output: RelaImpr by hand, blessing failures, PNGs, CLI.

The fake run directory mimics what the Evaluator writes (pipeline_root/Evaluator/evaluation/<n>/ with
metrics-*, plots-*, validations.tfrecord, eval_config.json; blessing/<n>/NOT_BLESSED) without ML Metadata.
"""

import argparse
import json
import math
import os

import pytest

from pipeline import report as R

# candidate / baseline AUC per (head, slice); RelaImpr by hand:
#   ctr overall: ((0.70 - 0.5) / (0.65 - 0.5) - 1) x 100 = (0.20 / 0.15 - 1) x 100 = +33.33%
#   ctr search:  ((0.62 - 0.5) / (0.68 - 0.5) - 1) x 100 = (0.12 / 0.18 - 1) x 100 = -33.33%
AUC = {("candidate", "ctr", "overall"): 0.70, ("baseline", "ctr", "overall"): 0.65,
       ("candidate", "ctr", "search"): 0.62, ("baseline", "ctr", "search"): 0.68,
       ("candidate", "ctcvr", "overall"): 0.80, ("baseline", "ctcvr", "overall"): 0.80,
       ("candidate", "ctcvr", "search"): 0.0, ("baseline", "ctcvr", "search"): 0.0}  # no positive in search


def _write_records(path, messages):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as w:
        for m in messages:
            w.write(m.SerializeToString())


def _slice_key(pb, slice_):
    if slice_ != "overall":
        k = pb.slice_key.single_slice_keys.add()
        k.column, k.bytes_value = "scenario", slice_.encode()


def _fake_evaluation(eval_dir, models=("candidate", "baseline"), auc=AUC, failures=True):
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as M
    from tensorflow_model_analysis.proto import validation_result_pb2 as V

    os.makedirs(eval_dir)
    metrics, plots = [], []
    for slice_ in ("overall", "search"):
        mfs, pfs = M.MetricsForSlice(), M.PlotsForSlice()
        _slice_key(mfs, slice_)
        _slice_key(pfs, slice_)
        for model in models:
            for head in ("ctr", "ctcvr"):
                n = 1000 if slice_ == "overall" else 200
                pos = 0 if (head, slice_) == ("ctcvr", "search") else n // 10
                values = {"auc": auc[(model, head, slice_)], "gauc": 0.6, "gauc_users": 42.0,
                          "binary_crossentropy": 0.3, "calibration": 1.02, "example_count": float(n)}
                for name, v in values.items():
                    kv = mfs.metric_keys_and_values.add()
                    kv.key.name, kv.key.model_name, kv.key.output_name = name, model, head
                    kv.value.double_value.value = v
                if model == "candidate" and len(models) > 1:
                    kv = mfs.metric_keys_and_values.add()
                    kv.key.name, kv.key.model_name, kv.key.output_name, kv.key.is_diff = "auc", model, head, True
                    kv.value.double_value.value = auc[(model, head, slice_)] - auc[("baseline", head, slice_)]
                pkv = pfs.plot_keys_and_values.add()
                pkv.key.model_name, pkv.key.output_name = model, head
                # ROC: three thresholds; calibration: two buckets.
                for thr, tp, fp in ((0.0, pos, n - pos), (0.5, pos // 2, (n - pos) // 5), (1.0, 0, 0)):
                    m = pkv.value.confusion_matrix_at_thresholds.matrices.add()
                    m.threshold, m.true_positives, m.false_positives = thr, tp, fp
                    m.false_negatives, m.true_negatives = pos - tp, (n - pos) - fp
                for lo, hi, w, lab, pred in ((0.0, 0.5, n * 0.8, pos * 0.3, n * 0.8 * 0.05),
                                             (0.5, 1.0, n * 0.2, pos * 0.7, n * 0.2 * 0.3)):
                    b = pkv.value.calibration_histogram_buckets.buckets.add()
                    b.lower_threshold_inclusive, b.upper_threshold_exclusive = lo, hi
                    b.num_weighted_examples.value, b.total_weighted_label.value = w, lab
                    b.total_weighted_refined_prediction.value = pred
        metrics.append(mfs)
        plots.append(pfs)
    _write_records(os.path.join(eval_dir, "metrics-00000-of-00001.tfrecord"), metrics)
    _write_records(os.path.join(eval_dir, "plots-00000-of-00001.tfrecord"), plots)
    val = V.ValidationResult(validation_ok=not failures)
    if failures:
        mv = val.metric_validations_per_slice.add()
        _slice_key(mv, "search")
        f = mv.failures.add()
        f.metric_key.name, f.metric_key.model_name, f.metric_key.output_name = "auc", "candidate", "ctr"
        f.metric_key.is_diff = True
        f.metric_threshold.change_threshold.direction = 2  # HIGHER_IS_BETTER
        f.metric_threshold.change_threshold.absolute.value = -0.01
        f.metric_value.double_value.value = -0.06
        f = mv.failures.add()
        f.metric_key.name, f.metric_key.model_name, f.metric_key.output_name = "auc", "candidate", "ctr"
        f.metric_threshold.value_threshold.lower_bound.value = 0.65
        f.metric_value.double_value.value = 0.62
    _write_records(os.path.join(eval_dir, "validations.tfrecord"), [val])
    cfg = {"metricsSpecs": [{"outputNames": ["ctr"], "metrics": [{"className": "AUC", "perSliceThresholds": [
        {"slicingSpecs": [{}, {"featureValues": {"scenario": "search"}}],
         "threshold": {"valueThreshold": {"lowerBound": 0.65},
                       "changeThreshold": {"direction": "HIGHER_IS_BETTER", "absolute": -0.01}}}]}]}]}
    with open(os.path.join(eval_dir, "eval_config.json"), "w") as fh:
        json.dump({"evalConfig": cfg, "version": "0.52.0",
                   "modelLocations": {m: f"/models/{m}" for m in models}}, fh)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    ev_root = os.path.join(run, "pipeline_root", "Evaluator")
    _fake_evaluation(os.path.join(ev_root, "evaluation", "12"))
    os.makedirs(os.path.join(ev_root, "blessing", "12"))
    open(os.path.join(ev_root, "blessing", "12", "NOT_BLESSED"), "w").close()
    # An older evaluation (lower execution id) that must not be picked.
    _fake_evaluation(os.path.join(ev_root, "evaluation", "3"), models=("",),
                     auc={("", h, s): 0.5 for h in ("ctr", "ctcvr") for s in ("overall", "search")}, failures=False)
    return str(run)


def test_rela_impr_hand_values():
    assert R.rela_impr(0.70, 0.65) == pytest.approx(100.0 / 3.0)
    assert R.rela_impr(0.62, 0.68) == pytest.approx(-100.0 / 3.0)
    assert R.rela_impr(0.65, 0.65) == 0.0
    assert math.isnan(R.rela_impr(0.7, 0.5)) and math.isnan(R.rela_impr(0.7, float("nan")))


def test_report_tables_blessing_and_pngs(run_dir):
    path = R.write_report(run_dir)
    out = os.path.join(run_dir, "report")
    assert path == os.path.join(out, "report.md")
    text = open(path).read()
    assert "evaluation/12" in text and "evaluation/3`" not in text
    assert "Verdict: **NOT BLESSED**" in text
    # Failed thresholds: the change threshold (diff value) and the absolute one.
    assert "| ctr | search | AUC - baseline AUC >= -0.01 | diff -0.0600 |" in text
    assert "| ctr | search | AUC >= 0.65 | 0.6200 |" in text
    assert "| ctr | overall; scenario=search | AUC >= 0.65 and AUC - baseline AUC >= -0.01 |" in text
    # Rows: slice, examples, positives, AUC, GAUC, GAUC users, logloss, calibration, baseline AUC, diff, RelaImpr.
    assert "| overall | 1000 | 100 | 0.7000 | 0.6000 | 42 | 0.3000 | 1.020 | 0.6500 | +0.0500 | +33.33% | 0.6000 |" \
        in text
    assert "| search | 200 | 20 | 0.6200 | 0.6000 | 42 | 0.3000 | 1.020 | 0.6800 | -0.0600 | -33.33% | 0.6000 |" in text
    # ctcvr in search has no positive: TFMA's AUC (0) is shown as undefined, and so is RelaImpr.
    assert "| search | 200 | 0 | - | 0.6000 | 42 | 0.3000 | 1.020 | - | - | - | 0.6000 |" in text
    for name in ("roc_overall.png", "roc_search.png", "calibration_ctr.png", "calibration_ctcvr.png"):
        with open(os.path.join(out, name), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in text


def test_baseline_run_dir_takes_precedence(run_dir, tmp_path):
    other = tmp_path / "other_run"
    _fake_evaluation(os.path.join(other, "pipeline_root", "Evaluator", "evaluation", "5"), models=("",),
                     auc={("", h, s): 0.60 for h in ("ctr", "ctcvr") for s in ("overall", "search")}, failures=False)
    path = R.write_report(run_dir, output_dir=str(tmp_path / "rep"), baseline_run_dir=str(other))
    text = open(path).read()
    assert path == str(tmp_path / "rep" / "report.md")
    assert f"the candidate of run `{other}`" in text
    # ((0.70 - 0.5) / (0.60 - 0.5) - 1) x 100 = +100%
    assert "| overall | 1000 | 100 | 0.7000 | 0.6000 | 42 | 0.3000 | 1.020 | 0.6000 | +0.1000 | +100.00% |" in text


def test_helpers_roc_and_calibration_points():
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as M

    cm = M.ConfusionMatrixAtThresholds()
    for tp, fp, fn, tn in ((10, 90, 0, 0), (5, 18, 5, 72), (0, 0, 10, 90)):
        m = cm.matrices.add()
        m.true_positives, m.false_positives, m.false_negatives, m.true_negatives = tp, fp, fn, tn
    fpr, tpr = R.roc_points(cm.matrices)
    assert fpr == [0.0, 0.2, 1.0] and tpr == [0.0, 0.5, 1.0]
    buckets = M.CalibrationHistogramBuckets()
    for w, lab, pred in ((50, 1, 2.5), (50, 4, 5.0), (100, 20, 30.0)):
        b = buckets.buckets.add()
        b.num_weighted_examples.value, b.total_weighted_label.value = w, lab
        b.total_weighted_refined_prediction.value = pred
    xs, ys, ws = R.calibration_points(buckets.buckets, bins=2)
    assert ws == [100, 100] and xs == pytest.approx([0.075, 0.3]) and ys == pytest.approx([0.05, 0.2])


def test_evaluate_cli_and_clear_error(run_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="msmt")
    R.add_evaluate_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", run_dir, "--output", str(tmp_path / "cli")])
    assert args.func(args) == 0
    assert os.path.exists(tmp_path / "cli" / "report.md")
    assert "report written to" in capsys.readouterr().out
    empty = tmp_path / "empty_run"
    empty.mkdir()
    args = parser.parse_args(["evaluate", str(empty)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert f"msmt evaluate: {empty}: no evaluation found" in err
    with pytest.raises(R.ReportError, match="no such directory"):
        R.find_evaluation(str(tmp_path / "missing"))


DEMO_RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "demo", "run")


@pytest.mark.skipif(not os.path.exists(os.path.join(DEMO_RUN, "metadata.sqlite")),
                    reason="needs the demo run (make demo): reads its ML Metadata")
def test_report_of_the_demo_run_through_mlmd(tmp_path):
    ref = R.find_evaluation(DEMO_RUN)
    assert ref.source == "ML Metadata" and ref.blessed in (True, False)
    text = open(R.write_report(DEMO_RUN, output_dir=str(tmp_path))).read()
    assert "Verdict: **BLESSED**" in text or "Verdict: **NOT BLESSED**" in text
    assert "| overall |" in text
