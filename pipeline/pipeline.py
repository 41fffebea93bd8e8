"""``create_pipeline``: the TFX DAG of msmt-rank (``docs/architecture.md``), the same for every runner.

ExampleGen (CSV rows checked against the spec with a quarantine, TFRecord, Parquet; ``{SPAN}`` patterns read
one daily span; splits train / calibration / eval) -> StatisticsGen -> SchemaGen
-> ExampleValidator (:mod:`pipeline.data_validator`: against the last accepted span; anomalies stop the run)
-> Transform (``features.preprocessing.preprocessing_fn``) -> Trainer
(``models.trainer.run_fn``; optionally warm-started from the last blessed model) -> Evaluator
(:class:`pipeline.evaluator.GatedEvaluator`: TFMA per head and scenario, every served head gated, the candidate
against the last blessed model found by the ``LatestBlessedModel`` resolver) -> Pusher
(:class:`pipeline.pusher.ServingPusher`: only a blessed model, atomically) -> optional BulkInferrer.

Next-span evaluation (:mod:`pipeline.spans`): with several daily spans, Transform and the Trainer read the
earlier spans through a span-range resolver and the Evaluator evaluates the run's own (latest) span;
:func:`create_ingest_pipeline` reads and validates one earlier span.
"""

from __future__ import annotations

import json
from typing import List, Optional

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.dsl.components.base import executor_spec

from features.drift import statistics_options
from pipeline import checked_example_gen
from pipeline.config import PipelineConfig, split_buckets
from pipeline.data_validator import GatedExampleValidator, drift_levels_of, latest_accepted_statistics_resolver, \
    open_vocabulary_features
from pipeline.deterministic_transform import CACHE_KEY, TRANSFORM_ID, DeterministicTransform, \
    latest_analyzer_cache_resolver
from pipeline.eval_config import build_eval_config, evaluated_heads
from pipeline.evaluator import GatedEvaluator, gating_parameters
from pipeline.pusher import ServingPusher
from pipeline.resolvers import training_spans_resolver
from pipeline.spans import CALIBRATION_SPLIT, EVAL_SPLIT, TRAIN_SPLIT

PREPROCESSING_FN = "features.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TUNER_FN = "models.tuning.tuner_fn"
COMPONENT_ORDER = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer",
                   "Evaluator", "Pusher")
RESOLVER_ID = "latest_blessed_model_resolver"


def _example_gen(config: PipelineConfig, span: Optional[int] = None):
    """The ExampleGen of ``config``; reading ``span`` (default: the evaluated span of the run's plan, or the
    ``--span``, or the latest)."""
    input_base, pattern = config.split_data_pattern()
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split", pattern=pattern)])
    range_config = None
    span = span if span is not None else config.span_plan().eval_span if config.has_spans else None
    if config.has_spans and span is not None:
        range_config = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=span, end_span_number=span))
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
        for name, buckets in split_buckets(config.eval_fraction, config.calibration_fraction)]))
    fmt = config.data_format
    if fmt == "csv":  # rows checked against the spec, bad ones quarantined (pipeline.checked_example_gen)
        return FileBasedExampleGen(
            input_base=input_base, input_config=input_config, output_config=output_config,
            range_config=range_config,
            custom_config=checked_example_gen.make_custom_config(config.load_spec(), config.max_bad_fraction,
                                                                 config.shuffle_examples),
            custom_executor_spec=executor_spec.BeamExecutorSpec(checked_example_gen.Executor),
        ).with_id("CsvExampleGen")
    if fmt == "tfrecord":
        return tfx.components.ImportExampleGen(input_base=input_base, input_config=input_config,
                                               output_config=output_config, range_config=range_config)
    return FileBasedExampleGen(
        input_base=input_base, input_config=input_config, output_config=output_config, range_config=range_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor))


def _latest_blessed_model_resolver():
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)


def _validated_input(config: PipelineConfig, span: Optional[int] = None, local: bool = True) -> List:
    """ExampleGen -> StatisticsGen -> SchemaGen -> (accepted-statistics resolver) -> ExampleValidator."""
    spec = config.load_spec()
    example_gen = _example_gen(config, span)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  stats_options=statistics_options())
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    accepted_statistics = latest_accepted_statistics_resolver(empty_is_success=local)
    example_validator = GatedExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        baseline_statistics=accepted_statistics.outputs["statistics"],
        drift_levels=json.dumps(drift_levels_of(spec, config.max_scenario_shift), sort_keys=True),
        open_vocabulary=open_vocabulary_features(spec)).with_id("ExampleValidator")
    return [example_gen, statistics_gen, schema_gen, accepted_statistics, example_validator]


def create_components(config: PipelineConfig, local: bool = True) -> List:
    """The main pipeline's components; ``local``: for the local runner (else compiled for Kubeflow V2)."""
    spec = config.load_spec()
    plan = config.span_plan()
    example_gen, statistics_gen, schema_gen, accepted_statistics, example_validator = _validated_input(
        config, local=local)
    training_examples = example_gen.outputs["examples"]
    span_resolver = []
    if plan.next_span:
        span_resolver = [training_spans_resolver(example_gen.id, plan)]
        training_examples = span_resolver[0].outputs["examples"]
    # --transform-cache: reuse the analysis of the spans an earlier run analysed; else analyse all training
    # spans at once (pipeline.deterministic_transform)
    analyzer_cache = [latest_analyzer_cache_resolver(empty_is_success=local)] if config.transform_cache else []
    transform = DeterministicTransform(
        examples=training_examples, schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config={"spec": spec.to_dict()},
        analyzer_cache=analyzer_cache[0].outputs[CACHE_KEY] if analyzer_cache else None,
        disable_analyzer_cache=not config.transform_cache,
        # StatisticsGen and the ExampleValidator already describe and check the input, and nothing reads
        # Transform's own pre-/post-transform statistics: skipping those two TFDV passes saves ~18% of
        # Transform's time (docs/benchmarks.md)
        disable_statistics=True).with_id(TRANSFORM_ID)
    transform.add_upstream_node(example_validator)  # anomalies stop the run before Transform and Trainer
    resolver = _latest_blessed_model_resolver()
    trainer_config = {"spec": spec.to_dict(), "model": config.model, "model_config": config.model_config,
                      "train": config.train, "warm_start": config.warm_start}
    tuner = []
    if config.tune:  # held-out score: the training spans' eval split (next-span) or the calibration split
        tuner = [tfx.components.Tuner(
            tuner_fn=TUNER_FN, examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            train_args=tfx.proto.TrainArgs(splits=[TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[EVAL_SPLIT if plan.next_span else CALIBRATION_SPLIT]),
            custom_config=dict(trainer_config, max_trials=config.max_trials))]
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=tuner[0].outputs["best_hyperparameters"] if tuner else None,
        base_model=resolver.outputs["model"] if config.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=plan.trainer_train_splits),
        eval_args=tfx.proto.EvalArgs(splits=[CALIBRATION_SPLIT]),
        custom_config=trainer_config)
    outputs = config.model_outputs()
    blessing = config.blessing_config()
    evaluator = GatedEvaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        eval_config=build_eval_config(spec, outputs, blessing=blessing),
        gating=gating_parameters(spec, evaluated_heads(spec, outputs), blessing.min_positives),
        example_splits=plan.evaluator_splits).with_id("Evaluator")
    pusher = ServingPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"], serving_root=config.serving_dir,
        model_name=config.serving_model_name, canary=int(config.canary),
        keep_versions=config.keep_versions, data_spans=json.dumps(plan.to_dict(), sort_keys=True),
        # for the model card of each pushed version (pipeline.model_card)
        model_run=trainer.outputs["model_run"], evaluation=evaluator.outputs["evaluation"],
        anomalies=example_validator.outputs["anomalies"]).with_id("Pusher")
    components = [example_gen, statistics_gen, schema_gen, accepted_statistics, example_validator,
                  *span_resolver, *analyzer_cache, transform, resolver, *tuner, trainer, evaluator, pusher]
    if config.bulk_inference:
        components.append(tfx.components.BulkInferrer(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=tfx.proto.DataSpec(example_splits=["eval"]),
            model_spec=tfx.proto.ModelSpec(model_signature_name=["serving_default"])))
    return components


def create_ingest_pipeline(config: PipelineConfig, span: int) -> tfx.dsl.Pipeline:
    """The pipeline that reads and validates one earlier span for next-span evaluation: ExampleGen ->
    StatisticsGen -> SchemaGen -> ExampleValidator, with the same node ids as the full pipeline."""
    return _tfx_pipeline(config, _validated_input(config, span), local_metadata=True)


def create_pipeline(config: PipelineConfig, local_metadata: bool = True) -> tfx.dsl.Pipeline:
    """The TFX pipeline for ``config``: with the run's SQLite ML Metadata for local runs, without any for
    orchestrators that bring their own (Kubeflow)."""
    return _tfx_pipeline(config, create_components(config, local=local_metadata), local_metadata)


def _tfx_pipeline(config: PipelineConfig, components: List, local_metadata: bool) -> tfx.dsl.Pipeline:
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if local_metadata else None)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(config.beam_args),
    )
