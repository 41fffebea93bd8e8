"""Typed configuration of one pipeline run (``msmt run``), validated at load time."""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any, Dict, List, Optional, Tuple

from features.row_check import DEFAULT_MAX_BAD_FRACTION
from features.spec import FeatureSpec, resolve_spec
from serving.versions import DEFAULT_KEEP_VERSIONS
from pipeline.spans import CALIBRATION_SPLIT, EVAL_SPLIT, EVAL_SPLIT_MODES, SPAN_TOKEN, TRAIN_SPLIT, SpanPlan, \
    plan_spans

DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


class PipelineConfigError(ValueError):
    """A pipeline option is invalid; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything ``create_pipeline`` needs.

    Attributes:
      data: file pattern of the impression logs, e.g. ``/data/logs/span-*/impressions.csv``.
      spec: path of the feature spec YAML (or the name of a spec in ``features/specs``).
      output: run directory; holds ``pipeline_root/``, ``metadata.sqlite``, ``serving/`` and ``logs/``.
      model: zoo model name; model_config: its config dict; train: ``TrainConfig`` dict.
      pipeline_name: TFX pipeline name (also the MLMD context).
      serving_model_name: directory name under ``output/serving``.
      eval_split: ``next-span`` (default): with ``{SPAN}`` in ``data`` and an earlier span present, train on the
        earlier spans and evaluate on the evaluated span (``pipeline.spans``); ``hash``: a hash split of one span.
      train_spans: next-span mode: train on at most this many spans before the evaluated one (None = all).
      eval_fraction: hash-split share of each span's ``eval`` split (the Evaluator's data in hash mode).
      calibration_fraction: hash-split share of each span's ``calibration`` split, held out from training and
        evaluation; the Trainer fits the probabilities' calibration on it.
      span: with ``{SPAN}`` in ``data`` (one directory or file per day, e.g. ``logs/span-{SPAN}/*.csv``): the span
        to evaluate (next-span) or read (hash), an integer or ``latest`` (the default: the highest span present).
      blessing: ``pipeline.eval_config.BlessingConfig`` keys: absolute thresholds and the tolerated AUC drop
        against the last blessed model, per head and scenario.
      tune: add TFX's Tuner before the Trainer: a KerasTuner random search over the model's search space
        (``models.tuning``), ``max_trials`` trials; the Trainer trains with the best point.
      warm_start: initialise the Trainer from the last blessed model's weights (same model and config).
      transform_cache: Transform reuses the analysis of spans an earlier run analysed (TFT's analyzer cache,
        read with a ``latest_analyzer_cache_resolver``); off, it analyses all training spans in one pass
        (``pipeline.deterministic_transform``, measurements in docs/benchmarks.md).
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
      canary: the Pusher labels a newly blessed version ``canary`` beside the ``stable`` one instead of making
        it stable (``msmt serving promote`` / ``rollback`` decide later; ``serving.versions``).
      keep_versions: the Pusher keeps the newest this many versions on disk (never deletes a labelled one).
    """

    data: str
    spec: str
    output: str
    model: str = "shared_bottom"
    model_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    train: Dict[str, Any] = dataclasses.field(default_factory=dict)
    pipeline_name: str = "msmt"
    serving_model_name: str = "msmt"
    eval_split: str = "next-span"
    train_spans: Optional[int] = None
    eval_fraction: float = 0.2
    calibration_fraction: float = 0.1
    span: Optional[str] = None
    blessing: Dict[str, Any] = dataclasses.field(default_factory=dict)
    tune: bool = False
    max_trials: int = 8
    warm_start: bool = False
    transform_cache: bool = False
    bulk_inference: bool = False
    beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS
    enable_cache: bool = True
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    shuffle_examples: bool = True
    max_scenario_shift: float = 0.1
    canary: bool = False
    keep_versions: int = DEFAULT_KEEP_VERSIONS

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
        """``csv``, ``parquet`` or ``tfrecord`` (``features.formats``: from the pattern or the files it matches)."""
        from features.formats import FormatError, detect_format

        try:
            return detect_format(_absolute(self.data).replace(SPAN_TOKEN, "*"), option=None)
        except FormatError as e:
            raise PipelineConfigError(f"--data {e}") from None

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
        if self.eval_split not in EVAL_SPLIT_MODES:
            raise PipelineConfigError(f"--eval-split {self.eval_split}: use one of {', '.join(EVAL_SPLIT_MODES)}")
        if self.max_trials < 1:
            raise PipelineConfigError(f"--max-trials {self.max_trials}: must be >= 1")
        if self.train_spans is not None and self.train_spans < 1:
            raise PipelineConfigError(f"--train-spans {self.train_spans}: must be >= 1")
        if not 0.0 < self.eval_fraction < 1.0:
            raise PipelineConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if not 0.0 < self.calibration_fraction < 1.0 or self.eval_fraction + self.calibration_fraction >= 0.9:
            raise PipelineConfigError(f"calibration_fraction must be in (0, 1) and leave at least 10% of each span "
                                      f"for training with eval_fraction {self.eval_fraction}, "
                                      f"got {self.calibration_fraction}")
        self.model_outputs()  # the model, train and weighting configs, checked before any component runs
        self.blessing_config()
        if not 0.0 < self.max_scenario_shift <= 1.0:
            raise PipelineConfigError(f"max_scenario_shift must be in (0, 1], got {self.max_scenario_shift}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise PipelineConfigError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.keep_versions < 1:
            raise PipelineConfigError(f"--keep-versions {self.keep_versions}: must be >= 1")
        safe_name(self.load_spec().name, f"spec {self.spec}: name")

    def span_plan(self) -> SpanPlan:
        """Which span this run evaluates and which spans it trains on (``pipeline.spans``)."""
        return plan_spans(self.data, self.eval_split, self.span_number, self.train_spans)

    def model_outputs(self) -> Tuple[str, ...]:
        """The heads the configured model serves for this spec; validates the model, train and weighting
        configs (a wrong key or value fails here, naming it, before any component runs)."""
        from features.labels import model_label_arguments
        from models.losses.weighting import WeightingConfig
        from models.config import TaskMismatchError, parse_config
        from models.registry import model_outputs, train_config

        spec = self.load_spec()
        train = train_config(self.model, self.train)
        parse_config(WeightingConfig, train.weighting, source="train config: weighting")
        labels = model_label_arguments(spec)
        try:
            outputs = model_outputs(self.model, self.model_config, labels["with_action"], labels["view_through"],
                                    tasks=labels["tasks"])
        except TaskMismatchError as e:
            raise PipelineConfigError(f"spec {spec.source}: {e}") from None
        missing = [h for h in (train.supervised_heads or ()) if h not in outputs]
        if missing:
            raise PipelineConfigError(f"train config: supervised_heads {missing} are not served by model "
                                      f"{self.model!r} for spec {spec.name!r} (it serves {list(outputs)})")
        return outputs

    def blessing_config(self):
        """The validated ``BlessingConfig`` of the ``blessing`` keys (defaults: ``docs/evaluation.md``)."""
        from pipeline.eval_config import BlessingConfig

        return BlessingConfig.from_dict(self.blessing, source="blessing")

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


HASH_BUCKETS = 100


def split_buckets(eval_fraction: float, calibration_fraction: float) -> List[Tuple[str, int]]:
    """ExampleGen's output splits and their hash buckets out of 100 (e.g. 0.2, 0.1 -> train 70,
    calibration 10, eval 20)."""
    eval_b = max(1, round(HASH_BUCKETS * eval_fraction))
    calibration_b = max(1, round(HASH_BUCKETS * calibration_fraction))
    return [(TRAIN_SPLIT, HASH_BUCKETS - eval_b - calibration_b), (CALIBRATION_SPLIT, calibration_b),
            (EVAL_SPLIT, eval_b)]


