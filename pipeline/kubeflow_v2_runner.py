"""Compile the pipeline for Kubeflow Pipelines (Vertex AI Pipelines): ``msmt compile-kubeflow``.

The same ``create_pipeline`` DAG as the local runner, compiled by TFX's ``KubeflowV2DagRunner`` into a KFP
IR ``PipelineSpec`` JSON, offline (no cluster needed; ``kfp`` must be installed, it is in the lock file).
Every step runs in ``--image``: build it from this repository's ``Dockerfile`` (Debian 13 + the same lock,
non-root user) and push it to your registry. On the cluster, ``--data``/``--output`` are paths the pods can
read and write (e.g. object storage); MLMD is the cluster's, so no SQLite path is set.

Submit the JSON with the KFP SDK (``kfp.Client().create_run_from_pipeline_package(JSON)``) or Vertex AI
(``aiplatform.PipelineJob(template_path=JSON, ...).submit()``).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

from pipeline.config import PipelineConfig

DEFAULT_IMAGE = "msmt-rank:latest"


def compile_pipeline(config: PipelineConfig, output_json: str, image: str = DEFAULT_IMAGE) -> str:
    """Write the KFP V2 pipeline JSON for ``config`` to ``output_json``; returns the path."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    try:
        runner_cls = tfx.orchestration.experimental.KubeflowV2DagRunner
        runner_config_cls = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig
    except AttributeError as err:  # the module appears only when kfp is importable
        raise RuntimeError("KubeflowV2DagRunner is unavailable: install kfp (pip install kfp==2.17.0)") from err
    from pipeline.paths import check_config_paths

    check_config_paths(config)  # names and derived paths; the data itself is read by the cluster, not here
    pipeline = create_pipeline(config, local_metadata=False)
    out_dir = os.path.dirname(os.path.abspath(output_json))
    os.makedirs(out_dir, exist_ok=True)
    runner = runner_cls(config=runner_config_cls(default_image=image), output_dir=out_dir,
                        output_filename=os.path.basename(output_json))
    runner.run(pipeline, write_out=True)
    return output_json


def component_images(pipeline_json: str) -> Dict[str, str]:
    """{task name: container image} of a compiled pipeline JSON."""
    with open(pipeline_json) as fh:
        doc = json.load(fh)
    spec = doc.get("pipelineSpec", doc)
    executors = spec["deploymentSpec"]["executors"]
    tasks: Dict[str, Dict] = spec["root"]["dag"]["tasks"]
    images = {}
    for name, task in tasks.items():
        executor = spec["components"][task["componentRef"]["name"]].get("executorLabel")
        container = executors.get(executor, {}).get("container", {})
        images[name] = container.get("image", "")
    return images


def task_names(pipeline_json: str) -> List[str]:
    return sorted(component_images(pipeline_json))
