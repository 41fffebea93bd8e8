"""Feature spec: the YAML contract that names every impression-log column and its role.

A spec file is loaded into :class:`FeatureSpec`, a frozen dataclass validated at load time.
Every error names the file and the key that is wrong (``SpecError``).

YAML layout (see ``features/specs/*.yaml`` for complete examples)::

    name: synthetic
    features:
      - {name: user_id,  role: id,          dtype: string, encoding: hash, hash_buckets: 20000}
      - {name: scenario, role: scenario,    dtype: string, values: [home, search, detail]}
      - {name: age,      role: categorical, dtype: int64}
      - {name: price,    role: numeric,     transform: log1p_zscore, default: 0.0}
      - {name: tags,     role: multivalent, separator: "|"}
      - {name: recent_items, role: sequence, item: item_id, length: 30}
      - {name: user_ctr, role: prior,       dtype: float32}
    priors:   {user: [user_id, age], item: [item_id], scenario: [scenario]}
    labels:   {click: click, raction: add_to_cart, conversion: purchase}   # the funnel; or, any tasks:
    # tasks: [{name: click, label: is_click}, {name: like, label: is_like, after: click}]
    ignore:   [true_p_click]          # columns that are never features (oracle columns, debug)
    request_id: request_id            # optional, groups impressions of one request
    timestamp: ts                     # optional, for time splits
    drift: {numeric: {warn: 0.05, block: 0.2}}   # optional, drift levels per kind / feature (features/drift.py)

Roles (docs/spec.md): ``id``, ``scenario`` (exactly one), ``categorical``, ``numeric``,
``multivalent``, ``sequence`` (the user's recent items, most recent first, separator-joined: encoded with the
``item`` feature's vocabulary, truncated or padded to ``length``, embedded with the item's table and pooled
against the candidate item), ``prior`` (a feature fed only to the personalised gates). A prior feature is
categorical when its dtype is a string or an integer, numeric when it is a float.

Labels are declared as **tasks** (:class:`Task`): a name, its 0/1 label column and optionally ``after``, the
task whose label must be 1 for this one's to be 1 (a like only after a click). The ``labels`` block is the
click -> action -> conversion funnel written the old way, and is read as the tasks ``click``, ``raction``
(``after: click`` when ``requires_click`` names it, as by default) and ``conversion`` (``after: click`` when
``requires_click`` names it; otherwise conversions may be view-through). A spec has one or the other.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from features.drift import DriftConfig, DriftConfigError, drift_config_from_dict

ROLES = ("id", "scenario", "categorical", "numeric", "multivalent", "sequence", "prior")
DTYPES = ("string", "int64", "float32")
ENCODINGS = ("vocab", "hash")
NUMERIC_TRANSFORMS = ("zscore", "log1p_zscore", "none")
POOLINGS = ("mean", "sum")
SEQUENCE_POOLINGS = ("attention", "mean")  # models.blocks.target_attention
MAX_SEQUENCE_LENGTH = 512
# A sequence is encoded with its item feature's vocabulary or hash and embedded with its table.
_SHARED_WITH_ITEM = ("encoding", "hash_buckets", "vocab_top_k", "frequency_threshold", "num_oov_buckets",
                     "embedding_dim")
PRIOR_GROUPS = ("user", "item", "scenario")
LABEL_KEYS = ("click", "raction", "conversion")  # the funnel's task names, in funnel order
LABEL_RULE_KEYS = ("requires_click",)
REQUIRED_LABELS = ("click", "conversion")
TASK_KEYS = ("name", "label", "after")


class SpecError(ValueError):
    """A feature spec is invalid. The message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input column and how it is encoded.

    Attributes:
      name: column name in the impression log.
      role: one of ``ROLES``.
      dtype: raw dtype in the log: ``string``, ``int64`` or ``float32``.
      encoding: for categorical-like features, ``vocab`` (``tft.compute_and_apply_vocabulary``
        with OOV buckets) or ``hash`` (``tf.strings.to_hash_bucket_fast``, for huge id spaces).
      hash_buckets: number of hash buckets when ``encoding == 'hash'``.
      vocab_top_k: keep at most this many vocabulary entries (None = all).
      frequency_threshold: drop vocabulary entries seen fewer times.
      num_oov_buckets: out-of-vocabulary buckets appended after the vocabulary.
      transform: numeric normalisation: ``zscore``, ``log1p_zscore`` or ``none``.
      default: value imputed for a missing numeric (also used for NaN / inf).
      buckets: if > 0, a numeric is additionally bucketized into this many quantile buckets.
      separator: for multivalent and sequence string features, the separator inside one cell.
      pooling: how multivalent embeddings are pooled (``mean`` or ``sum``); for a sequence, ``attention``
        (DIN target attention against the candidate item, the default) or ``mean``.
      length: for a sequence, how many of its most recent items are kept (longer lists are truncated,
        shorter ones padded).
      item: for a sequence, the candidate item feature whose vocabulary and embedding table it shares.
      embedding_dim: embedding width (None = the model's default).
      values: for the scenario feature, the known scenario values (index order).
    """

    name: str
    role: str
    dtype: str = "string"
    encoding: str = "vocab"
    hash_buckets: int = 0
    vocab_top_k: Optional[int] = None
    frequency_threshold: int = 1
    num_oov_buckets: int = 1
    transform: str = "zscore"
    default: float = 0.0
    buckets: int = 0
    separator: str = "|"
    pooling: str = "mean"
    embedding_dim: Optional[int] = None
    values: Tuple[str, ...] = ()
    length: int = 0
    item: Optional[str] = None

    @property
    def is_numeric(self) -> bool:
        """True when the feature is a dense float (numeric role, or a float prior)."""
        return self.role == "numeric" or (self.role == "prior" and self.dtype == "float32")

    @property
    def is_categorical(self) -> bool:
        """True when the feature is looked up in an embedding table (single-valued)."""
        return self.role in ("id", "categorical") or (self.role == "prior" and self.dtype != "float32")

    @property
    def is_multivalent(self) -> bool:
        return self.role == "multivalent"

    @property
    def is_sequence(self) -> bool:
        return self.role == "sequence"

    @property
    def is_list(self) -> bool:
        """True when a cell holds several values joined by ``separator`` (multivalent and sequence)."""
        return self.role in ("multivalent", "sequence")

    @property
    def is_scenario(self) -> bool:
        return self.role == "scenario"


@dataclasses.dataclass(frozen=True)
class Task:
    """One binary task: its ``name`` (heads, label features and metrics are named after it), its 0/1 ``label``
    column and ``after``, the task that must be positive for this one to be (the checked ExampleGen
    quarantines a row that breaks it), or None."""

    name: str
    label: str
    after: Optional[str] = None

    def to_dict(self) -> Dict[str, str]:
        return {"name": self.name, "label": self.label, **({"after": self.after} if self.after else {})}


@dataclasses.dataclass(frozen=True)
class Labels:
    """Label columns. ``raction`` (related post-click action) is optional.

    ``requires_click`` names the label keys (``raction``, ``conversion``) that cannot be 1 without a click:
    a row that breaks this is impossible and quarantined by the checked ExampleGen. The default is
    ``(raction,)`` when there is a related action (it is post-click by definition); conversions may be
    view-through (unclicked), so ``conversion`` is listed only when the log says so.
    """

    click: str
    conversion: str
    raction: Optional[str] = None
    requires_click: Tuple[str, ...] = ()

    def columns(self) -> Dict[str, str]:
        """Map standard label key -> column name, for the labels present."""
        out = {"click": self.click, "conversion": self.conversion}
        if self.raction:
            out["raction"] = self.raction
        return out

    def tasks(self) -> Tuple[Task, ...]:
        """The funnel as declared tasks (click, then raction and conversion, each after click if it requires
        one)."""
        return tuple(Task(key, col, "click" if key in self.requires_click else None)
                     for key, col in sorted(self.columns().items(), key=lambda kv: LABEL_KEYS.index(kv[0])))


def describe_tasks(tasks) -> str:
    """``click, like (after click)``: ``(name, after)`` pairs of declared tasks, for messages and summaries."""
    return ", ".join(name + (f" (after {after})" if after else "") for name, after in tasks)


def funnel_labels(tasks: Tuple[Task, ...]) -> Optional[Labels]:
    """The tasks as the click -> action -> conversion funnel, or None when they are another task set.

    A funnel has the tasks ``click`` and ``conversion`` and possibly ``raction``, nothing else; ``click``
    depends on nothing, the others on nothing or on ``click``."""
    by_name = {t.name: t for t in tasks}
    if not set(REQUIRED_LABELS) <= set(by_name) <= set(LABEL_KEYS) or by_name["click"].after:
        return None
    if any(t.after not in (None, "click") for t in tasks):
        return None
    raction = by_name.get("raction")
    return Labels(click=by_name["click"].label, conversion=by_name["conversion"].label,
                  raction=raction.label if raction else None,
                  requires_click=tuple(t.name for t in tasks if t.after == "click"))


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A validated feature spec. Build it with :func:`load_spec` or :func:`spec_from_dict`."""

    name: str
    features: Tuple[Feature, ...]
    tasks: Tuple[Task, ...]
    priors: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    ignore: Tuple[str, ...] = ()
    request_id: Optional[str] = None
    timestamp: Optional[str] = None
    drift: DriftConfig = DriftConfig()
    source: str = "<dict>"

    # ------------------------------------------------------------------ lookups
    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.source}: no feature named {name!r}")

    @property
    def scenario(self) -> Feature:
        return next(f for f in self.features if f.role == "scenario")

    @property
    def num_scenarios(self) -> int:
        """Known scenarios; index ``num_scenarios`` is the unknown-scenario slot."""
        return len(self.scenario.values)

    def by_role(self, role: str) -> List[Feature]:
        return [f for f in self.features if f.role == role]

    @property
    def labels(self) -> Optional[Labels]:
        """The tasks as the click -> action -> conversion funnel, or None for any other task set."""
        return funnel_labels(self.tasks)

    @property
    def is_funnel(self) -> bool:
        return self.labels is not None

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"{self.source}: no task named {name!r}")

    @property
    def label_columns(self) -> Dict[str, str]:
        """Task name -> its label column (for the funnel: click, raction, conversion)."""
        return {t.name: t.label for t in self.tasks}

    def describe_tasks(self) -> str:
        """``click, like (after click)``: the declared tasks, for messages."""
        return describe_tasks((t.name, t.after) for t in self.tasks)

    @property
    def raw_columns(self) -> List[str]:
        """Every column the pipeline reads, in spec order (features, labels, extras)."""
        cols = [f.name for f in self.features] + list(self.label_columns.values())
        for extra in (self.request_id, self.timestamp):
            if extra and extra not in cols:
                cols.append(extra)
        return cols

    def to_dict(self) -> Dict[str, Any]:
        """A plain, JSON/YAML-serialisable dict that :func:`spec_from_dict` reads back."""
        feats = []
        defaults = Feature(name="", role="id")
        for f in self.features:
            d = {"name": f.name, "role": f.role}
            for field in dataclasses.fields(Feature):
                if field.name in ("name", "role"):
                    continue
                v = getattr(f, field.name)
                if v != getattr(defaults, field.name):
                    d[field.name] = list(v) if isinstance(v, tuple) else v
            feats.append(d)
        out: Dict[str, Any] = {
            "name": self.name,
            "features": feats,
            **({"labels": dict(self.labels.columns(), requires_click=list(self.labels.requires_click))}
               if self.is_funnel else {"tasks": [t.to_dict() for t in self.tasks]}),
            "priors": {k: list(v) for k, v in self.priors.items()},
            "ignore": list(self.ignore),
        }
        if self.request_id:
            out["request_id"] = self.request_id
        if self.timestamp:
            out["timestamp"] = self.timestamp
        if self.drift != DriftConfig():
            out["drift"] = self.drift.to_dict()
        return out


# ---------------------------------------------------------------------- loading
def _err(source: str, key: str, msg: str) -> SpecError:
    return SpecError(f"{source}: {key}: {msg}")


def _parse_feature(source: str, idx: int, raw: Any) -> Feature:
    key = f"features[{idx}]"
    if not isinstance(raw, dict):
        raise _err(source, key, f"must be a mapping with at least 'name' and 'role', got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _err(source, f"{key}.name", "is required and must be a non-empty string")
    key = f"features[{idx}] ({name})"
    known = {f.name for f in dataclasses.fields(Feature)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _err(source, f"{key}.{unknown[0]}", f"unknown key; allowed keys: {', '.join(sorted(known))}")
    role = raw.get("role")
    if role not in ROLES:
        raise _err(source, f"{key}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    default_dtype = "float32" if role == "numeric" else "string"
    dtype = raw.get("dtype", default_dtype)
    if dtype not in DTYPES:
        raise _err(source, f"{key}.dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if role == "numeric" and dtype == "string":
        raise _err(source, f"{key}.dtype", "a numeric feature must be int64 or float32")
    if role in ("multivalent", "sequence") and dtype != "string":
        raise _err(source, f"{key}.dtype", f"a {role} feature is a separator-joined string")
    if role == "sequence":
        shared = [k for k in _SHARED_WITH_ITEM if k in raw]
        if shared:
            raise _err(source, f"{key}.{shared[0]}", "a sequence is encoded and embedded as its item feature; "
                       "set this on the item feature")
    elif "length" in raw or "item" in raw:
        raise _err(source, f"{key}.{'length' if 'length' in raw else 'item'}", "only a sequence feature has it")
    encoding = raw.get("encoding", "hash" if raw.get("hash_buckets") else "vocab")
    if encoding not in ENCODINGS:
        raise _err(source, f"{key}.encoding", f"must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    kwargs: Dict[str, Any] = dict(name=name, role=role, dtype=dtype, encoding=encoding)
    for int_key, minimum in (("hash_buckets", 0), ("frequency_threshold", 1), ("num_oov_buckets", 0),
                             ("buckets", 0), ("vocab_top_k", 1), ("embedding_dim", 1)):
        if int_key in raw and raw[int_key] is not None:
            v = raw[int_key]
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise _err(source, f"{key}.{int_key}", f"must be an integer >= {minimum}, got {v!r}")
            kwargs[int_key] = v
    if encoding == "hash" and kwargs.get("hash_buckets", 0) < 1:
        raise _err(source, f"{key}.hash_buckets", "must be >= 1 when encoding is 'hash'")
    if encoding == "vocab" and kwargs.get("num_oov_buckets", 1) < 1:
        raise _err(source, f"{key}.num_oov_buckets", "must be >= 1 so unseen values have a slot")
    if "transform" in raw:
        if raw["transform"] not in NUMERIC_TRANSFORMS:
            raise _err(source, f"{key}.transform",
                       f"must be one of {', '.join(NUMERIC_TRANSFORMS)}, got {raw['transform']!r}")
        kwargs["transform"] = raw["transform"]
    if "default" in raw:
        d = raw["default"]
        if not isinstance(d, (int, float)) or isinstance(d, bool):
            raise _err(source, f"{key}.default", f"must be a number, got {d!r}")
        kwargs["default"] = float(d)
    if "separator" in raw:
        sep = raw["separator"]
        if not isinstance(sep, str) or len(sep) != 1:
            raise _err(source, f"{key}.separator", f"must be a single character, got {sep!r}")
        kwargs["separator"] = sep
    poolings = SEQUENCE_POOLINGS if role == "sequence" else POOLINGS
    if "pooling" in raw:
        if raw["pooling"] not in poolings:
            raise _err(source, f"{key}.pooling", f"must be one of {', '.join(poolings)}, got {raw['pooling']!r}")
        kwargs["pooling"] = raw["pooling"]
    elif role == "sequence":
        kwargs["pooling"] = SEQUENCE_POOLINGS[0]
    if role == "sequence":
        length = raw.get("length")
        if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_SEQUENCE_LENGTH:
            raise _err(source, f"{key}.length", f"is required: the number of recent items kept, an integer in "
                       f"[1, {MAX_SEQUENCE_LENGTH}], got {length!r}")
        if not isinstance(raw.get("item"), str) or not raw.get("item"):
            raise _err(source, f"{key}.item", "is required: the candidate item feature whose vocabulary and "
                       "embedding table the sequence shares")
        kwargs.update(length=length, item=raw["item"])
    if "values" in raw:
        if role != "scenario":
            raise _err(source, f"{key}.values", "only the scenario feature lists values")
        vals = raw["values"]
        if not isinstance(vals, list) or not vals:
            raise _err(source, f"{key}.values", "must be a non-empty list of the known scenario values")
        svals = tuple(str(v) for v in vals)
        if len(set(svals)) != len(svals):
            raise _err(source, f"{key}.values", f"has duplicates: {list(svals)}")
        kwargs["values"] = svals
    elif role == "scenario":
        raise _err(source, f"{key}.values", "the scenario feature must list its known values (index order)")
    return Feature(**kwargs)


TOP_LEVEL_KEYS = ("name", "description", "features", "labels", "tasks", "priors", "ignore", "request_id", "timestamp",
                  "drift")


def _parse_labels(source: str, labels_raw: Any) -> Labels:
    if not isinstance(labels_raw, dict):
        raise _err(source, "labels", "must be a mapping with 'click', 'conversion' and optional 'raction'")
    for k in labels_raw:
        if k not in LABEL_KEYS + LABEL_RULE_KEYS:
            raise _err(source, f"labels.{k}",
                       f"unknown label key; allowed: {', '.join(LABEL_KEYS + LABEL_RULE_KEYS)}")
    for k in REQUIRED_LABELS:
        if not isinstance(labels_raw.get(k), str) or not labels_raw.get(k):
            raise _err(source, f"labels.{k}", "is required and must name a column")
    if labels_raw.get("raction") is not None and not isinstance(labels_raw["raction"], str):
        raise _err(source, "labels.raction", "must name a column")
    raction = labels_raw.get("raction")
    requires_click = labels_raw.get("requires_click", ["raction"] if raction else [])
    if not isinstance(requires_click, list) or any(k not in ("raction", "conversion") for k in requires_click):
        raise _err(source, "labels.requires_click", "must be a list of label keys among raction, conversion")
    if "raction" in requires_click and not raction:
        raise _err(source, "labels.requires_click", "names raction, but the spec has no raction label")
    labels = Labels(click=labels_raw["click"], conversion=labels_raw["conversion"], raction=raction,
                    requires_click=tuple(requires_click))
    columns = list(labels.columns().values())
    if len(set(columns)) != len(columns):
        raise _err(source, "labels", f"each label needs its own column, got {labels.columns()}")
    return labels


def _parse_tasks(source: str, tasks_raw: Any) -> Tuple[Task, ...]:
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise _err(source, "tasks", "must be a non-empty list of {name, label, after} mappings")
    tasks = []
    for i, t in enumerate(tasks_raw):
        key = f"tasks[{i}]"
        if not isinstance(t, dict):
            raise _err(source, key, "must be a mapping with 'name', 'label' and optional 'after'")
        unknown = sorted(set(t) - set(TASK_KEYS))
        if unknown:
            raise _err(source, f"{key}.{unknown[0]}", f"unknown task key; allowed: {', '.join(TASK_KEYS)}")
        name = t.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise _err(source, f"{key}.name", f"must be an identifier (letters, digits, _), got {name!r}")
        key = f"tasks[{i}] ({name})"
        if not isinstance(t.get("label"), str) or not t["label"]:
            raise _err(source, f"{key}.label", "is required and must name the task's 0/1 label column")
        if t.get("after") is not None and not isinstance(t["after"], str):
            raise _err(source, f"{key}.after", "must name another task")
        tasks.append(Task(name, t["label"], t.get("after")))
    names = [t.name for t in tasks]
    labels = [t.label for t in tasks]
    for i, t in enumerate(tasks):
        key = f"tasks[{i}] ({t.name})"
        if names.count(t.name) > 1:
            raise _err(source, f"{key}.name", "is declared twice")
        if labels.count(t.label) > 1:
            raise _err(source, f"{key}.label", f"column {t.label!r} is the label of another task too")
        if t.after is not None and (t.after not in names or t.after == t.name):
            raise _err(source, f"{key}.after", f"must name another declared task ({', '.join(names)}), "
                                               f"got {t.after!r}")
    by_name = {t.name: t for t in tasks}
    for i, t in enumerate(tasks):
        seen, node = [t.name], t
        while node.after is not None:
            node = by_name[node.after]
            if node.name in seen:
                raise _err(source, f"tasks[{i}] ({t.name}).after",
                           f"the 'after' chain loops: {' -> '.join(seen + [node.name])}")
            seen.append(node.name)
    return tuple(tasks)


def spec_from_dict(raw: Any, source: str = "<dict>") -> FeatureSpec:
    """Validate a parsed YAML document and build a :class:`FeatureSpec`.

    Raises:
      SpecError: naming ``source`` and the offending key.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the spec must be a YAML mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise _err(source, unknown[0], f"unknown top-level key; allowed: {', '.join(TOP_LEVEL_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _err(source, "name", "is required and must be a non-empty string")
    feats_raw = raw.get("features")
    if not isinstance(feats_raw, list) or not feats_raw:
        raise _err(source, "features", "is required and must be a non-empty list")
    features = tuple(_parse_feature(source, i, f) for i, f in enumerate(feats_raw))
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _err(source, "features", f"duplicate feature names: {dupes}")
    scen = [f for f in features if f.role == "scenario"]
    if len(scen) != 1:
        raise _err(source, "features", f"exactly one feature must have role 'scenario', found {len(scen)}")
    by_name = {f.name: f for f in features}
    for i, f in enumerate(features):
        item = by_name.get(f.item) if f.is_sequence else None
        if f.is_sequence and (item is None or item.role not in ("id", "categorical")):
            raise _err(source, f"features[{i}] ({f.name}).item",
                       f"must name an id or categorical feature (the candidate item), got {f.item!r}")

    if ("labels" in raw) == ("tasks" in raw):
        raise _err(source, "tasks", "declare the labels either as 'tasks' (any binary tasks) or as 'labels' (the "
                                    "click -> conversion funnel), exactly one of them")
    tasks = _parse_tasks(source, raw["tasks"]) if "tasks" in raw else _parse_labels(source, raw["labels"]).tasks()
    for t in tasks:
        if t.label in names:
            where = f"tasks ({t.name}).label" if "tasks" in raw else f"labels.{t.name}"
            raise _err(source, where, f"column {t.label!r} is also declared as a feature")

    priors_raw = raw.get("priors") or {}
    if not isinstance(priors_raw, dict):
        raise _err(source, "priors", "must be a mapping of user/item/scenario to feature-name lists")
    priors: Dict[str, Tuple[str, ...]] = {}
    for group, members in priors_raw.items():
        if group not in PRIOR_GROUPS:
            raise _err(source, f"priors.{group}", f"unknown prior group; allowed: {', '.join(PRIOR_GROUPS)}")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise _err(source, f"priors.{group}", "must be a list of feature names")
        for m in members:
            if m not in names:
                raise _err(source, f"priors.{group}", f"names {m!r}, which is not a feature")
        priors[group] = tuple(members)
    for f in features:
        if f.role == "prior" and not any(f.name in v for v in priors.values()):
            raise _err(source, f"features ({f.name})", "has role 'prior' but is in no group of 'priors'")

    ignore = raw.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise _err(source, "ignore", "must be a list of column names")
    clash = sorted(set(ignore) & (set(names) | {t.label for t in tasks}))
    if clash:
        raise _err(source, "ignore", f"columns {clash} are also features or labels")
    for key in ("request_id", "timestamp"):
        v = raw.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            raise _err(source, key, "must name a column")
    try:
        drift = drift_config_from_dict(raw.get("drift"), {f.name: f.dtype for f in features})
    except DriftConfigError as e:
        raise SpecError(f"{source}: {e}") from None
    return FeatureSpec(name=name, features=features, tasks=tasks, priors=priors, ignore=tuple(ignore),
                       request_id=raw.get("request_id"), timestamp=raw.get("timestamp"), drift=drift,
                       source=source)


def load_spec(path: str) -> FeatureSpec:
    """Load and validate a spec YAML file. Errors name ``path`` and the key."""
    if not os.path.exists(path):
        raise SpecError(f"{path}: no such spec file")
    try:
        with open(path, "r", encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from e
    return spec_from_dict(raw, source=path)


SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs")


def builtin_spec_names() -> List[str]:
    """Names of the specs shipped in ``features/specs``."""
    return sorted(p[:-5] for p in os.listdir(SPEC_DIR) if p.endswith(".yaml"))


def builtin_spec_path(name: str) -> str:
    """Path of a spec shipped in ``features/specs`` (``synthetic``, ``aliccp``, ``aliexpress``)."""
    path = os.path.join(SPEC_DIR, f"{name}.yaml")
    if not os.path.exists(path):
        raise SpecError(f"no built-in spec {name!r}; available: {', '.join(builtin_spec_names())}")
    return path


def resolve_spec(name_or_path: str) -> FeatureSpec:
    """Load a spec by file path, or by built-in name."""
    if os.path.exists(name_or_path) or name_or_path.endswith((".yaml", ".yml")):
        return load_spec(name_or_path)
    return load_spec(builtin_spec_path(name_or_path))

