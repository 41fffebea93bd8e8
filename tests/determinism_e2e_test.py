"""Determinism (issue #7 item 5): the same data, config and seed give identical metrics in two runs.

A second ``msmt run`` with the session run's data, spec, model and training config (read back from the run
config the CLI wrote, ``logs/pipeline-config-*.json``), with ``--no-cache`` into a new output directory, must give
the same TFMA metrics for every head x slice (to 1e-6 on CPU) and the same training history, and both evaluation
reports (``report/report.md`` and ``report/report.json``) must record the same seed, lock-file hash and data
fingerprint.

Later tests re-run other configurations into the session run's directory; everything of the session run is
therefore read from its oldest config, evaluation and Trainer output, so the test holds in any order.
"""

import glob
import hashlib
import json
import math
import os

import pytest
import yaml

from tests.helpers import REPO_ROOT, run_cli

TOL = 1e-6


def _oldest(pattern):
    found = sorted(glob.glob(pattern))
    assert found, f"nothing matches {pattern}"
    return found[0]


def _oldest_numbered(pattern):
    found = [p for p in glob.glob(pattern) if os.path.basename(p).isdigit()]
    assert found, f"nothing matches {pattern}"
    return min(found, key=lambda p: int(os.path.basename(p)))


def _tfma_metrics(out):
    """(head, slice) -> {metric: value} of the run's first Evaluator output (the candidate model)."""
    from pipeline.results import read_tfma_metrics

    return read_tfma_metrics(_oldest_numbered(os.path.join(str(out), "pipeline_root", "Evaluator", "evaluation", "*")))


def _train_summary(out):
    path = os.path.join(_oldest_numbered(os.path.join(str(out), "pipeline_root", "Trainer", "model_run", "*")),
                        "train_summary.json")
    with open(path) as fh:
        return json.load(fh)


def _report(out):
    with open(os.path.join(str(out), "report", "report.json")) as fh:
        record = json.load(fh)
    with open(os.path.join(str(out), "report", "report.md")) as fh:
        return record, fh.read()


def _diff(a, b):
    """|a - b|; 0 when both are NaN/None (undefined in both runs), inf when only one is."""
    undefined_a = a is None or (isinstance(a, float) and math.isnan(a))
    undefined_b = b is None or (isinstance(b, float) and math.isnan(b))
    if undefined_a or undefined_b:
        return 0.0 if undefined_a and undefined_b else math.inf
    return abs(a - b)


def _canonical_records(artifact_dir, split):
    """The split's tf.Examples, re-serialized deterministically (a proto map's wire order may vary), in order."""
    import tensorflow as tf

    from pipeline.results import split_files

    files = split_files(artifact_dir, [split])
    assert files, f"no files in {artifact_dir}/[*/]Split-{split}"
    return [tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


@pytest.fixture(scope="module")
def two_runs(synthetic_run, tmp_path_factory):
    """(session run config, session run dir, second run dir, the seed both runs trained with)."""
    from models.config import TrainConfig, parse_config

    _, out, _ = synthetic_run
    with open(_oldest(os.path.join(str(out), "logs", "pipeline-config-*.json"))) as fh:
        cfg = json.load(fh)
    seed = parse_config(TrainConfig, cfg["train"], source="session run config").seed
    tmp = tmp_path_factory.mktemp("determinism")
    train = tmp / "train.yaml"
    train.write_text(yaml.safe_dump(cfg["train"]))
    second = tmp / "run"
    args = ["run", "--data", cfg["data"], "--spec", cfg["spec"], "--output", str(second), "--model", cfg["model"],
            "--train-config", str(train), "--seed", str(seed),
            "--max-bad-fraction", repr(cfg["max_bad_fraction"]), "--no-cache"]
    args += [f"--beam-arg={a}" for a in cfg["beam_args"]]
    if cfg.get("model_config"):
        (tmp / "model.yaml").write_text(yaml.safe_dump(cfg["model_config"]))
        args += ["--model-config", str(tmp / "model.yaml")]
    if cfg.get("blessing"):
        (tmp / "blessing.yaml").write_text(yaml.safe_dump(cfg["blessing"]))
        args += ["--blessing", str(tmp / "blessing.yaml")]
    if cfg.get("span") not in (None, ""):
        args += ["--span", str(cfg["span"])]
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    with open(_oldest(os.path.join(str(second), "logs", "pipeline-config-*.json"))) as fh:
        cfg2 = json.load(fh)
    assert not cfg2["enable_cache"] and cfg2["data"] == cfg["data"] and cfg2["model"] == cfg["model"]
    return cfg, out, second, seed


@pytest.mark.parametrize("component,artifact", [("CsvExampleGen", "examples"),
                                                ("Transform", "transformed_examples")])
def test_same_examples_in_the_same_order(two_runs, component, artifact):
    """ExampleGen's hash split and Transform's output (vocabularies, z-score statistics, buckets) are identical."""
    _, out, second, _ = two_runs
    for split in ("train", "eval"):
        first, again = (_canonical_records(_oldest_numbered(os.path.join(str(run), "pipeline_root", component,
                                                                          artifact, "*")), split)
                        for run in (out, second))
        assert len(first) == len(again) > 0, split
        differing = sum(a != b for a, b in zip(first, again))
        assert differing == 0, (f"{component} {split}: {differing} of {len(first)} examples differ between the "
                                f"two runs" + (" (same multiset: the order differs)" if sorted(first) == sorted(again)
                                               else ""))


def test_same_data_config_and_seed_give_the_same_metrics(two_runs):
    _, out, second, _ = two_runs
    first, again = _tfma_metrics(out), _tfma_metrics(second)
    assert first and set(first) == set(again), (sorted(first), sorted(again))
    assert {"overall", "home_feed", "search", "detail_page"} <= {s for _, s in first}
    diffs = {}
    for key, metrics in first.items():
        assert set(metrics) == set(again[key]), key
        assert "auc" in metrics and "binary_crossentropy" in metrics, key
        for name, value in metrics.items():
            diffs[f"{key[0]}/{key[1]}/{name}"] = _diff(value, again[key][name])
    worst = sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    print(f"\ndeterminism: {len(diffs)} metrics over {len(first)} head x slice, max abs diff {worst[0][1]:.3g} "
          f"({worst[0][0]})")
    assert worst[0][1] <= TOL, (f"metrics differ between two runs with the same data, config and seed: {worst}; "
                                "test_same_examples_in_the_same_order shows whether the inputs already differ")
    # The second run's own summary holds the same numbers (it reads the same TFMA output).
    with open(os.path.join(str(second), "run_summary.json")) as fh:
        summary = json.load(fh)["metrics"]
    for (head, slice_), metrics in first.items():
        for name, value in metrics.items():
            assert _diff(value, summary[f"{head}/{slice_}"][name]) <= TOL, (head, slice_, name)


def test_same_training_history_and_seed(two_runs):
    _, out, second, seed = two_runs
    first, again = _train_summary(out), _train_summary(second)
    assert first["seed"] == again["seed"] == seed
    assert set(first["history"]) == set(again["history"]) and "loss" in first["history"]
    for name, values in first["history"].items():
        assert len(values) == len(again["history"][name]), name
        assert max(_diff(a, b) for a, b in zip(values, again["history"][name])) <= TOL, name


def test_both_reports_record_the_seed_lock_hash_and_data_fingerprint(two_runs):
    _, out, second, seed = two_runs
    with open(os.path.join(REPO_ROOT, "requirements.lock"), "rb") as fh:
        lock = hashlib.sha256(fh.read()).hexdigest()
    recorded = []
    for run in (out, second):
        record, text = _report(run)
        rep = record["reproducibility"]
        assert rep["seed"] == seed and rep["seed_source"].startswith("Trainer "), rep
        assert rep["lock_sha256"] == lock and rep["trainer_lock_sha256"] == lock, rep
        # The run's own ExampleGen read the evaluated span (2) from one file; spans 0-1 were read by ingest runs.
        assert rep["data_fingerprint"].startswith("split:single_split,num_files:1,"), rep
        assert rep["span"] == 2 and rep["data_source"].startswith("ML Metadata: CsvExampleGen"), rep
        section = text[text.index("## Reproducibility"):]
        assert f"| training seed | `{seed}` |" in section
        assert f"| lock-file sha256 | `{lock}` |" in section
        assert f"| data fingerprint | `{rep['data_fingerprint']}`, span 2 |" in section
        recorded.append({k: rep[k] for k in ("seed", "lock_sha256", "data_fingerprint", "span", "version")})
    assert recorded[0] == recorded[1]
