"""Standard head keys and the transformed label features they are trained and evaluated against.

Heads (DESIGN.md section 5): ``ctr`` = P(click | imp), ``ctavr`` = P(click & action | imp),
``cvr`` = P(conv | click), ``ctcvr`` = P(click & conv | imp), ``xcvr`` = P(conv | imp) incl. unclicked.
"""

from __future__ import annotations

from typing import Dict

from features.spec import FeatureSpec

LABEL_PREFIX = "label_"
HEAD_KEYS = ("ctr", "ctavr", "cvr", "ctcvr", "xcvr")


def label_key(name: str) -> str:
    """Transformed-feature name of a label target (``click`` -> ``label_click``)."""
    return LABEL_PREFIX + name


# Head -> label target it is supervised with over all impressions (cvr is conditional on click).
HEAD_TARGETS = {"ctr": "click", "ctavr": "ctavr", "cvr": "conversion", "ctcvr": "ctcvr", "xcvr": "conversion"}


def head_label_keys(spec: FeatureSpec) -> Dict[str, str]:
    """Head key -> transformed label feature, for the heads the spec's labels support."""
    keys = {h: label_key(t) for h, t in HEAD_TARGETS.items()}
    if not spec.labels.raction:
        keys.pop("ctavr")
    return keys


def is_label_feature(name: str) -> bool:
    return name.startswith(LABEL_PREFIX)
