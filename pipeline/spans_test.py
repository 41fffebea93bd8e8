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
    rows = sum(1 for split in ("train", "calibration", "eval") for _ in tf.data.TFRecordDataset(
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


# ----------------------------------------------------------------------------- next-span plan
def _touch(root, *relative):
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def test_available_spans_reads_the_number_at_the_span_token(tmp_path):
    from pipeline.spans import available_spans

    _touch(tmp_path, "logs/span-0/a.csv", "logs/span-2/a.csv", "logs/span-10/b.csv", "logs/span-x/a.csv",
           "logs/span-3/a.txt", "logs/day-4/a.csv")
    assert available_spans(str(tmp_path / "logs" / "span-{SPAN}" / "*.csv")) == [0, 2, 10]
    assert available_spans(str(tmp_path / "logs" / "span-{SPAN}" / "[a]*.csv")) == [0, 2]


def test_plan_trains_on_earlier_spans_and_evaluates_the_latest_or_the_chosen_one(tmp_path):
    from pipeline.spans import plan_spans

    _touch(tmp_path, *(f"logs/span-{s}/impressions.csv" for s in (0, 1, 2, 3)))
    data = str(tmp_path / "logs" / "span-{SPAN}" / "impressions.csv")
    plan = plan_spans(data, "next-span", None, None)
    assert (plan.mode, plan.eval_span, plan.train_spans) == ("next-span", 3, (0, 1, 2))
    assert plan.trainer_train_splits == ["train", "eval"]
    assert plan.evaluator_splits == ["train", "calibration", "eval"]
    assert plan_spans(data, "next-span", 2, None).train_spans == (0, 1)
    assert plan_spans(data, "next-span", None, 2).train_spans == (1, 2)  # --train-spans 2
    first = plan_spans(data, "next-span", 0, None)
    assert first.mode == "hash" and first.eval_span == 0 and "no span before span 0" in first.note
    hashed = plan_spans(data, "hash", None, None)
    assert hashed.mode == "hash" and hashed.evaluator_splits == ["eval"] and hashed.trainer_train_splits == ["train"]
    plain = plan_spans(str(tmp_path / "logs" / "span-*" / "impressions.csv"), "next-span", None, None)
    assert plain.mode == "hash" and "no {SPAN}" in plain.note


class _Artifact:
    def __init__(self, id_, span, version=None):
        self.id, self._span, self._version = id_, span, version

    def get_string_custom_property(self, name):
        return ""

    def get_int_custom_property(self, name):
        return {"span": self._span, "version": self._version or 0}[name]

    def has_custom_property(self, name):
        return name == "span" or (name == "version" and self._version is not None)


def test_newest_per_span_keeps_one_artifact_per_span():
    from pipeline.spans import newest_per_span

    arts = [_Artifact(7, 2), _Artifact(3, 1), _Artifact(9, 2), _Artifact(4, 1, version=2), _Artifact(11, 1, 1)]
    assert [a.id for a in newest_per_span(arts)] == [9, 4]  # span 2: newest id; span 1: highest version
