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


def accepted_example_spans(store, uri_prefix: str) -> Set[int]:
    """Spans of the examples behind the live statistics stored under ``uri_prefix`` (the ExampleValidator's
    accepted statistics): statistics -> the validator that accepted them -> its input statistics -> the
    StatisticsGen that computed them -> its input examples. (The statistics' own ``span`` is no use: TFX's
    StatisticsGen copies the examples' span *property*, while ExampleGen records the span as a custom
    property, so every statistics artifact says span 0.)"""
    out: Set[int] = set()
    prefix = uri_prefix.rstrip("/") + "/"
    for a in store.get_artifacts_by_type("ExampleStatistics"):
        if not a.uri.startswith(prefix) or a.state != metadata_store_pb2.Artifact.LIVE:
            continue
        validator = _producer(store, a.id)
        for statistics in (_artifacts(store, validator, INPUT_EVENTS).get("statistics", []) if validator else []):
            generator = _producer(store, statistics.id)
            for examples in (_artifacts(store, generator, INPUT_EVENTS).get("examples", []) if generator else []):
                span = artifact_span(examples)
                if span is not None:
                    out.add(span)
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


def _producer(store, artifact_id: int) -> Optional[int]:
    """The execution that output ``artifact_id`` (None for an imported or unknown artifact)."""
    for ev in store.get_events_by_artifact_ids([artifact_id]):
        if ev.type in OUTPUT_EVENTS:
            return ev.execution_id
    return None


def _input_spans(store, execution_id: int, key: str) -> List[int]:
    return sorted({s for a in _artifacts(store, execution_id, INPUT_EVENTS).get(key, [])
                   for s in [artifact_span(a)] if s is not None})


def version_lineage(store, version_dir: str) -> Optional[Dict[str, object]]:
    """What ML Metadata records of the pushed version at ``version_dir``: the spans its model was trained on
    (Pusher -> the Trainer that made the model -> the Transform that made its examples -> their spans), the
    span it was evaluated and pushed on (the Pusher's examples), and the model artifact. None if no Pusher
    recorded that destination."""
    pushed = [a for a in store.get_artifacts_by_type("PushedModel")
              if custom_property(a, "pushed_destination") == version_dir]
    if not pushed:
        return None
    pusher = _producer(store, pushed[-1].id)
    models = _artifacts(store, pusher, INPUT_EVENTS).get("model", []) if pusher else []
    trainer = _producer(store, models[0].id) if models else None
    transformed = _artifacts(store, trainer, INPUT_EVENTS).get("examples", []) if trainer else []
    transform = _producer(store, transformed[0].id) if transformed else None
    training = _artifacts(store, transform, INPUT_EVENTS).get("examples", []) if transform else []
    return {"model": models[0].uri if models else None,
            "trained_on": _input_spans(store, transform, "examples") if transform else [],
            "evaluated_on": (_input_spans(store, pusher, "examples") or [None])[0],
            "training_examples": training}


def statistics_of(store, examples) -> Optional[metadata_store_pb2.Artifact]:
    """The newest ExampleStatistics that a StatisticsGen computed from the ``examples`` artifact."""
    found = []
    for ev in store.get_events_by_artifact_ids([examples.id]):
        if ev.type in INPUT_EVENTS:
            found += [a for a in _artifacts(store, ev.execution_id, OUTPUT_EVENTS).get("statistics", [])
                      if a.state == metadata_store_pb2.Artifact.LIVE]
    return max(found, key=lambda a: a.id) if found else None
