"""Span-aware input: ``{SPAN}`` in --data reads one daily span, the latest by default or the one asked for."""

import os

import pytest

from pipeline.config import PipelineConfig, PipelineConfigError
from tests.helpers import run_python

CHILD = r"""
import json, os, sys
import tensorflow as tf
from tfx import v1 as tfx
from pipeline.config import PipelineConfig
from pipeline.pipeline import _example_gen
from pipeline import mlmd

out = {}
for span in sys.argv[3:]:
    root = os.path.join(sys.argv[2], "run-" + span)
    config = PipelineConfig(data=os.path.join(sys.argv[2], "logs", "span-{SPAN}", "impressions.csv"),
                            spec="synthetic", output=root, span=span)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="spans", pipeline_root=config.pipeline_root, components=[_example_gen(config)],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path)))
    runs = mlmd.latest_run(mlmd.open_store(config.metadata_path), "spans")
    artifact = next(iter(runs.values())).outputs["examples"][0]
    rows = sum(1 for split in ("train", "eval") for _ in tf.data.TFRecordDataset(
        tf.io.gfile.glob(os.path.join(artifact.uri, "Split-" + split, "*")), compression_type="GZIP"))
    out[span] = {"span": int(mlmd.custom_property(artifact, "span")), "rows": rows}
json.dump(out, open(sys.argv[1], "w"))
os._exit(0)
"""


SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                      "corrupted_impressions.csv")


def _write_spans(root, rows_per_span):
    with open(SAMPLE) as fh:
        header, good_row = fh.read().splitlines()[:2]  # a full row of the synthetic spec's columns
    user = header.split(",").index("user_id")
    for span, n in enumerate(rows_per_span):
        d = root / "logs" / f"span-{span}"
        d.mkdir(parents=True)
        rows = []
        for i in range(n):
            fields = good_row.split(",")
            fields[user] = f"u{span}_{i}"
            rows.append(",".join(fields))
        lines = [header] + rows
        (d / "impressions.csv").write_text("\n".join(lines) + "\n")


def test_latest_span_by_default_and_a_chosen_span(tmp_path):
    _write_spans(tmp_path, [3, 5, 7])
    res = run_python(CHILD, str(tmp_path / "res.json"), [str(tmp_path), "latest", "1"])
    assert res["latest"] == {"span": 2, "rows": 7}
    assert res["1"] == {"span": 1, "rows": 5}


def test_span_option_is_validated(tmp_path):
    _write_spans(tmp_path, [3])
    pattern = os.path.join(str(tmp_path), "logs", "span-{SPAN}", "impressions.csv")
    with pytest.raises(PipelineConfigError, match="no file matches this pattern for span 4"):
        PipelineConfig(data=pattern, spec="synthetic", output=str(tmp_path / "o"), span="4").validate()
    with pytest.raises(PipelineConfigError, match="non-negative integer or 'latest'"):
        PipelineConfig(data=pattern, spec="synthetic", output=str(tmp_path / "o"), span="yesterday").validate()
    plain = os.path.join(str(tmp_path), "logs", "span-0", "impressions.csv")
    with pytest.raises(PipelineConfigError, match=r"needs a \{SPAN\}"):
        PipelineConfig(data=plain, spec="synthetic", output=str(tmp_path / "o"), span="0").validate()
