"""Dataset adapters: public dataset downloads -> this project's impression logs (``msmt data prepare NAME``).

========== ============================================================ ==========================================
name       download                                                     scenario
========== ============================================================ ==========================================
aliccp     Ali-CCP raw (Tianchi 408): sample_skeleton + common_features  field 301
aliexpress AliExpress search logs, one train/test pair per country      country (from the path or --country)
alimama    Ali-mama (Tianchi 56): raw_sample + ad_feature + user_profile city level (new_user_class_level, 0 =
           (+ behavior_log for conversion / raction labels)             missing)
kuairand   KuaiRand-Pure / -1K: log_standard_* + user_features_* +       tab (the app page, 0-14)
           video_features_basic_* (log_random_* counted, not written)
========== ============================================================ ==========================================

Every adapter writes ``OUTPUT/{train,test}/impressions.csv``, ``OUTPUT/spec.yaml`` and
``OUTPUT/prepare_summary.json`` (:mod:`features.datasets.common`). :func:`prepare` runs one by name::

    from features.datasets import prepare
    summary = prepare("alimama", input="downloads/alimama", output="data/alimama", test_day="2017-05-13")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

from features.datasets import aliccp, aliexpress, alimama, kuairand
from features.datasets.common import BadLine, PrepareError, PrepareOptions

__all__ = ["ADAPTERS", "Adapter", "BadLine", "PrepareError", "PrepareOptions", "get", "make_options", "names",
           "prepare", "specific_options"]


@dataclasses.dataclass(frozen=True)
class Adapter:
    """One dataset adapter: its name, ``--help`` text, options dataclass and ``prepare(options, echo)``."""

    name: str
    help: str
    options: type
    run: Callable[..., Dict[str, Any]]

    @property
    def specific_options(self) -> Tuple[str, ...]:
        """Option fields of this adapter beyond the common :class:`PrepareOptions` ones."""
        common = {f.name for f in dataclasses.fields(PrepareOptions)}
        return tuple(f.name for f in dataclasses.fields(self.options) if f.name not in common)


ADAPTERS: Dict[str, Adapter] = {a.name: a for a in (
    Adapter(aliccp.NAME, aliccp.HELP, aliccp.AliccpOptions, aliccp.prepare),
    Adapter(aliexpress.NAME, aliexpress.HELP, aliexpress.AliExpressOptions, aliexpress.prepare),
    Adapter(alimama.NAME, alimama.HELP, alimama.AlimamaOptions, alimama.prepare),
    Adapter(kuairand.NAME, kuairand.HELP, kuairand.KuairandOptions, kuairand.prepare),
)}


def names() -> List[str]:
    return sorted(ADAPTERS)


def get(name: str) -> Adapter:
    if name not in ADAPTERS:
        raise PrepareError(f"no dataset adapter {name!r}; available: {', '.join(names())}")
    return ADAPTERS[name]


def specific_options() -> Dict[str, List[str]]:
    """Option field -> the adapters that take it (for the CLI's per-dataset options)."""
    out: Dict[str, List[str]] = {}
    for a in ADAPTERS.values():
        for f in a.specific_options:
            out.setdefault(f, []).append(a.name)
    return out


def make_options(name: str, **kwargs: Any):
    """The options dataclass of adapter ``name``; an option another dataset takes is a clear error."""
    adapter = get(name)
    allowed = {f.name for f in dataclasses.fields(adapter.options)}
    for key in kwargs:
        if key not in allowed:
            owners = specific_options().get(key)
            flag = "--" + key.replace("_", "-")
            where = f"applies to {', '.join(owners)} only" if owners else "is not an option"
            raise PrepareError(f"{flag} {where}, not to {name}")
    return adapter.options(**kwargs)


def prepare(name: str, echo: Optional[Callable[[str], None]] = None, **kwargs: Any) -> Dict[str, Any]:
    """Run adapter ``name`` with options ``kwargs`` (fields of its options dataclass); returns the summary."""
    return get(name).run(make_options(name, **kwargs), echo)
