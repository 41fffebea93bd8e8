"""Model registry: build any zoo model by name from a config dict (``msmt models`` lists it)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Type

from features.spec import describe_tasks
from models.base import MultiTaskRanker
from models.config import ConfigError, TrainConfig, parse_config
from models.losses.weighting import WeightingConfig
from models.aem2tl import AEM2TL
from models.aitm import AITM
from models.ektm import EKTM
from models.esm2 import ESM2
from models.esmm import ESMM
from models.mmoe import MMoE
from models.pepnet import PEPNet
from models.ple import PLE
from models.shared_bottom import SharedBottom
from models.star import STAR

MODELS: Dict[str, Type[MultiTaskRanker]] = {
    "shared_bottom": SharedBottom,
    "mmoe": MMoE,
    "ple": PLE,
    "esmm": ESMM,
    "esm2": ESM2,
    "star": STAR,
    "pepnet": PEPNet,
    "aitm": AITM,
    "aem2tl": AEM2TL,
    "ektm": EKTM,
}


def model_class(name: str) -> Type[MultiTaskRanker]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None


def build_model(name: str, input_dims: Dict, config: Optional[Dict] = None, with_action: bool = False,
                weighting: Optional[Dict] = None, source: str = "model config",
                supervised_heads: Optional[Sequence[str]] = None, view_through: bool = True,
                tasks=None) -> MultiTaskRanker:
    """Validate ``config`` against the model's dataclass and build the model.

    ``supervised_heads`` overrides the model's default set of heads that get a loss; ``tasks`` are the
    spec's declared tasks when they are not the funnel (``features.labels.model_label_arguments``)."""
    cls = model_class(name)
    check_serves(name, tasks)
    cfg = parse_config(cls.config_class, config, source=f"{source} ({name})")
    wcfg = parse_config(WeightingConfig, weighting, source=f"{source} (weighting)")
    return cls(input_dims=input_dims, config=cfg, with_action=with_action, weighting=wcfg,
               supervised_heads=supervised_heads, view_through=view_through, tasks=tasks)


def task_models() -> Tuple[str, ...]:
    """The models that serve any declared task set, not only the click -> conversion funnel."""
    return tuple(name for name, cls in MODELS.items() if cls.serves_declared_tasks)


class UnservedTasksError(ConfigError):
    """A model cannot serve the spec's declared tasks (a fault of the spec and model pair, not of a config file)."""


def check_serves(name: str, tasks) -> None:
    """:class:`UnservedTasksError` unless model ``name`` serves ``tasks`` (None: the funnel, which every model
    serves)."""
    if tasks is not None and not model_class(name).serves_declared_tasks:
        declared = describe_tasks(tasks)
        raise UnservedTasksError(
            f"model {name!r} is built around the edges of the click -> conversion funnel: it needs the tasks "
            f"'click' and 'conversion' (each optionally after: click) and optionally 'raction' (after: click), and "
            f"the spec declares {declared}. Models that serve any declared tasks: {', '.join(task_models())}")


def train_config(name: str, raw: Optional[Dict] = None, source: str = "train config") -> TrainConfig:
    """The :class:`TrainConfig` of model ``name``: the keys of ``raw`` over the model's measured train defaults
    (``MultiTaskRanker.train_defaults``)."""
    cls = model_class(name)
    return parse_config(TrainConfig, dict(cls.train_defaults, **(raw or {})), source=source)


def model_outputs(name: str, config: Optional[Dict], with_action: bool, view_through: bool,
                  source: str = "model config", tasks=None) -> Tuple[str, ...]:
    """The heads model ``name`` with ``config`` serves for data with these labels (validates the config)."""
    cls = model_class(name)
    cfg = parse_config(cls.config_class, config, source=f"{source} ({name})")
    check_serves(name, tasks)
    if tasks is not None:
        return tuple(t for t, _ in tasks)
    return cls.outputs_for(cfg, with_action, view_through)


def describe_models():
    """(name, outputs, reference) rows for ``msmt models``."""
    rows = []
    for name, cls in MODELS.items():
        default = cls.config_class()
        full = cls.outputs_for(default, with_action=True, view_through=False)
        outputs = ", ".join(k for k in full if k != "ctavr")
        if "ctavr" in full:
            outputs += " (+ ctavr with an action label)"
        if "xcvr" not in cls.outputs_for(default, with_action=True, view_through=True):
            outputs += "; no view-through edge: xcvr (= ctcvr) only when conversions require a click"
        if cls.serves_declared_tasks:
            outputs += "; or one head per task of a spec's declared tasks"
        rows.append((name, outputs, cls.reference))
    return rows
