"""Names of an exported model's interface: signatures, their inputs, the metadata file (no TensorFlow import).

``serving.signatures`` writes the export with these names; TF Serving clients, batch scoring
(``serving.scoring``), the model checks (``serving.check``), the warm-up records and the Evaluator call it by
them. They live here, apart from the TensorFlow code, so that modules which must load without TensorFlow (the
CLI's argument parsers, ``serving.scoring`` before it scores) share them instead of keeping copies.
"""

from __future__ import annotations

import os

EXAMPLES_INPUT = "examples"  # serving_default's one input: serialized tf.Example
SERVING_SIGNATURE = "serving_default"
PREDICT_RAW_SIGNATURE = "predict_raw"
TRANSFORM_SIGNATURE = "transform_features"
EVAL_LABELS_SIGNATURE = "eval_labels"
ASSETS_EXTRA = "assets.extra"
EXPORT_METADATA_FILE = "msmt_export.json"
# Feature roles serving_default requires in every request (the others default to their missing value).
REQUIRED_ROLES = ("id", "scenario")


def export_metadata_path(model_dir: str) -> str:
    """``<model_dir>/assets.extra/msmt_export.json``, the export metadata of a SavedModel."""
    return os.path.join(model_dir, ASSETS_EXTRA, EXPORT_METADATA_FILE)
