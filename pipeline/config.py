"""Typed configuration of one pipeline run (``msmt run``), validated at load time."""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any, Dict, List, Optional, Tuple

from features.spec import FeatureSpec, resolve_spec

DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
FORMATS = ("csv", "tfrecord", "parquet")
SPAN_TOKEN = "{SPAN}"


class PipelineConfigError(ValueError):
    """A pipeline option is invalid; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything ``create_pipeline`` needs.

    Attributes:
      data: file pattern of the impression logs, e.g. ``/data/logs/span-*/impressions.csv``.
      spec: path of the feature spec YAML (or a built-in name: synthetic, aliccp, aliexpress).
      output: run directory; holds ``pipeline_root/``, ``metadata.sqlite``, ``serving/`` and ``logs/``.
      model: zoo model name; model_config: its config dict; train: ``TrainConfig`` dict.
      pipeline_name: TFX pipeline name (also the MLMD context).
      serving_model_name: directory name under ``output/serving``.
      eval_fraction: hash-split share of the eval split (1/eval_fraction must be an integer ratio).
      span: with ``{SPAN}`` in ``data`` (one directory or file per day, e.g. ``logs/span-{SPAN}/*.csv``): the span
        to read, an integer or ``latest`` (the default: the highest span present).
      min_auc: blessing threshold on the gated heads' overall AUC (shorthand for ``blessing.min_auc``).
      blessing: ``pipeline.eval_config.BlessingConfig`` keys: absolute thresholds and the tolerated AUC drop
        against the last blessed model, per head and scenario.
      warm_start: initialise the Trainer from the last blessed model's weights (same model and config).
      bulk_inference: add a BulkInferrer that scores the eval split with a blessed model.
      beam_args: Beam pipeline args (DirectRunner by default; Flink/Spark/Dataflow options pass through).
      enable_cache: reuse unchanged component executions.
      max_bad_fraction: CSV input: the share of bad rows (malformed, wrong type, NaN, empty id, missing or
        impossible label) the ExampleGen quarantines and skips; more fails the run (0 = any bad row fails).
      shuffle_examples: ExampleGen shuffles each split before writing it (TFX's behaviour). False writes the
        rows in reading order, which keeps ExampleGen's memory flat on the in-process DirectRunner (the
        shuffle holds the whole split in memory there); the Trainer still shuffles within its buffer.
      max_scenario_shift: the ExampleValidator's drift limit on the scenario mix against the last accepted
        span: the largest change of any scenario's share (L-infinity distance); more stops the run.
    """

    data: str
    spec: str
    output: str
    model: str = "shared_bottom"
    model_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    train: Dict[str, Any] = dataclasses.field(default_factory=dict)
    pipeline_name: str = "msmt"
    serving_model_name: str = "msmt"
    eval_fraction: float = 0.2
    span: Optional[str] = None
    min_auc: float = 0.5
    blessing: Dict[str, Any] = dataclasses.field(default_factory=dict)
    warm_start: bool = False
    bulk_inference: bool = False
    beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS
    enable_cache: bool = True
    max_bad_fraction: float = 0.01
    shuffle_examples: bool = True
    max_scenario_shift: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "output", _absolute(self.output))
        object.__setattr__(self, "beam_args", tuple(self.beam_args))

    # ------------------------------------------------------------------ derived paths
    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.output, "serving")

    @property
    def push_dir(self) -> str:
        return os.path.join(self.serving_dir, self.serving_model_name)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.output, "logs")

    def load_spec(self) -> FeatureSpec:
        return resolve_spec(self.spec)

    @property
    def data_format(self) -> str:
        p = self.data.lower()
        if p.endswith(".csv") or p.endswith(".csv*"):
            return "csv"
        if p.endswith(".parquet"):
            return "parquet"
        if ".tfrecord" in p or p.endswith(".gz"):
            return "tfrecord"
        raise PipelineConfigError(f"--data {self.data}: cannot tell the format from the file name; "
                                  f"use a pattern ending in .csv, .parquet or .tfrecord[.gz]")

    def split_data_pattern(self) -> Tuple[str, str]:
        """(input_base, relative pattern) for ExampleGen: the base is the longest glob-free directory."""
        parts = _absolute(self.data).split("/")
        base = []
        for part in parts[:-1]:
            if any(ch in part for ch in "*?[{"):
                break
            base.append(part)
        input_base = "/".join(base) or "/"
        return input_base, "/".join(parts[len(base):])

    @property
    def has_spans(self) -> bool:
        return SPAN_TOKEN in self.data

    @property
    def span_number(self) -> Optional[int]:
        """The requested span, or None for the latest one."""
        if self.span in (None, "", "latest"):
            return None
        return int(self.span)

    def validate(self) -> None:
        from pipeline.paths import check_config_paths, safe_name

        check_config_paths(self)  # plain names, every derived path inside ``output`` (before any I/O)
        self.data_format  # noqa: B018 - raises on an unknown format
        if self.span not in (None, "", "latest"):
            if not str(self.span).isdigit():
                raise PipelineConfigError(f"--span {self.span}: use a non-negative integer or 'latest'")
            if not self.has_spans:
                raise PipelineConfigError(f"--span {self.span} needs a {SPAN_TOKEN} in --data, e.g. "
                                          f"'logs/span-{SPAN_TOKEN}/impressions.csv'")
        pattern = os.path.abspath(self.data).replace(SPAN_TOKEN, "*" if self.span_number is None
                                                     else str(self.span_number))
        if not glob.glob(pattern):
            raise PipelineConfigError(f"--data {self.data}: no file matches this pattern"
                                      + (f" for span {self.span}" if self.span_number is not None else ""))
        self.blessing_config()
        if not 0.0 < self.eval_fraction < 1.0:
            raise PipelineConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if not 0.0 < self.max_scenario_shift <= 1.0:
            raise PipelineConfigError(f"max_scenario_shift must be in (0, 1], got {self.max_scenario_shift}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise PipelineConfigError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        safe_name(self.load_spec().name, f"spec {self.spec}: name")

    def blessing_config(self):
        """The validated ``BlessingConfig``; ``min_auc`` is the default absolute threshold."""
        from pipeline.eval_config import BlessingConfig

        return BlessingConfig.from_dict(dict({"min_auc": self.min_auc}, **self.blessing), source="blessing")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["beam_args"] = list(self.beam_args)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PipelineConfig":
        return cls(**d)


def _absolute(path: str) -> str:
    """An absolute local path; URIs such as ``gs://bucket/dir`` are kept as they are."""
    return path if "://" in path else os.path.abspath(path)


def hash_buckets(eval_fraction: float) -> List[int]:
    """Train/eval hash buckets for ExampleGen's output split (e.g. 0.2 -> [4, 1])."""
    eval_b = 1
    total = max(2, round(1.0 / eval_fraction))
    return [total - eval_b, eval_b]


