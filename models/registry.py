"""Model registry: build any zoo model by name from a config dict (``msmt models`` lists it)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Type

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
    cfg = checked_config(name, config, tasks, source)
    wcfg = parse_config(WeightingConfig, weighting, source=f"{source} (weighting)")
    return cls(input_dims=input_dims, config=cfg, with_action=with_action, weighting=wcfg,
               supervised_heads=supervised_heads, view_through=view_through, tasks=tasks)


def checked_config(name: str, config: Optional[Dict], tasks, source: str = "model config"):
    """Model ``name``'s config dataclass from ``config``, validated on its own and against the data's ``tasks``
    (None: the funnel; a mismatch is a :class:`~models.config.TaskMismatchError`)."""
    cls = model_class(name)
    cfg = parse_config(cls.config_class, config, source=f"{source} ({name})")
    cls.check_config(cfg, tasks)
    return cfg


def train_config(name: str, raw: Optional[Dict] = None, source: str = "train config") -> TrainConfig:
    """The :class:`TrainConfig` of model ``name``: the keys of ``raw`` over the model's measured train defaults
    (``MultiTaskRanker.train_defaults``)."""
    cls = model_class(name)
    return parse_config(TrainConfig, dict(cls.train_defaults, **(raw or {})), source=source)


def model_outputs(name: str, config: Optional[Dict], with_action: bool, view_through: bool,
                  source: str = "model config", tasks=None) -> Tuple[str, ...]:
    """The heads model ``name`` with ``config`` serves for data with these labels (validates the config)."""
    cfg = checked_config(name, config, tasks, source)
    if tasks is not None:
        return tuple(t for t, _ in tasks)
    return model_class(name).outputs_for(cfg, with_action, view_through)


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
        outputs += "; or one head per task of a spec's declared tasks"
        rows.append((name, outputs, cls.reference))
    return rows
