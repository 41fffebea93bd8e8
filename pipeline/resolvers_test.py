from tfx import v1 as tfx
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy

from pipeline.resolvers import LatestOrNoArtifactStrategy, latest_output_resolver


def test_first_run_resolver_returns_nothing_instead_of_failing():
    strategy = LatestOrNoArtifactStrategy()
    assert strategy.resolve_artifacts(None, {"statistics": []}) == {"statistics": []}
    assert LatestArtifactStrategy().resolve_artifacts(None, {"statistics": []}) is None  # what TFX records FAILED


def test_latest_output_resolver_reads_one_components_output_with_the_strategy_the_runner_compiles():
    cache = tfx.types.standard_artifacts.TransformCache
    local = latest_output_resolver("r", "cache", cache, "Transform", "updated_analyzer_cache")
    kubeflow = latest_output_resolver("r", "cache", cache, "Transform", "updated_analyzer_cache",
                                      empty_is_success=False)
    assert local.id == "r" and local.exec_properties["resolver_class"] is LatestOrNoArtifactStrategy
    assert kubeflow.exec_properties["resolver_class"] is tfx.dsl.experimental.LatestArtifactStrategy
    channel = local.outputs["cache"]
    assert channel.type is cache
