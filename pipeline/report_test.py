"""Evaluation report on a hand-made tiny TFMA output: RelaImpr by hand, blessing failures, PNGs, CLI,
the reproducibility record (seed, lock-file hash, data fingerprint) in report.md and report.json.

The fake run directory mimics what the Evaluator writes (pipeline_root/Evaluator/evaluation/<n>/ with
metrics-*, plots-*, validations.tfrecord, eval_config.json; blessing/<n>/NOT_BLESSED) without ML Metadata;
``_fake_mlmd`` adds a hand-made ML Metadata store like the one a local TFX run writes.
"""

import argparse
import hashlib
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


# ------------------------------------------------------------------------------------ reproducibility
LOCK_SHA256 = hashlib.sha256(open(R.LOCK_FILE, "rb").read()).hexdigest() if os.path.exists(R.LOCK_FILE) else None
FINGERPRINT = "split:single_split,num_files:3,total_bytes:1026404,xor_checksum:1795876124,sum_checksum:5387628372"


def _train_summary(model_run_dir, **fields):
    os.makedirs(model_run_dir, exist_ok=True)
    with open(os.path.join(model_run_dir, "train_summary.json"), "w") as fh:
        json.dump(dict({"model": "shared_bottom"}, **fields), fh)


def _fake_mlmd(run, eval_dir, model_run_dir, custom_config, fingerprint=FINGERPRINT, span=2):
    """An ML Metadata store as a local TFX run writes it: pipeline 'msmt', one pipeline_run, node contexts
    'msmt.<component>', an execution per component with its output artifacts (OUTPUT events keyed by name)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = os.path.join(run, "metadata.sqlite")
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(cfg)
    ctx_types = {n: store.put_context_type(pb.ContextType(name=n)) for n in ("pipeline", "pipeline_run", "node")}
    pipeline_ctx, run_ctx = store.put_contexts([pb.Context(type_id=ctx_types["pipeline"], name="msmt"),
                                                pb.Context(type_id=ctx_types["pipeline_run"], name="run-1")])

    def component(name, outputs, exec_props=None):
        [node_ctx] = store.put_contexts([pb.Context(type_id=ctx_types["node"], name=f"msmt.{name}")])
        ex = pb.Execution(type_id=store.put_execution_type(pb.ExecutionType(name=f"tfx.{name}")),
                          last_known_state=pb.Execution.COMPLETE)
        for k, v in (exec_props or {}).items():
            ex.custom_properties[k].string_value = v
        [eid] = store.put_executions([ex])
        events, attributions = [], []
        for key, (type_name, uri, props) in outputs.items():
            a = pb.Artifact(type_id=store.put_artifact_type(pb.ArtifactType(name=type_name)), uri=uri)
            for k, v in props.items():
                if isinstance(v, int):
                    a.custom_properties[k].int_value = v
                else:
                    a.custom_properties[k].string_value = v
            [aid] = store.put_artifacts([a])
            ev = pb.Event(artifact_id=aid, execution_id=eid, type=pb.Event.OUTPUT)
            ev.path.steps.add().key = key
            events.append(ev)
            attributions += [pb.Attribution(context_id=c, artifact_id=aid) for c in (run_ctx, node_ctx)]
        store.put_events(events)
        store.put_attributions_and_associations(
            attributions, [pb.Association(context_id=c, execution_id=eid) for c in (pipeline_ctx, run_ctx, node_ctx)])

    examples_uri = os.path.join(run, "pipeline_root", "CsvExampleGen", "examples", "1")
    component("CsvExampleGen", {"examples": ("Examples", examples_uri,
                                             {"input_fingerprint": fingerprint, "span": span, "good_rows": 8000})})
    component("Trainer", {"model": ("Model", os.path.join(run, "pipeline_root", "Trainer", "model", "7"), {}),
                          "model_run": ("ModelRun", model_run_dir, {})},
              exec_props={"custom_config": json.dumps(custom_config)})
    component("Evaluator", {"evaluation": ("ModelEvaluation", eval_dir, {}),
                            "blessing": ("ModelBlessing", os.path.join(run, "blessing"), {"blessed": 1})})
    return examples_uri


def test_reproducibility_through_mlmd_in_report_md_and_json(tmp_path):
    run = str(tmp_path / "run")
    eval_dir = os.path.join(run, "pipeline_root", "Evaluator", "evaluation", "8")
    _fake_evaluation(eval_dir, models=("",), auc={("", h, s): 0.7 for h in ("ctr", "ctcvr")
                                                  for s in ("overall", "search")}, failures=False)
    model_run = os.path.join(run, "pipeline_root", "Trainer", "model_run", "7")
    _train_summary(model_run, seed=1234, deterministic=True, lock_sha256=LOCK_SHA256)
    examples_uri = _fake_mlmd(run, eval_dir, model_run, {"train": {"epochs": 4, "seed": 99}})

    rep = R.reproducibility(run)
    assert rep.seed == 1234 and rep.seed_source.startswith("Trainer ")  # what the Trainer used, not the config
    assert rep.lock_sha256 == LOCK_SHA256 and rep.trainer_lock_sha256 == LOCK_SHA256
    assert rep.data_fingerprint == FINGERPRINT and rep.span == 2 and rep.version is None
    assert rep.examples_uri == examples_uri and rep.data_source.startswith("ML Metadata: CsvExampleGen")

    path = R.write_report(run)
    text = open(path).read()
    assert "found via ML Metadata" in text and "Verdict: **BLESSED**" in text
    section = text[text.index("## Reproducibility"):]
    assert "| training seed | `1234` |" in section
    assert f"| lock-file sha256 | `{LOCK_SHA256}` |" in section
    assert f"| data fingerprint | `{FINGERPRINT}`, span 2 |" in section
    assert "Warning" not in section
    with open(os.path.join(run, "report", "report.json")) as fh:
        record = json.load(fh)
    assert record["reproducibility"] == rep.to_dict()
    assert record["blessed"] is True and record["evaluation"] == eval_dir
    assert record["metrics"]["ctr/overall"]["auc"] == 0.7
    assert record["metrics"]["ctcvr/search"]["example_count"] == 200.0
    assert set(record["metrics"]) == {f"{h}/{s}" for h in ("ctr", "ctcvr") for s in ("overall", "search")}


def test_seed_from_the_trainer_config_and_a_changed_lock_file(tmp_path):
    run = str(tmp_path / "run")
    eval_dir = os.path.join(run, "pipeline_root", "Evaluator", "evaluation", "8")
    _fake_evaluation(eval_dir, models=("",), auc={("", h, s): 0.7 for h in ("ctr", "ctcvr")
                                                  for s in ("overall", "search")}, failures=False)
    model_run = os.path.join(run, "pipeline_root", "Trainer", "model_run", "7")
    _train_summary(model_run, lock_sha256="0" * 64)  # an older Trainer: no seed recorded
    _fake_mlmd(run, eval_dir, model_run, {"train": {"epochs": 4, "seed": 99}}, span=0)
    rep = R.reproducibility(run)
    assert rep.seed == 99 and rep.seed_source.startswith("Trainer custom_config")
    text = open(R.write_report(run)).read()
    assert "| training seed | `99` |" in text and ", span 0 |" in text
    if LOCK_SHA256:
        assert f"different lock file (sha256 `{'0' * 64}`)" in text


def test_reproducibility_without_mlmd_reads_the_files(run_dir, tmp_path):
    from models.config import TrainConfig

    # The module's fake run: no ML Metadata, no Trainer output, no run config: only the lock file is known.
    rep = R.reproducibility(run_dir)
    assert rep.seed is None and rep.data_fingerprint is None and rep.lock_sha256 == LOCK_SHA256
    text = open(R.write_report(run_dir, output_dir=str(tmp_path / "rep"))).read()
    assert "| training seed | unknown |" in text and "| data fingerprint | unknown |" in text
    record = json.load(open(tmp_path / "rep" / "report.json"))
    assert record["reproducibility"]["seed"] is None and record["reproducibility"]["lock_sha256"] == LOCK_SHA256

    # The run config msmt run wrote: no seed key -> the TrainConfig default; the newest file wins.
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "pipeline-config-20240101-000000.json").write_text(json.dumps({"train": {"seed": 5}}))
    (run / "logs" / "pipeline-config-20240102-000000.json").write_text(json.dumps({"train": {"epochs": 4}}))
    rep = R.reproducibility(str(run))
    assert rep.seed == TrainConfig.seed and rep.seed_source.endswith("pipeline-config-20240102-000000.json")
    # A Trainer summary (newest model_run) takes precedence over the run config.
    _train_summary(str(run / "pipeline_root" / "Trainer" / "model_run" / "3"), seed=3)
    _train_summary(str(run / "pipeline_root" / "Trainer" / "model_run" / "11"), seed=11, lock_sha256=LOCK_SHA256)
    rep = R.reproducibility(str(run))
    assert rep.seed == 11 and rep.trainer_lock_sha256 == LOCK_SHA256
