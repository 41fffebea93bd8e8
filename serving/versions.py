"""Which published versions TF Serving serves, under which label: list, publish, promote, rollback, retain.

The serving root's ``models.config`` (TF Serving's ``ModelServerConfig``) is the one record of what is served.
Each model serves exactly its labelled versions (``model_version_policy { specific { versions: ... } }``):

* ``stable``: the version clients get by default (request ``version_label: "stable"``, or no label with a
  client that asks for the stable label);
* ``canary``: in canary mode, a newly blessed version is served beside ``stable`` under this label, for the
  share of traffic the client routes to it, until ``promote`` makes it stable or ``rollback`` drops it.

Without canary mode a newly blessed version becomes ``stable`` at once. Every change rewrites ``models.config``
atomically (a temporary file, fsync, rename): TF Serving (``--model_config_file_poll_wait_seconds``) and a
crash only ever meet the old or the new file. Versions are deleted only after the config that no longer
names them is in place, by renaming them to a hidden ``.retired-*`` name first (TF Serving ignores non-numeric
directories; a crash mid-delete leaves only such a name, removed by the next change). A labelled version and
the newest version (the newest blessed model: only blessed models are published) are never deleted.

TF Serving refuses a label on a version that is not loaded yet unless it runs with
``--allow_version_labels_for_unavailable_models``; the publish writes the new version's label in the same
config that starts loading it, so the server needs that flag (docs/serving.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Dict, List, Optional

from serving.publish import MODELS_CONFIG, model_root, numeric_versions, pid_alive, write_atomic

STABLE, CANARY = "stable", "canary"
LABELS = (STABLE, CANARY)
DEFAULT_KEEP_VERSIONS = 5
RETIRED_PREFIX = ".retired-"
LABEL_HISTORY = ".label_history.jsonl"  # every label change, one JSON line each (TF Serving ignores dot files)
FAULT_CRASH_ENV = "MSMT_FAULT_CRASH_AT"  # crash tests: exit at a named point of a rewrite (unset: no effect)


class ServingStateError(ValueError):
    """A serving command that cannot be done as asked (the message says why and what is there)."""


@dataclasses.dataclass
class ServedModel:
    """One model's versions on disk and its labels in ``models.config``."""

    name: str
    versions: List[int]  # numeric version directories, ascending
    labels: Dict[str, int]  # label -> version

    @property
    def served(self) -> List[int]:
        return sorted(set(self.labels.values()))

    def describe(self) -> List[str]:
        lines = [f"{self.name}: {len(self.versions)} version(s) on disk, serving "
                 + (", ".join(f"{label}={v}" for label, v in sorted(self.labels.items())) or "nothing")]
        for v in reversed(self.versions):
            tags = [label for label, lv in sorted(self.labels.items()) if lv == v]
            lines.append(f"  {v}  {' '.join(tags) if tags else '-'}")
        return lines


def _crash_point(name: str) -> None:
    if os.environ.get(FAULT_CRASH_ENV) == name:
        os._exit(70)


def _config_path(serving_root: str) -> str:
    return os.path.join(os.path.abspath(serving_root), MODELS_CONFIG)


def read_config(serving_root: str):
    """The ``ModelServerConfig`` of ``<serving_root>/models.config`` (empty when there is none)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    path = _config_path(serving_root)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            try:
                text_format.Parse(fh.read(), cfg)
            except text_format.ParseError as e:
                raise ServingStateError(f"{path}: not a ModelServerConfig: {e}") from None
    return cfg


def _entry(cfg, name: str):
    for m in cfg.model_config_list.config:
        if m.name == name:
            return m
    return None


def read_served(serving_root: str, name: str, unconfigured: Optional[int] = None) -> ServedModel:
    """The versions of ``<serving_root>/<name>`` and their labels. A config without labels (serving the latest
    version) reads as ``stable`` = the newest version other than ``unconfigured`` (one just published)."""
    versions = numeric_versions(model_root(serving_root, name))
    entry = _entry(read_config(serving_root), name)
    labels: Dict[str, int] = {}
    if entry is not None:
        labels = {k: int(v) for k, v in entry.version_labels.items()}
        older = [v for v in versions if v != unconfigured]
        if not labels and entry.model_version_policy.WhichOneof("policy_choice") == "latest" and older:
            labels = {STABLE: older[-1]}
    return ServedModel(name, versions, labels)


def config_text(serving_root: str, models: List[ServedModel], keep=None) -> str:
    """``ModelServerConfig`` text: each model at ``<serving_root>/<name>``, serving exactly its labelled
    versions (a model without labels: its newest version). Entries of other models in ``keep`` (a config)
    are kept as they are."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    names = {m.name for m in models}
    for other in (keep.model_config_list.config if keep is not None else []):
        if other.name not in names:
            cfg.model_config_list.config.add().CopyFrom(other)
    for m in models:
        entry = cfg.model_config_list.config.add(name=m.name, model_platform="tensorflow",
                                                 base_path=model_root(serving_root, m.name))
        if not m.labels:
            entry.model_version_policy.latest.num_versions = 1
            continue
        entry.model_version_policy.specific.versions.extend(m.served)
        for label in LABELS:
            if label in m.labels:
                entry.version_labels[label] = m.labels[label]
    return text_format.MessageToString(cfg)


def write_served(serving_root: str, model: ServedModel) -> str:
    """Rewrite ``models.config`` atomically with ``model``'s labels (other models' entries unchanged)."""
    missing = [v for v in model.served if v not in model.versions]
    if missing:
        raise ServingStateError(f"{model.name}: version(s) {missing} are not on disk under "
                                f"{model_root(serving_root, model.name)}")
    path = _config_path(serving_root)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, config_text(serving_root, [model], keep=read_config(serving_root)),
                 before_rename=lambda: _crash_point("config-written"))
    os.makedirs(model_root(serving_root, model.name), exist_ok=True)
    with open(os.path.join(model_root(serving_root, model.name), LABEL_HISTORY), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": int(time.time()), "labels": model.labels}, sort_keys=True) + "\n")
    return path


def ever_labelled(serving_root: str, name: str, version: int) -> bool:
    """Whether ``version`` has had a label in ``models.config`` (its history, ``.label_history.jsonl``). A
    version published but never labelled is one whose publisher died between the rename and the label."""
    path = os.path.join(model_root(serving_root, name), LABEL_HISTORY)
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as fh:
        return any(version in json.loads(line)["labels"].values() for line in fh if line.strip())


def label_new_version(serving_root: str, name: str, version: int, canary: bool) -> ServedModel:
    """After a publish: ``version`` becomes ``canary`` (canary mode, when a stable version exists) or
    ``stable`` (replacing any canary)."""
    model = read_served(serving_root, name, unconfigured=version)
    if canary and STABLE in model.labels and model.labels[STABLE] != version:
        model.labels[CANARY] = version
    else:
        model.labels = {STABLE: version}
    write_served(serving_root, model)
    return model


def promote(serving_root: str, name: str) -> ServedModel:
    """The canary becomes stable; the former stable version stays on disk for a rollback."""
    model = read_served(serving_root, name)
    if CANARY not in model.labels:
        raise ServingStateError(f"{name}: no canary to promote (serving {model.labels or 'nothing'})")
    model.labels = {STABLE: model.labels[CANARY]}
    write_served(serving_root, model)
    return model


def rollback(serving_root: str, name: str, version: Optional[int] = None) -> ServedModel:
    """With a canary: drop it (stable keeps serving). Without: ``stable`` goes back to ``version``, by default
    the newest version on disk older than the current stable one."""
    model = read_served(serving_root, name)
    if version is None and CANARY in model.labels:
        model.labels.pop(CANARY)
    else:
        current = model.labels.get(STABLE)
        if version is None:
            older = [v for v in model.versions if current is not None and v < current]
            if not older:
                raise ServingStateError(f"{name}: no version older than stable {current} to roll back to "
                                        f"(on disk: {model.versions})")
            version = older[-1]
        if version not in model.versions:
            raise ServingStateError(f"{name}: version {version} is not on disk (on disk: {model.versions})")
        model.labels = {STABLE: int(version)}
    write_served(serving_root, model)
    return model


def retain(serving_root: str, name: str, keep: int) -> List[int]:
    """Delete every version but the newest ``keep``, the labelled ones and the newest; returns the deleted
    versions. The config is written first (it names only labelled versions), then each deleted version is
    renamed to a hidden name and removed."""
    if keep < 1:
        raise ServingStateError(f"retain: keep must be at least 1, got {keep}")
    model = read_served(serving_root, name)
    root = model_root(serving_root, name)
    remove_retired(root)
    kept = set(model.versions[-keep:]) | set(model.served)
    doomed = [v for v in model.versions if v not in kept]
    if not doomed:
        return []
    write_served(serving_root, model)  # the served versions are kept: the config names no doomed version
    for v in doomed:
        hidden = os.path.join(root, f"{RETIRED_PREFIX}{v}-{os.getpid()}")
        os.rename(os.path.join(root, str(v)), hidden)
        _crash_point("version-retired")
        shutil.rmtree(hidden)
    return doomed


def remove_retired(root: str) -> None:
    """Remove ``.retired-*`` directories left by a deleter that is no longer running."""
    if not os.path.isdir(root):
        return
    for d in os.listdir(root):
        if d.startswith(RETIRED_PREFIX):
            pid = d.rsplit("-", 1)[-1]
            if not (pid.isdigit() and pid_alive(int(pid))):
                shutil.rmtree(os.path.join(root, d), ignore_errors=True)


# ------------------------------------------------------------------------------------------ CLI
SERVING_HELP = """Inspect and change what TF Serving serves from a serving root (the Pusher's <output>/serving):
  list             every version on disk and its label (stable, canary)
  promote          the canary becomes stable (the former stable version stays on disk)
  rollback         drop the canary; without a canary, stable goes back to the previous version (or --version)
  retain N         delete all but the newest N versions; a labelled version and the newest one are kept

Each change rewrites models.config atomically; TF Serving picks it up when run with
--model_config_file_poll_wait_seconds (and --allow_version_labels_for_unavailable_models, so that a new
version's label is accepted while it loads). Exit code 0 on success, 1 when the change is not possible
(the message says why and what is there).

Example (a daily run in canary mode, then promotion once the canary's online metrics hold):
  msmt run ... --output /srv/msmt/run --canary
  msmt serving list /srv/msmt/run/serving
  msmt serving promote /srv/msmt/run/serving     # or: msmt serving rollback /srv/msmt/run/serving
"""


def cmd_serving(args) -> int:
    """Handler of ``msmt serving ACTION``; returns the exit code."""
    import sys

    root, name = args.serving_root, args.model_name
    try:
        if args.serving_action == "promote":
            model = promote(root, name)
            print(f"serving promote: {name}: stable is now {model.labels[STABLE]}")
        elif args.serving_action == "rollback":
            model = rollback(root, name, args.version)
            print(f"serving rollback: {name}: serving {model.labels}")
        elif args.serving_action == "retain":
            deleted = retain(root, name, args.keep)
            print(f"serving retain: {name}: deleted {len(deleted)} version(s){': ' if deleted else ''}"
                  + ", ".join(map(str, deleted)))
        for line in read_served(root, name).describe():
            print(line)
    except (ServingStateError, ValueError) as e:
        print(f"msmt serving {args.serving_action}: error: {e}", file=sys.stderr)
        return 1
    return 0


def add_serving_parser(subparsers):
    """Register ``serving list|promote|rollback|retain`` on an ``argparse`` subparsers object."""
    import argparse

    p = subparsers.add_parser("serving", help="TF Serving versions: list, promote, rollback, retain",
                              description=SERVING_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="serving_action", metavar="ACTION")
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])
    for action, text in (("list", "every version on disk and its label"),
                         ("promote", "the canary becomes stable"),
                         ("rollback", "drop the canary, or move stable back to the previous version"),
                         ("retain", "delete all but the newest N versions (never a labelled one)")):
        a = actions.add_parser(action, help=text, description=text)
        a.add_argument("serving_root", metavar="SERVING_ROOT", help="the serving root, e.g. <output>/serving")
        a.add_argument("--model-name", default="msmt", help="the model's directory under SERVING_ROOT (msmt)")
        if action == "rollback":
            a.add_argument("--version", type=int, help="the version to make stable (default: the previous one)")
        if action == "retain":
            a.add_argument("keep", metavar="N", type=int, help="versions to keep")
        a.set_defaults(func=cmd_serving)
    return p
