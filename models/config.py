"""Typed, validated configuration for models and training runs.

Every model has a dataclass config (subclass of :class:`ModelConfig`); :func:`parse_config` builds one
from a plain dict (e.g. a YAML ``--model-config`` file) and rejects unknown keys and wrong types with a
message naming the source and the key.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, Optional, Tuple, Type, TypeVar

import yaml

T = TypeVar("T")


TRAIN_SUMMARY_FILE = "train_summary.json"  # what the Trainer writes into its model_run (models.trainer.run_fn)


class ConfigError(ValueError):
    """A model or training config is invalid; the message names the source and the key."""


class TaskMismatchError(ConfigError):
    """A model config names tasks the spec does not declare (a fault of the spec and config pair, so the
    pipeline names the spec beside it)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Settings shared by every model."""

    embedding_dim: int = 16
    tower_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    l2: float = 0.0

    @classmethod
    def search_space(cls) -> Dict[str, Tuple]:
        """Field -> the values the tuner tries (``models.tuning``); a model's config extends it."""
        return {"embedding_dim": (8, 16, 32), "l2": (0.0, 1e-6), "dropout": (0.0, 0.1)}

    def validate(self, source: str) -> None:
        if self.embedding_dim < 1:
            raise ConfigError(f"{source}: embedding_dim must be >= 1, got {self.embedding_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{source}: dropout must be in [0, 1), got {self.dropout}")
        for name, value in dataclasses.asdict(self).items():
            if name.endswith("_units") and (not value or any(u < 1 for u in value)):
                raise ConfigError(f"{source}: {name} must be a non-empty list of positive ints, got {value}")


# Shrinkage of each scenario's calibration towards the pooled one, in positives (measured: docs/calibration.md).
DEFAULT_CALIBRATION_PRIOR_POSITIVES = 100.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the Trainer fits a model.

    Attributes:
      batch_size: global batch size (split across replicas under a distribution strategy).
      epochs: passes over the training split (ignored when the TFX TrainArgs give num_steps).
      learning_rate: Adam learning rate.
      weighting: loss-weighting strategy, ``models.losses.weighting.WeightingConfig`` keys
        (``strategy``: fixed | uncertainty | gradnorm | dwa, ``weights``, ``alpha``, ...).
      seed: seeds TF, NumPy and Python for reproducible runs.
      distribution: ``auto`` (MirroredStrategy when >1 GPU, else the default device), ``mirrored``,
        ``multi_worker`` (from TF_CONFIG) or ``default``.
      mixed_precision: train with the ``mixed_float16`` policy (outputs stay float32).
      eval_steps: batches of the eval split used for validation (None = the whole split).
      supervised_heads: heads that get a loss, e.g. ``[ctr, ctavr, xcvr]`` for AEM2TL's paper losses (None = the
        model's default set: every served head among ctr, ctavr, ctcvr, xcvr; a head the model lacks is an error).
      base_rate_init: before training, start every edge logit at its base rate on the training labels
        (``models.blocks.edge_prior``); skipped when the model was warm-started.
      calibrate: after training, fit the per-scenario Platt scaling of the edge logits on the eval split (held
        out from training and from the Evaluator) so that served probabilities are calibrated.
      calibration_prior_positives: how strongly each scenario's calibration is shrunk towards the one pooled over
        scenarios, in positives (:meth:`models.base.MultiTaskRanker.calibrate`: a scenario with P positives on
        an edge keeps about P / (P + this) of its own correction; 0 fits every scenario on its own).
    """

    batch_size: int = 1024
    epochs: int = 1
    learning_rate: float = 0.002
    weighting: Dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 42
    distribution: str = "auto"
    mixed_precision: bool = False
    eval_steps: Optional[int] = None
    supervised_heads: Optional[Tuple[str, ...]] = None
    base_rate_init: bool = True
    calibrate: bool = True
    calibration_prior_positives: float = DEFAULT_CALIBRATION_PRIOR_POSITIVES

    @classmethod
    def search_space(cls) -> Dict[str, Tuple]:
        """Field -> the values the tuner tries (``weighting``: the strategy name)."""
        return {"learning_rate": (0.001, 0.002, 0.004), "epochs": (1, 2), "weighting": ("fixed", "gradnorm")}

    def validate(self, source: str) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"{source}: batch_size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"{source}: epochs must be >= 1, got {self.epochs}")
        if self.learning_rate <= 0:
            raise ConfigError(f"{source}: learning_rate must be > 0, got {self.learning_rate}")
        if self.calibration_prior_positives < 0:
            raise ConfigError(f"{source}: calibration_prior_positives must be >= 0, "
                              f"got {self.calibration_prior_positives}")
        if self.distribution not in ("auto", "mirrored", "multi_worker", "default"):
            raise ConfigError(f"{source}: distribution must be auto, mirrored, multi_worker or default, "
                              f"got {self.distribution!r}")


def _coerce(source: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return tuple(_coerce(source, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return {str(k): _coerce(source, f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


def parse_config(cls: Type[T], raw: Optional[Dict[str, Any]], source: str = "<config>") -> T:
    """Build and validate dataclass ``cls`` from ``raw``; unknown keys and bad types raise ConfigError."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(fields))}")
    obj = cls(**{k: _coerce(source, k, v, hints[k]) for k, v in raw.items()})
    obj.validate(source)
    return obj


def load_yaml(path: str) -> Dict[str, Any]:
    """Read a YAML config file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a YAML mapping")
    return data


def to_dict(cfg) -> Dict[str, Any]:
    """A dataclass config as a JSON/YAML-friendly dict (tuples become lists)."""
    out = {}
    for k, v in dataclasses.asdict(cfg).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
