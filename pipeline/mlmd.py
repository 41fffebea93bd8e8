"""Reads a local run's ML Metadata (SQLite): executions per component and their output artifacts."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Set

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
DONE_STATES = ("COMPLETE", "CACHED")
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


@dataclasses.dataclass
class ComponentRun:
    component: str
    state: str
    execution_id: int
    outputs: Dict[str, List[metadata_store_pb2.Artifact]]
    inputs: Dict[str, List[metadata_store_pb2.Artifact]] = dataclasses.field(default_factory=dict)


def open_store(sqlite_path: str) -> metadata_store.MetadataStore:
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = sqlite_path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(cfg)


def latest_run(store, pipeline_name: str) -> Dict[str, ComponentRun]:
    """Component id -> its execution in the pipeline's most recent run."""
    runs = [c for c in store.get_contexts_by_type("pipeline_run")]
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if not runs or pipeline_ctx is None:
        return {}
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    run_exec_ids = {e.id for e in store.get_executions_by_context(run.id)}
    out: Dict[str, ComponentRun] = {}
    prefix = pipeline_name + "."
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        component = node.name[len(prefix):]
        execs = [e for e in store.get_executions_by_context(node.id) if e.id in run_exec_ids]
        if not execs:
            continue
        ex = max(execs, key=lambda e: e.id)
        out[component] = ComponentRun(component, STATE_NAMES.get(ex.last_known_state, "UNKNOWN"), ex.id,
                                      _artifacts(store, ex.id, OUTPUT_EVENTS), _artifacts(store, ex.id, INPUT_EVENTS))
    return out


def _artifacts(store, execution_id: int, event_types) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    """The execution's artifacts of the given event types, by input/output key."""
    events = store.get_events_by_execution_ids([execution_id])
    by_key: Dict[str, List[int]] = {}
    for ev in events:
        if ev.type not in event_types:
            continue
        key = ev.path.steps[0].key if ev.path.steps else "output"
        by_key.setdefault(key, []).append(ev.artifact_id)
    out = {}
    for key, ids in by_key.items():
        out[key] = list(store.get_artifacts_by_id(ids))
    return out


def artifact_spans(store, type_name: str, uri_prefix: str) -> Set[int]:
    """Spans of the live artifacts of ``type_name`` stored under ``uri_prefix`` (e.g. one component output)."""
    out: Set[int] = set()
    prefix = uri_prefix.rstrip("/") + "/"
    for a in store.get_artifacts_by_type(type_name):
        if not a.uri.startswith(prefix) or a.state != metadata_store_pb2.Artifact.LIVE:
            continue
        span = artifact_span(a)
        if span is not None:
            out.add(int(span))
    return out


def artifact_span(artifact) -> Optional[int]:
    """The span of an artifact: a property (Transform, StatisticsGen outputs) or a custom property (ExampleGen)."""
    if "span" in artifact.properties:
        return int(artifact.properties["span"].int_value)
    span = custom_property(artifact, "span")
    return None if span is None else int(span)


def custom_property(artifact, name: str) -> Optional[object]:
    if name not in artifact.custom_properties:
        return None
    v = artifact.custom_properties[name]
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None
