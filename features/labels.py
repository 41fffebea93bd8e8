"""Head keys and the transformed label features they are trained and evaluated against.

For the click -> action -> conversion funnel (``labels`` in the spec, docs/models.md): ``ctr`` = P(click | imp),
``ctavr`` = P(click & action | imp), ``cvr`` = P(conv | click), ``ctcvr`` = P(click & conv | imp), ``xcvr`` =
P(conv | imp) incl. unclicked.

For any other declared task set (``tasks``, docs/spec.md#tasks) there is one head per task, named after it:
P(task | imp), trained and evaluated against ``label_<task>`` over all impressions (a task ``after`` another
can be 1 only where that one is, so its impression-level label is its own column).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

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


def task_graph(spec: FeatureSpec) -> Optional[Tuple[Tuple[str, Optional[str]], ...]]:
    """``((task, after), ...)`` of a spec of declared tasks; None for the funnel (its heads are composed)."""
    return None if spec.is_funnel else tuple((t.name, t.after) for t in spec.tasks)


def model_label_arguments(spec: FeatureSpec) -> Dict[str, object]:
    """What a zoo model needs to know of the spec's labels (``models.registry.build_model`` keywords)."""
    return {"with_action": has_action(spec), "view_through": has_view_through(spec), "tasks": task_graph(spec)}


def impression_heads(spec: FeatureSpec) -> Tuple[str, ...]:
    """The heads with a label over all impressions (evaluated, gated, calibrated), in their order."""
    return IMPRESSION_HEADS if spec.is_funnel else tuple(t.name for t in spec.tasks)


def head_label_columns(spec: FeatureSpec) -> Dict[str, List[str]]:
    """Impression head -> the raw label columns whose AND is its target, for the heads the spec supports."""
    if not spec.is_funnel:
        return {t.name: [t.label] for t in spec.tasks}
    cols = spec.label_columns
    return {h: [cols[r] for r in roles] for h, roles in HEAD_LABEL_ROLES.items() if all(r in cols for r in roles)}


def ordered_heads(names: Iterable[str]) -> Tuple[str, ...]:
    """``names`` with the known heads first in :data:`HEAD_KEYS` order, then any others sorted."""
    names = set(names)
    return tuple([h for h in HEAD_KEYS if h in names] + sorted(names - set(HEAD_KEYS)))


def head_label_keys(spec: FeatureSpec) -> Dict[str, str]:
    """Head key -> transformed label feature, for the heads the spec's labels support."""
    if not spec.is_funnel:
        return {t.name: label_key(t.name) for t in spec.tasks}
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
