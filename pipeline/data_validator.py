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
* a drift comparator on the scenario feature: the L-infinity distance between the scenario shares of the
  two spans, ``max_s |p_now(s) - p_before(s)|``, must not exceed ``max_scenario_shift``.

It writes the anomalies (``Split-<split>/SchemaDiff.pb``, the stock format, readable with
``tfdv.load_anomalies_binary``) and, when there are none, passes the statistics on as the new accepted
baseline. When there are anomalies it raises :class:`DataValidationError` (message starting with
``ERROR_PREFIX``, one line per feature). Transform runs after this node (``add_upstream_node``), so the
Transform, Trainer and Pusher of that run never execute and nothing is pushed.
"""


import json
import os
import shutil

from tfx import v1 as tfx

ERROR_PREFIX = "ExampleValidator found anomalies:"
DEFAULT_MAX_SCENARIO_SHIFT = 0.1
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


def baseline_schema(statistics, scenario: str, max_scenario_shift: float, open_vocabulary=()):
    """Schema inferred from the accepted ``statistics``, without value domains on the ``open_vocabulary``
    features, plus the scenario drift comparator."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    for feature in schema.feature:
        if feature.name in open_vocabulary:
            feature.ClearField("domain_info")
    add_scenario_drift(schema, scenario, max_scenario_shift)
    return schema


def open_vocabulary_features(spec) -> str:
    """The ``open_vocabulary`` parameter: the spec's features that map unseen values to OOV or hash buckets,
    and the columns the spec ignores (their values are no one's business, e.g. a day number)."""
    names = [f.name for f in spec.features if f.role in ("id", "categorical", "multivalent", "sequence", "prior")]
    return ",".join(names + list(spec.ignore))


def add_scenario_drift(schema, scenario: str, max_scenario_shift: float) -> None:
    import tensorflow_data_validation as tfdv

    feature = tfdv.get_feature(schema, scenario)
    feature.drift_comparator.infinity_norm.threshold = max_scenario_shift


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


@tfx.dsl.components.component
def GatedExampleValidator(
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    anomalies: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    accepted_statistics: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    scenario_feature: tfx.dsl.components.Parameter[str],
    max_scenario_shift: tfx.dsl.components.Parameter[float] = DEFAULT_MAX_SCENARIO_SHIFT,
    open_vocabulary: tfx.dsl.components.Parameter[str] = "",
    baseline_statistics: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleStatistics] = None,
):
    """Validate ``statistics`` against the last accepted span; raise DataValidationError on anomalies."""
    import tensorflow_data_validation as tfdv
    from absl import logging
    from tfx.utils import io_utils

    split = VALIDATED_SPLIT if VALIDATED_SPLIT in _split_names(statistics) else _split_names(statistics)[0]
    current = _load_stats(statistics, split)
    previous = None
    if baseline_statistics is not None and split in _split_names(baseline_statistics):
        previous = _load_stats(baseline_statistics, split)
        reference = baseline_schema(previous, scenario_feature, max_scenario_shift,
                                    [n for n in open_vocabulary.split(",") if n])
        logging.info("ExampleValidator: validating split %s against the accepted statistics %s", split,
                     baseline_statistics.uri)
    else:
        reference = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
        logging.info("ExampleValidator: no accepted span yet; validating split %s against %s", split, schema.uri)
    found = tfdv.validate_statistics(current, reference, previous_statistics=previous)
    out_dir = os.path.join(anomalies.uri, f"Split-{split}")
    os.makedirs(out_dir, exist_ok=True)
    io_utils.write_bytes_file(os.path.join(out_dir, ANOMALIES_FILE), found.SerializeToString())
    anomalies.split_names = json.dumps([split])
    count = len(found.anomaly_info) + int(found.HasField("dataset_anomaly_info"))
    anomalies.set_int_custom_property("anomalies", count)
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


def latest_accepted_statistics_resolver():
    """Resolver node: the statistics the ExampleValidator of an earlier run accepted (the newest)."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id="ExampleValidator", output_key=ACCEPTED_KEY),
    ).with_id(RESOLVER_ID)
