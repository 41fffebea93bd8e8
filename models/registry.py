"""Model registry: build any zoo model by name from a config dict (``msmt models`` lists it)."""

from __future__ import annotations

from typing import Dict, Optional, Type

from models.base import MultiTaskRanker
from models.config import ConfigError, parse_config
from models.shared_bottom import SharedBottom

MODELS: Dict[str, Type[MultiTaskRanker]] = {
    "shared_bottom": SharedBottom,
}


def model_class(name: str) -> Type[MultiTaskRanker]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None


def build_model(name: str, input_dims: Dict, config: Optional[Dict] = None, with_action: bool = False,
                loss_weights: Optional[Dict[str, float]] = None, source: str = "model config") -> MultiTaskRanker:
    """Validate ``config`` against the model's dataclass and build the model."""
    cls = model_class(name)
    cfg = parse_config(cls.config_class, config, source=f"{source} ({name})")
    return cls(input_dims=input_dims, config=cfg, with_action=with_action, loss_weights=loss_weights)


def describe_models():
    """(name, outputs, reference) rows for ``msmt models``."""
    rows = []
    for name, cls in sorted(MODELS.items()):
        rows.append((name, "ctr, cvr, ctcvr, xcvr (+ ctavr with an action label)", cls.reference))
    return rows
