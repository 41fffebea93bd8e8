"""Resolver nodes: the newest output of an earlier run, and the training spans of a next-span run.

A daily run reads two things that an earlier run of the same pipeline wrote: the statistics the
ExampleValidator last accepted (the drift baseline, ``pipeline.data_validator``) and, with
``--transform-cache``, Transform's analyzer cache (``pipeline.deterministic_transform``). Both are a TFX
``Resolver`` with the latest artifact of one component's output. On the first run there is none yet.

A next-span run trains on the Examples of its training spans (``pipeline.spans``), which the ingest runs
wrote: :func:`training_spans_resolver`.
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.input_resolution.strategies.span_range_strategy import SpanRangeStrategy

from pipeline.spans import SpanPlan, newest_per_span

TRAINING_SPANS_RESOLVER_ID = "training_spans_resolver"


class LatestOrNoArtifactStrategy(tfx.dsl.experimental.LatestArtifactStrategy):
    """TFX's ``LatestArtifactStrategy`` that resolves to nothing, successfully, when there is nothing yet.

    TFX's strategy returns ``None`` when a channel holds no artifact, and TFX then records the resolver's
    execution as FAILED. On a pipeline's first run nothing has been written yet; that is expected, not a
    failure, and a ``FAILED`` state in ``run_summary.json`` would page whoever watches it. This strategy
    returns the empty list instead, as TFX's ``LatestBlessedModelStrategy`` does before the first blessing.
    """

    def resolve_artifacts(self, store, input_dict):
        return self._resolve(input_dict)


def latest_output_resolver(resolver_id: str, key: str, artifact_type, producer_component_id: str,
                           output_key: str, empty_is_success: bool = True):
    """Resolver node ``resolver_id`` whose output ``key`` is the newest ``artifact_type`` that
    ``producer_component_id`` wrote under ``output_key`` in an earlier run, or nothing on the first run.

    ``empty_is_success=False`` uses TFX's own strategy: Kubeflow V2 compiles only TFX's strategies (into a KFP
    artifact query, where finding nothing is not a failure)."""
    strategy = LatestOrNoArtifactStrategy if empty_is_success else tfx.dsl.experimental.LatestArtifactStrategy
    channel = tfx.dsl.Channel(type=artifact_type, producer_component_id=producer_component_id,
                              output_key=output_key)
    return tfx.dsl.Resolver(strategy_class=strategy, **{key: channel}).with_id(resolver_id)


class LatestVersionSpanRangeStrategy(SpanRangeStrategy):
    """TFX's ``SpanRangeStrategy`` keeping one artifact per span: the newest version.

    ``SpanRangeStrategy`` returns every artifact whose span is in range, so a span read twice (its files
    changed, or a ``{VERSION}`` was added) would be trained on twice. (TFX's newer ``rolling_range`` /
    ``static_range`` resolver functions dedupe, but in TFX 1.21 they read ``span`` as an artifact property,
    while ExampleGen writes it as a custom property, so they find no span.)
    """

    def _resolve(self, input_dict):
        return {k: newest_per_span(v) for k, v in super()._resolve(input_dict).items()}


def training_spans_resolver(example_gen_id: str, plan: SpanPlan):
    """Resolver node whose ``examples`` output holds the ExampleGen outputs of ``plan.train_spans``."""
    return tfx.dsl.Resolver(
        strategy_class=LatestVersionSpanRangeStrategy,
        config={"range_config": tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=min(plan.train_spans), end_span_number=max(plan.train_spans)))},
        examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                 producer_component_id=example_gen_id, output_key="examples"),
    ).with_id(TRAINING_SPANS_RESOLVER_ID)
