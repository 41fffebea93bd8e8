"""``msmt skew``: compare the rows a model scores (or a sample of serving logs) with the data it was trained on.

A served model meets the rows of today, not the rows it learnt from. ``msmt skew --model VERSION_DIR --input
PATTERN`` finds, in the run's ML Metadata, the spans the version was trained on (``mlmd.version_lineage``:
Pusher -> Trainer -> Transform -> examples) and the statistics StatisticsGen computed on the newest of them,
computes TFDV statistics of the input, and validates them with TFDV's **skew comparators**: L-infinity for
string features, Jensen-Shannon divergence for numeric ones, at the levels of the model's spec (``drift``
section, ``features.drift``). It prints and writes a report: ``skew.json`` (one row per feature: measure,
value, warn, block, level) and ``skew.md``.

Exit code 0 when no feature is above its ``block`` level, 3 when one is (the rows are too unlike the training
data to trust the scores), 1 on an error (no lineage, unreadable input), 2 on a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

SKEW_JSON, SKEW_MARKDOWN = "skew.json", "skew.md"
TRAINING_SPLIT, STATISTICS_FILE = "train", "FeatureStats.pb"  # StatisticsGen's layout (TFX 1.x)
SKEW_BLOCKED_EXIT_CODE = 3


class SkewError(RuntimeError):
    """The comparison cannot be made; the message says what is missing."""


def training_statistics(version_dir: str, metadata_path: Optional[str] = None):
    """(the statistics artifact of the newest span the version was trained on, its lineage)."""
    from pipeline import mlmd

    version_dir = os.path.abspath(version_dir)
    metadata_path = metadata_path or os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(version_dir))),
                                                  "metadata.sqlite")
    if not os.path.exists(metadata_path):
        raise SkewError(f"{metadata_path}: no ML Metadata (pass --metadata, the run's metadata.sqlite)")
    store = mlmd.open_store(metadata_path)
    lineage = mlmd.version_lineage(store, version_dir)
    if not lineage or not lineage["training_examples"]:
        raise SkewError(f"{version_dir}: {metadata_path} records no push of this version and its training data")
    newest = max(lineage["training_examples"], key=lambda a: (mlmd.artifact_span(a) or 0, a.id))
    statistics = mlmd.statistics_of(store, newest)
    if statistics is None:
        raise SkewError(f"no StatisticsGen output of the training examples {newest.uri} in {metadata_path}")
    return statistics, lineage, mlmd.artifact_span(newest)


def input_statistics(pattern: str):
    """TFDV statistics of the rows of ``pattern`` (CSV with a header, TFRecord of tf.Example, or Parquet)."""
    import glob

    import tensorflow_data_validation as tfdv

    from features.drift import statistics_options

    files = sorted(glob.glob(pattern))
    if not files:
        raise SkewError(f"--input {pattern}: no file matches this pattern")
    options = statistics_options()
    if all(f.endswith((".csv", ".csv.gz")) for f in files):
        return tfdv.generate_statistics_from_csv(pattern, stats_options=options)
    if all(".tfrecord" in f for f in files):
        return tfdv.generate_statistics_from_tfrecord(pattern, stats_options=options)
    if all(f.endswith(".parquet") for f in files):
        import pandas as pd

        return tfdv.generate_statistics_from_dataframe(pd.concat(pd.read_parquet(f) for f in files),
                                                       stats_options=options)
    raise SkewError(f"--input {pattern}: use .csv, .tfrecord[.gz] or .parquet files, got {files[:3]}")


def compare(training, serving, spec) -> List[Dict[str, Any]]:
    """One row per spec feature: ``{feature, measure, value, warn, block, level}``, largest relative skew
    first (TFDV's skew comparators at the spec's drift levels, the ExampleValidator's helpers)."""
    import tensorflow_data_validation as tfdv

    from pipeline.data_validator import add_drift_comparators, drift_levels_of, measured_levels

    schema = tfdv.infer_schema(training, infer_feature_shape=True)
    for feature in schema.feature:
        feature.ClearField("domain_info")  # new values are the model's business (OOV), not a skew
    levels = drift_levels_of(spec)
    add_drift_comparators(schema, levels, comparator_field="skew_comparator")
    found = tfdv.validate_statistics(training, schema, serving_statistics=serving)
    return measured_levels(found, levels, measurements="skew_measurements")


def render(rows: List[Dict[str, Any]], where: Dict[str, Any]) -> str:
    lines = [f"# Skew: {where['input']} against the training data of {where['model']}", "",
             f"Trained on span(s) {where['trained_on']}; compared with the statistics of span {where['span']} "
             f"(`{where['statistics']}`).", "",
             "| feature | measure | skew | warn | block | level |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['feature']} | {r['measure']} | {r['value']:.4f} | {r['warn']:g} | {r['block']:g} | "
              f"{r['level'] if r['level'] == 'ok' else r['level'].upper()} |" for r in rows]
    return "\n".join(lines) + "\n"


def run_skew(model_dir: str, pattern: str, output: str, metadata: Optional[str] = None) -> Dict[str, Any]:
    """Compare, write ``skew.json`` and ``skew.md`` under ``output``; returns the JSON content."""
    import tensorflow_data_validation as tfdv

    from features.spec import spec_from_dict
    from serving.scoring import read_export_metadata

    meta = read_export_metadata(model_dir)
    if not meta or "spec" not in meta:
        raise SkewError(f"{model_dir}: no export metadata with the model's spec")
    statistics, lineage, span = training_statistics(model_dir, metadata)
    spec = spec_from_dict(meta["spec"], source=f"{model_dir}: spec")
    path = os.path.join(statistics.uri, f"Split-{TRAINING_SPLIT}", STATISTICS_FILE)
    if not os.path.exists(path):
        raise SkewError(f"{path}: the training statistics are gone (artifact {statistics.uri})")
    rows = compare(tfdv.load_stats_binary(path), input_statistics(pattern), spec)
    where = {"model": os.path.abspath(model_dir), "input": pattern, "trained_on": lineage["trained_on"],
             "span": span, "statistics": statistics.uri}
    result = dict(where, features=rows)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, SKEW_JSON), "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(output, SKEW_MARKDOWN), "w") as fh:
        fh.write(render(rows, where))
    return result


def cmd_skew(args) -> int:
    try:
        result = run_skew(args.model, args.input, args.output, args.metadata)
    except SkewError as e:
        print(f"msmt skew: error: {e}", file=sys.stderr)
        return 1
    print(render(result["features"], result), end="")
    print(f"\nskew: wrote {os.path.join(args.output, SKEW_JSON)} and {SKEW_MARKDOWN}")
    blocked = [r["feature"] for r in result["features"] if r["level"] == "block"]
    if blocked:
        print(f"msmt skew: above the block level: {', '.join(blocked)}", file=sys.stderr)
        return SKEW_BLOCKED_EXIT_CODE
    return 0


def add_skew_parser(subparsers):
    import argparse

    p = subparsers.add_parser("skew", help="compare rows to score with the model's training data (TFDV skew)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a pushed version directory, e.g. <output>/serving/msmt/<v>")
    p.add_argument("--input", required=True, help="file pattern of the rows (CSV, TFRecord or Parquet; quote it)")
    p.add_argument("--output", default="skew", help="report directory (./skew)")
    p.add_argument("--metadata", help="the run's metadata.sqlite (default: beside the serving root)")
    p.set_defaults(func=cmd_skew)
    return p
