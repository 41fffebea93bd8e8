"""The Kubeflow V2 runner compiles the same DAG as the local runner to KFP JSON, offline."""

import json

from pipeline.config import PipelineConfig
from pipeline.deterministic_transform import CACHE_RESOLVER_ID
from pipeline.kubeflow_v2_runner import component_images, compile_pipeline
from pipeline.pipeline import COMPONENT_ORDER, RESOLVER_ID


def test_compiles_every_component_with_the_image(tmp_path):
    config = PipelineConfig(data="gs://bucket/logs/span-{SPAN}/impressions.csv", spec="synthetic",
                            output="gs://bucket/msmt", model="ple", warm_start=True, transform_cache=True)
    path = compile_pipeline(config, str(tmp_path / "pipeline.json"), image="msmt-rank:test")
    images = component_images(path)
    task = {c: next((t for t in images if t.endswith(c)), None) for c in COMPONENT_ORDER}
    assert None not in task.values(), (task, sorted(images))
    assert any(t.startswith(RESOLVER_ID) for t in images), sorted(images)
    assert any(t.startswith(CACHE_RESOLVER_ID) for t in images), sorted(images)  # --transform-cache
    assert {images[t] for t in task.values()} == {"msmt-rank:test"}
    text = open(path).read()
    doc = json.loads(text)
    assert doc["pipelineSpec"]["pipelineInfo"]["name"] == "msmt"
    assert "models.trainer.run_fn" in text and "features.preprocessing.preprocessing_fn" in text
    assert "span-{SPAN}/impressions.csv" in text  # the span-aware input pattern reaches ExampleGen
    assert "gs://bucket/logs" in text and "gs://bucket/msmt/pipeline_root" in text
