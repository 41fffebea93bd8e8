"""Pusher for TF Serving: publish a blessed model atomically, with warm-up requests and server configs.

TFX's stock Pusher copies the SavedModel file by file into ``<base>/<version>/``, so TF Serving (or a crash)
can meet a half-written version. This component instead calls :func:`serving.publish.publish_version`, which
copies into a hidden ``.incoming-*`` directory that TF Serving ignores, adds
``assets.extra/tf_serving_warmup_requests`` built from real serialized examples of the run's eval split, and
renames it to the numeric version in one step; then it rewrites ``models.config`` and ``monitoring.config``
for ``tensorflow_model_server`` under the serving root.

An unblessed model is not published: the ``PushedModel`` artifact is marked ``pushed = 0`` and the version
that is being served stays untouched. A model that is already served (the same Trainer artifact, recorded in
the version's ``assets.extra/msmt_source_model.txt``) is not published twice. The artifact carries the same custom properties as TFX's Pusher
(``pushed``, ``pushed_destination``, ``pushed_version``), so MLMD readers need not know the difference.
"""


import glob
import os
from typing import List

from tfx import v1 as tfx

WARMUP_SPLIT = "Split-eval"


def warmup_examples(examples_uri: str, limit: int) -> List[bytes]:
    """Up to ``limit`` serialized tf.Examples from the eval split of an ExampleGen artifact."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples_uri, WARMUP_SPLIT, "*")))
    if not files or limit <= 0:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


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
):
    """Publish ``model`` to ``<serving_root>/<model_name>/<version>/`` when ``model_blessing`` is blessed."""
    from absl import logging

    from serving.publish import find_published, publish_version, write_server_configs

    if not _is_blessed(model_blessing):
        logging.info("ServingPusher: model %s is not blessed; nothing published", model.uri)
        pushed_model.set_int_custom_property("pushed", 0)
        return
    version_dir = find_published(serving_root, model_name, model.uri)
    if version_dir:  # e.g. an unchanged rerun re-blessed the same model against itself: no new version
        logging.info("ServingPusher: model %s is already served as %s", model.uri, version_dir)
    else:
        version_dir = publish_version(os.path.join(model.uri, "Format-Serving"), serving_root, model_name,
                                      warmup_examples=warmup_examples(examples.uri, warmup_records),
                                      source=model.uri)
        logging.info("ServingPusher: published %s", version_dir)
    write_server_configs(serving_root, [model_name])
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", version_dir)
    pushed_model.set_string_custom_property("pushed_version", os.path.basename(version_dir))
