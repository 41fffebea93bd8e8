"""Runs the pipeline with TFX's LocalDagRunner (SQLite MLMD). Meant to run in a child process.

``python -m pipeline.local_runner CONFIG.json`` builds the pipeline from a ``PipelineConfig`` dict and runs it.
With next-span evaluation (``pipeline.spans``) it first runs the ingest pipeline of every training span whose
statistics no ExampleValidator has accepted yet, oldest first, then the full pipeline; a line
``INGEST_MARKER <span>`` / ``MAIN_MARKER`` on stdout announces each, for the parent's progress output.
A process that ran ``tft_beam`` may crash at interpreter exit after its work is done, so the ``msmt run``
parent (``pipeline.run``) starts this in a child, then judges success from MLMD and the run's outputs.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

INGEST_MARKER = "msmt-runner: ingest span"
MAIN_MARKER = "msmt-runner: main run"


def accepted_spans(config) -> set:
    """Spans whose statistics an ExampleValidator of this run directory accepted."""
    from pipeline import mlmd
    from pipeline.data_validator import ACCEPTED_KEY

    if not os.path.exists(config.metadata_path):
        return set()
    prefix = os.path.join(config.pipeline_root, "ExampleValidator", ACCEPTED_KEY)
    return mlmd.accepted_example_spans(mlmd.open_store(config.metadata_path), prefix)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m pipeline.local_runner CONFIG.json", file=sys.stderr)
        return 2
    from absl import logging as absl_logging
    from tfx import v1 as tfx

    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_ingest_pipeline, create_pipeline
    from pipeline.tfx_patches import no_tfx_sdist_for_local_beam

    absl_logging.set_verbosity(absl_logging.INFO)
    with open(argv[0]) as fh:
        config = PipelineConfig.from_dict(json.load(fh))
    plan = config.span_plan()
    with no_tfx_sdist_for_local_beam():
        if plan.next_span:
            accepted = accepted_spans(config)
            for span in plan.train_spans:
                if span not in accepted:
                    print(f"{INGEST_MARKER} {span}", flush=True)
                    tfx.orchestration.LocalDagRunner().run(create_ingest_pipeline(config, span))
        print(MAIN_MARKER, flush=True)
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown, where a process that ran tft_beam may segfault after finishing.
    os._exit(code)
