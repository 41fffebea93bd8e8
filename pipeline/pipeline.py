"""``create_pipeline``: the TFX DAG of DESIGN.md section 6, the same for every runner.

ExampleGen (CSV rows checked against the spec with a quarantine, TFRecord, Parquet; ``{SPAN}`` patterns read
one daily span) -> StatisticsGen -> SchemaGen
-> ExampleValidator (:mod:`pipeline.data_validator`: against the last accepted span; anomalies stop the run)
-> Transform (``features.preprocessing.preprocessing_fn``) -> Trainer
(``models.trainer.run_fn``; optionally warm-started from the last blessed model) -> Evaluator (TFMA per
scenario; the candidate against the last blessed model found by the ``LatestBlessedModel`` resolver) ->
Pusher (:class:`pipeline.pusher.ServingPusher`: only a blessed model, atomically) -> optional BulkInferrer.
"""

from __future__ import annotations

from typing import List

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.dsl.components.base import executor_spec

from pipeline import checked_example_gen
from pipeline.config import PipelineConfig, hash_buckets
from pipeline.data_validator import GatedExampleValidator, latest_accepted_statistics_resolver
from pipeline.deterministic_transform import DeterministicTransform
from pipeline.eval_config import build_eval_config
from pipeline.pusher import ServingPusher

PREPROCESSING_FN = "features.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
COMPONENT_ORDER = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer",
                   "Evaluator", "Pusher")
RESOLVER_ID = "latest_blessed_model_resolver"


def _example_gen(config: PipelineConfig):
    input_base, pattern = config.split_data_pattern()
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split", pattern=pattern)])
    range_config = None
    if config.has_spans and config.span_number is not None:
        range_config = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=config.span_number, end_span_number=config.span_number))
    train_b, eval_b = hash_buckets(config.eval_fraction)
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=train_b),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_b),
    ]))
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


def create_components(config: PipelineConfig) -> List:
    spec = config.load_spec()
    example_gen = _example_gen(config)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    accepted_statistics = latest_accepted_statistics_resolver()
    example_validator = GatedExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        baseline_statistics=accepted_statistics.outputs["statistics"], scenario_feature=spec.scenario.name,
        max_scenario_shift=config.max_scenario_shift).with_id("ExampleValidator")
    transform = DeterministicTransform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config={"spec": spec.to_dict()}).with_id("Transform")
    transform.add_upstream_node(example_validator)  # anomalies stop the run before Transform and Trainer
    resolver = _latest_blessed_model_resolver()
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=resolver.outputs["model"] if config.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"spec": spec.to_dict(), "model": config.model, "model_config": config.model_config,
                       "train": config.train, "warm_start": config.warm_start})
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        eval_config=build_eval_config(spec, blessing=config.blessing_config()))
    pusher = ServingPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"], serving_root=config.serving_dir,
        model_name=config.serving_model_name).with_id("Pusher")
    components = [example_gen, statistics_gen, schema_gen, accepted_statistics, example_validator, transform,
                  resolver, trainer, evaluator, pusher]
    if config.bulk_inference:
        components.append(tfx.components.BulkInferrer(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=tfx.proto.DataSpec(example_splits=["eval"]),
            model_spec=tfx.proto.ModelSpec(model_signature_name=["serving_default"])))
    return components


def create_pipeline(config: PipelineConfig, local_metadata: bool = True) -> tfx.dsl.Pipeline:
    """The TFX pipeline for ``config``: with the run's SQLite ML Metadata for local runs, without any for
    orchestrators that bring their own (Kubeflow)."""
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if local_metadata else None)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(config.beam_args),
    )
