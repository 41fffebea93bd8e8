"""``create_pipeline``: the TFX DAG of DESIGN.md section 6, the same for every runner.

ExampleGen (CSV / TFRecord / Parquet) -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
(``features.preprocessing.preprocessing_fn``) -> Trainer (``models.trainer.run_fn``) -> Evaluator (TFMA,
per scenario) -> Pusher (only a blessed model).
"""

from __future__ import annotations

from typing import List, Optional

from tfx import v1 as tfx
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.dsl.components.base import executor_spec

from pipeline.config import PipelineConfig, hash_buckets
from pipeline.eval_config import build_eval_config

PREPROCESSING_FN = "features.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
COMPONENT_ORDER = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer",
                   "Evaluator", "Pusher")


def _example_gen(config: PipelineConfig):
    input_base, pattern = config.split_data_pattern()
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split", pattern=pattern)])
    train_b, eval_b = hash_buckets(config.eval_fraction)
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=train_b),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_b),
    ]))
    fmt = config.data_format
    if fmt == "csv":
        return tfx.components.CsvExampleGen(input_base=input_base, input_config=input_config,
                                            output_config=output_config)
    if fmt == "tfrecord":
        return tfx.components.ImportExampleGen(input_base=input_base, input_config=input_config,
                                               output_config=output_config)
    return tfx.components.FileBasedExampleGen(
        input_base=input_base, input_config=input_config, output_config=output_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor))


def create_components(config: PipelineConfig) -> List:
    spec = config.load_spec()
    example_gen = _example_gen(config)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config={"spec": spec.to_dict()})
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"spec": spec.to_dict(), "model": config.model, "model_config": config.model_config,
                       "train": config.train})
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        eval_config=build_eval_config(spec, min_auc=config.min_auc))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.push_dir)))
    return [example_gen, statistics_gen, schema_gen, example_validator, transform, trainer, evaluator, pusher]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[object] = None) -> tfx.dsl.Pipeline:
    """The TFX pipeline for ``config``; local runs pass a SQLite MLMD connection config."""
    if metadata_connection_config is None:
        metadata_connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )
