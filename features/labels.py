"""Standard head keys and the transformed label features they are trained and evaluated against.

Heads (docs/models.md): ``ctr`` = P(click | imp), ``ctavr`` = P(click & action | imp),
``cvr`` = P(conv | click), ``ctcvr`` = P(click & conv | imp), ``xcvr`` = P(conv | imp) incl. unclicked.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from features.spec import FeatureSpec

LABEL_PREFIX = "label_"
HEAD_KEYS = ("ctr", "ctavr", "cvr", "ctcvr", "xcvr")
# Heads with a label over all impressions: they are evaluated, gated and calibrated (cvr is conditional on a
# click and is none of these).
IMPRESSION_HEADS = ("ctr", "ctavr", "ctcvr", "xcvr")


def label_key(name: str) -> str:
    """Transformed-feature name of a label target (``click`` -> ``label_click``)."""
    return LABEL_PREFIX + name


# Head -> label target it is supervised with over all impressions (cvr is conditional on click).
HEAD_TARGETS = {"ctr": "click", "ctavr": "ctavr", "cvr": "conversion", "ctcvr": "ctcvr", "xcvr": "conversion"}


# Head -> label roles whose AND is the head's target over all impressions (roles are keys of spec.labels).
HEAD_LABEL_ROLES = {"ctr": ("click",), "ctavr": ("click", "raction"), "ctcvr": ("click", "conversion"),
                    "xcvr": ("conversion",)}


def head_label_columns(spec: FeatureSpec) -> Dict[str, List[str]]:
    """Impression head -> the raw label columns whose AND is its target, for the heads the spec supports."""
    cols = spec.label_columns
    return {h: [cols[r] for r in roles] for h, roles in HEAD_LABEL_ROLES.items() if all(r in cols for r in roles)}


def ordered_heads(names: Iterable[str]) -> Tuple[str, ...]:
    """``names`` with the known heads first in :data:`HEAD_KEYS` order, then any others sorted."""
    names = set(names)
    return tuple([h for h in HEAD_KEYS if h in names] + sorted(names - set(HEAD_KEYS)))


def head_label_keys(spec: FeatureSpec) -> Dict[str, str]:
    """Head key -> transformed label feature, for the heads the spec's labels support."""
    keys = {h: label_key(t) for h, t in HEAD_TARGETS.items()}
    if not has_action(spec):
        keys.pop("ctavr")
    return keys


def has_action(spec: FeatureSpec) -> bool:
    """Whether the data has a related post-click action label (``ctavr`` and the action edges)."""
    return "raction" in spec.label_columns


def has_view_through(spec: FeatureSpec) -> bool:
    """Whether a conversion can happen without a click (its task is not ``after: click``)."""
    return "conversion" in spec.label_columns and spec.task("conversion").after != "click"


def is_label_feature(name: str) -> bool:
    return name.startswith(LABEL_PREFIX)
