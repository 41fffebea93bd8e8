"""ExampleValidator that remembers the last accepted data and stops the run on anomalies.

TFX's ExampleValidator checks a span against the schema SchemaGen just inferred from that same span, so a
column that changed type, a label column that disappeared or a shifted scenario mix pass unnoticed, and its
anomalies stop nothing. This component (node id ``ExampleValidator``) instead validates the span's
statistics (``tfdv.validate_statistics``) against

* the schema of the **last accepted** span, inferred from its statistics (found by the
  ``latest_accepted_statistics_resolver``; on the first run, this span's own SchemaGen schema): a changed
  type, a missing column, a new string value of a closed-vocabulary feature (the scenario) are anomalies.
  Features whose new values the model handles by design (``open_vocabulary``: ids, categorical and
  multivalent features, with OOV or hash buckets) and ignored columns keep no value domain: new users and
  items arrive every day;
* a drift comparator on every feature of the spec (``features.drift``): the L-infinity distance of a string
  feature's value shares, ``max_v |p_now(v) - p_before(v)|``, or the Jensen-Shannon divergence of a numeric
  feature's histograms. Above the feature's ``warn`` level the shift is a warning (logged, in ``drift.json``,
  the run summary and the report); above its ``block`` level it is an anomaly. The scenario blocks at
  ``max_scenario_shift`` unless the spec says otherwise.

It writes the anomalies that stop the run (``Split-<split>/SchemaDiff.pb``, the stock format, readable with
``tfdv.load_anomalies_binary``), every drift measurement (``drift.json``: feature, measure, value, warn,
block, level) and, when nothing stops the run, passes the statistics on as the new accepted baseline. When
there are anomalies it raises :class:`DataValidationError` (message starting with
``ERROR_PREFIX``, one line per feature). Transform runs after this node (``add_upstream_node``), so the
Transform, Trainer and Pusher of that run never execute and nothing is pushed.
"""


import json
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional

from tfx import v1 as tfx

from features import drift
from pipeline.resolvers import latest_output_resolver

ERROR_PREFIX = "ExampleValidator found anomalies:"
DRIFT_WARNING_PREFIX = "ExampleValidator drift warning:"
VALIDATED_SPLIT = "train"
ANOMALIES_FILE = "SchemaDiff.pb"
RESOLVER_ID = "latest_accepted_statistics_resolver"
ACCEPTED_KEY = "accepted_statistics"


class DataValidationError(RuntimeError):
    """The span's statistics have anomalies against the last accepted span; the message lists them."""


def _split_names(artifact):
    return json.loads(artifact.split_names) if artifact.split_names else []


def _load_stats(artifact, split):
    from tfx.components.statistics_gen import stats_artifact_utils

    return stats_artifact_utils.load_statistics(artifact, split).proto()


def baseline_schema(statistics, drift_levels: Mapping[str, Mapping[str, Any]], open_vocabulary=()):
    """Schema inferred from the accepted ``statistics``, without value domains on the ``open_vocabulary``
    features, with a drift comparator on every feature of ``drift_levels`` at its ``warn`` level."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    for feature in schema.feature:
        if feature.name in open_vocabulary:
            feature.ClearField("domain_info")
    add_drift_comparators(schema, drift_levels)
    return schema


def drift_levels_of(spec, max_scenario_shift: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
    """The ``drift_levels`` parameter: ``{feature: {measure, warn, block}}`` for every feature of the spec. The
    scenario blocks at ``max_scenario_shift`` (when given) unless the spec gives it its own levels."""
    levels = {}
    for f in spec.features:
        own = spec.drift.levels(f.name, f.dtype)
        block = own.block
        if max_scenario_shift is not None and f.is_scenario and f.name not in spec.drift.features:
            block = max_scenario_shift
        levels[f.name] = {"measure": drift.measure(f.dtype), "warn": min(own.warn, block), "block": block}
    return levels


def add_drift_comparators(schema, drift_levels: Mapping[str, Mapping[str, Any]],
                          comparator_field: str = "drift_comparator") -> None:
    """TFDV's drift (or, with ``comparator_field="skew_comparator"``, skew) comparator on each feature:
    L-infinity or Jensen-Shannon, at the ``warn`` threshold (the measured value is then in the anomalies'
    ``drift_skew_info``, read by :func:`measured_levels`)."""
    import tensorflow_data_validation as tfdv

    names = {f.name for f in schema.feature}
    for name, level in drift_levels.items():
        if name not in names:
            continue  # a column the statistics do not hold; the schema comparison reports it
        comparator = getattr(tfdv.get_feature(schema, name), comparator_field)
        if level["measure"] == drift.L_INFINITY:
            comparator.infinity_norm.threshold = level["warn"]
        else:
            comparator.jensen_shannon_divergence.threshold = level["warn"]


_DRIFT_REASONS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")


def measured_levels(anomalies, levels: Mapping[str, Mapping[str, Any]],
                    measurements: str = "drift_measurements") -> List[Dict[str, Any]]:
    """Every measurement of ``anomalies.drift_skew_info`` (``drift_measurements`` or ``skew_measurements``)
    as ``{feature, measure, value, warn, block, level}`` (level ``ok``, ``warn`` or ``block``), largest
    relative to its ``block`` first."""
    rows = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        if name not in levels or not getattr(info, measurements):
            continue
        value = max(m.value for m in getattr(info, measurements))
        level = levels[name]
        verdict = "block" if value > level["block"] else "warn" if value > level["warn"] else "ok"
        rows.append({"feature": name, "measure": level["measure"], "value": float(value), "warn": level["warn"],
                     "block": level["block"], "level": verdict})
    return sorted(rows, key=lambda r: -r["value"] / r["block"])


def split_drift(anomalies, drift_levels: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The drift rows of :func:`measured_levels`. Removes from ``anomalies`` the entries whose only reason is a
    drift at warning level, so that what remains is what stops the run."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    drift_types = {anomalies_pb2.AnomalyInfo.Type.Value(t) for t in _DRIFT_REASONS}
    rows = measured_levels(anomalies, drift_levels)
    for row in rows:
        entry = anomalies.anomaly_info.get(row["feature"])
        if row["level"] != "block" and entry is not None and all(r.type in drift_types for r in entry.reason):
            del anomalies.anomaly_info[row["feature"]]
        elif row["level"] == "block" and entry is not None:  # TFDV's text names the comparator's (warn) threshold
            entry.description += (f" That is above its block level {row['block']:g} (warn "
                                  f"{row['warn']:g}: drift levels of the spec, features/drift.py).")
    return rows


def open_vocabulary_features(spec) -> str:
    """The ``open_vocabulary`` parameter: the spec's features that map unseen values to OOV or hash buckets,
    and the columns the spec ignores (their values are no one's business, e.g. a day number)."""
    names = [f.name for f in spec.features if f.role in ("id", "categorical", "multivalent", "sequence", "prior")]
    return ",".join(names + list(spec.ignore))


def describe_anomalies(anomalies) -> str:
    """One line per anomalous feature (and the dataset): ``name: short description: description``."""
    lines = []
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"  (dataset): {info.short_description}: {info.description}")
    for name in sorted(anomalies.anomaly_info):
        info = anomalies.anomaly_info[name]
        lines.append(f"  {name}: {info.short_description}: {info.description}")
    return "\n".join(lines)


def check_span(current, previous, schema, drift_levels: Mapping[str, Mapping[str, Any]], open_vocabulary=()):
    """Validate the statistics ``current`` against the accepted ``previous`` ones (None on a first run: against
    ``schema``, SchemaGen's). Returns (the anomalies that stop the run, the drift rows of :func:`split_drift`)."""
    import tensorflow_data_validation as tfdv

    reference = schema if previous is None else baseline_schema(previous, drift_levels, open_vocabulary)
    found = tfdv.validate_statistics(current, reference, previous_statistics=previous)
    return found, split_drift(found, drift_levels)


@tfx.dsl.components.component
def GatedExampleValidator(
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    anomalies: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    accepted_statistics: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    drift_levels: tfx.dsl.components.Parameter[str],
    open_vocabulary: tfx.dsl.components.Parameter[str] = "",
    baseline_statistics: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleStatistics] = None,
):
    """Validate ``statistics`` against the last accepted span; raise DataValidationError on anomalies.
    ``drift_levels`` is the JSON of :func:`drift_levels_of`."""
    from absl import logging
    from tfx.utils import io_utils

    split = VALIDATED_SPLIT if VALIDATED_SPLIT in _split_names(statistics) else _split_names(statistics)[0]
    current = _load_stats(statistics, split)
    previous = None
    if baseline_statistics is not None and split in _split_names(baseline_statistics):
        previous = _load_stats(baseline_statistics, split)
        logging.info("ExampleValidator: validating split %s against the accepted statistics %s", split,
                     baseline_statistics.uri)
    else:
        logging.info("ExampleValidator: no accepted span yet; validating split %s against %s", split, schema.uri)
    found, shifts = check_span(current, previous, io_utils.SchemaReader().read(
        io_utils.get_only_uri_in_dir(schema.uri)), json.loads(drift_levels),
        [n for n in open_vocabulary.split(",") if n])
    out_dir = os.path.join(anomalies.uri, f"Split-{split}")
    os.makedirs(out_dir, exist_ok=True)
    io_utils.write_bytes_file(os.path.join(out_dir, ANOMALIES_FILE), found.SerializeToString())
    drift.write_drift(anomalies.uri, split, baseline_statistics.uri if previous is not None else None, shifts)
    anomalies.split_names = json.dumps([split])
    warnings = [r for r in shifts if r["level"] == "warn"]
    for r in warnings:
        logging.warning("%s %s: %s %.4f above warn %g (blocks above %g)", DRIFT_WARNING_PREFIX, r["feature"],
                        r["measure"], r["value"], r["warn"], r["block"])
    count = len(found.anomaly_info) + int(found.HasField("dataset_anomaly_info"))
    anomalies.set_int_custom_property("anomalies", count)
    anomalies.set_int_custom_property("drift_warnings", len(warnings))
    if count:
        text = describe_anomalies(found)
        raise DataValidationError(f"{ERROR_PREFIX} {count} against the last accepted span "
                                  f"({'first run' if previous is None else baseline_statistics.uri}); "
                                  f"nothing downstream runs\n{text}")
    for name in _split_names(statistics):
        src = os.path.join(statistics.uri, f"Split-{name}")
        shutil.copytree(src, os.path.join(accepted_statistics.uri, f"Split-{name}"), dirs_exist_ok=True)
    accepted_statistics.split_names = statistics.split_names
    accepted_statistics.span = statistics.span
    logging.info("ExampleValidator: no anomalies; statistics accepted as the new baseline")


def latest_accepted_statistics_resolver(empty_is_success: bool = True):
    """Resolver node: the statistics the ExampleValidator of an earlier run accepted (the newest), or none on
    the first run (``pipeline.resolvers.latest_output_resolver``)."""
    return latest_output_resolver(RESOLVER_ID, "statistics", tfx.types.standard_artifacts.ExampleStatistics,
                                  "ExampleValidator", ACCEPTED_KEY, empty_is_success)
