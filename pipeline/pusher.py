"""Pusher for TF Serving: publish a blessed model atomically, with warm-up requests and server configs.

TFX's stock Pusher copies the SavedModel file by file into ``<base>/<version>/``, so TF Serving (or a crash)
can meet a half-written version. This component instead calls :func:`serving.publish.publish_version`, which
copies into a hidden ``.incoming-*`` directory that TF Serving ignores, adds
``assets.extra/tf_serving_warmup_requests`` built from real serialized examples of the run's eval split, and
renames it to the numeric version in one step; then it rewrites ``models.config`` and ``monitoring.config``
for ``tensorflow_model_server`` under the serving root.

Before the rename, the copy must pass the checks of ``msmt export-check`` (``serving.check``: signatures, a
TF1 session, ``tf.saved_model.load``, every warm-up request replayed, outputs in [0, 1]); an unservable model
fails the Pusher with the reasons, and nothing is published. The new version is labelled ``stable``, or
``canary`` beside the stable one in canary mode, and only the newest ``keep_versions`` versions stay on disk
(never a labelled one): ``serving.versions``.

An unblessed model is not published: the ``PushedModel`` artifact is marked ``pushed = 0`` and the version
that is being served stays untouched. A model that is already served (the same Trainer artifact, recorded in
the version's ``assets.extra/msmt_source_model.txt``) is not published twice. The artifact carries the same custom properties as TFX's Pusher
(``pushed``, ``pushed_destination``, ``pushed_version``), so MLMD readers need not know the difference.
"""


import glob
import json
import os
from typing import List

from tfx import v1 as tfx

from serving.publish import MODELS_CONFIG
from serving.versions import DEFAULT_KEEP_VERSIONS

WARMUP_SPLIT = "Split-eval"


def warmup_examples(examples_uri: str, limit: int) -> List[bytes]:
    """Up to ``limit`` serialized tf.Examples from the eval split of an ExampleGen artifact."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples_uri, WARMUP_SPLIT, "*")))
    if not files or limit <= 0:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def card_of(model, version: int, data_spans: str, model_run, evaluation, anomalies):
    """The model card of a blessed ``model`` published as ``version`` (``pipeline.model_card``)."""
    from features.drift import read_drift
    from models.config import TRAIN_SUMMARY_FILE
    from pipeline.evaluator import read_gating
    from pipeline.model_card import build_card
    from pipeline.results import read_json_object, read_tfma_metrics
    from serving.interface import ASSETS_EXTRA, EXPORT_METADATA_FILE

    return build_card(
        model_uri=model.uri, version=str(version),
        train_summary=read_json_object(os.path.join(model_run.uri, TRAIN_SUMMARY_FILE)) if model_run else None,
        export_metadata=read_json_object(
            os.path.join(model.uri, "Format-Serving", ASSETS_EXTRA, EXPORT_METADATA_FILE)),
        spans=json.loads(data_spans) if data_spans else None,
        metrics=read_tfma_metrics(evaluation.uri) if evaluation else {},
        gating=read_gating(evaluation.uri) if evaluation else None,
        drift=read_drift(anomalies.uri) if anomalies else None)


def _is_blessed(blessing) -> bool:
    return bool(blessing.get_int_custom_property("blessed"))


@tfx.dsl.components.component
def ServingPusher(
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    model_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    pushed_model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.PushedModel],
    serving_root: tfx.dsl.components.Parameter[str],
    model_name: tfx.dsl.components.Parameter[str],
    warmup_records: tfx.dsl.components.Parameter[int] = 16,
    canary: tfx.dsl.components.Parameter[int] = 0,
    keep_versions: tfx.dsl.components.Parameter[int] = DEFAULT_KEEP_VERSIONS,
    data_spans: tfx.dsl.components.Parameter[str] = "",
    model_run: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelRun] = None,
    evaluation: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelEvaluation] = None,
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies] = None,
):
    """Publish ``model`` to ``<serving_root>/<model_name>/<version>/`` when ``model_blessing`` is blessed, after
    the servability checks of ``msmt export-check`` pass on the copy; label it ``stable`` (or ``canary`` when
    ``canary`` is 1 and a stable version exists) and keep the newest ``keep_versions`` versions."""
    from absl import logging

    from pipeline.model_card import write_card
    from serving.check import servability_problems
    from serving.interface import ASSETS_EXTRA
    from serving.publish import find_published, publish_version, write_monitoring_config, write_server_configs
    from serving.versions import ever_labelled, label_new_version, retain

    if not _is_blessed(model_blessing):
        logging.info("ServingPusher: model %s is not blessed; nothing published", model.uri)
        pushed_model.set_int_custom_property("pushed", 0)
        return
    version_dir = find_published(serving_root, model_name, model.uri)
    if version_dir and not ever_labelled(serving_root, model_name, int(os.path.basename(version_dir))):
        # published by a Pusher that died before labelling it: finish that push
        served = label_new_version(serving_root, model_name, int(os.path.basename(version_dir)), bool(canary))
        logging.info("ServingPusher: %s was published but not labelled; now serving %s", version_dir,
                     served.labels)
    elif version_dir:  # e.g. an unchanged rerun re-blessed the same model against itself: no new version
        logging.info("ServingPusher: model %s is already published as %s (labels unchanged)", model.uri,
                     version_dir)
        if not os.path.exists(os.path.join(serving_root, MODELS_CONFIG)):
            write_server_configs(serving_root, [model_name])
    else:
        def add_model_card(copy_dir: str, version: int) -> None:
            write_card(os.path.join(copy_dir, ASSETS_EXTRA), card_of(model, version, data_spans, model_run,
                                                                     evaluation, anomalies))

        version_dir = publish_version(os.path.join(model.uri, "Format-Serving"), serving_root, model_name,
                                      warmup_examples=warmup_examples(examples.uri, warmup_records),
                                      source=model.uri, check=servability_problems, prepare=add_model_card)
        served = label_new_version(serving_root, model_name, int(os.path.basename(version_dir)), bool(canary))
        logging.info("ServingPusher: published %s, serving %s", version_dir, served.labels)
        deleted = retain(serving_root, model_name, keep_versions)
        if deleted:
            logging.info("ServingPusher: kept the newest %d versions; deleted %s", keep_versions, deleted)
    write_monitoring_config(serving_root)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", version_dir)
    pushed_model.set_string_custom_property("pushed_version", os.path.basename(version_dir))
