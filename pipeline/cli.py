"""``msmt``: the command line of msmt-rank.

Run inside the project runtime: ``bin/msmt ...`` (any host) or ``msmt ...`` once installed in it.
Every subcommand has ``--help``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

DESCRIPTION = """msmt-rank: multi-scenario multi-task ranking on TFX.

Typical flow:
  msmt generate-data --rows 200000 --output /tmp/logs
  msmt run --data '/tmp/logs/span-*/impressions.csv' --spec synthetic --output /tmp/run
"""


def _progress(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------- generate-data
def cmd_generate_data(args) -> int:
    from features import synthetic

    cfg = synthetic.GeneratorConfig(rows=args.rows, days=args.days, seed=args.seed, num_users=args.users,
                                    num_items=args.items, drift=args.drift, history_length=args.history_length)
    formats = ("csv", "tfrecord") if args.format == "both" else (args.format,)
    _progress(f"generate-data: {cfg.rows} impressions, {len(cfg.scenarios)} scenarios, {cfg.days} daily spans, "
              f"seed {cfg.seed} -> {args.output}")
    result = synthetic.run(cfg, args.output, formats, progress=lambda m: _progress(f"  {m}"))
    _print_generator_summary(result["summary"])
    _progress(f"generate-data: generated in {result['generate_seconds']:.1f}s, "
              f"total {result['total_seconds']:.1f}s")
    with open(os.path.join(args.output, "generation_summary.json"), "w") as fh:
        json.dump({k: v for k, v in result.items()}, fh, indent=2)
    return 0


def _print_generator_summary(summary) -> None:
    print(f"  {'slice':12} {'rows':>9} {'share':>6} {'ctr':>6} {'act|clk':>7} {'cvr|clk':>7} {'cvr|noclk':>9} "
          f"{'oracleAUC click/action/conv':>28}")
    for name, r in summary.items():
        print(f"  {name:12} {r['rows']:>9} {r['share']:6.3f} {r['ctr']:6.4f} {r['action_rate']:7.4f} "
              f"{r['cvr']:7.4f} {r['unclicked_cvr']:9.5f} "
              f"{r['oracle_auc_click']:9.4f}/{r['oracle_auc_action']:.4f}/{r['oracle_auc_conversion']:.4f}")


# ---------------------------------------------------------------------------- run
def _pipeline_config(args):
    from models.config import ConfigError, load_yaml
    from pipeline.config import PipelineConfigError
    from pipeline.eval_config import BlessingConfigError

    model_config = load_yaml(args.model_config) if args.model_config else {}
    train = load_yaml(args.train_config) if args.train_config else {}
    for key in ("epochs", "batch_size", "learning_rate", "seed"):
        v = getattr(args, key, None)
        if v is not None:
            train[key] = v
    blessing = load_yaml(args.blessing) if getattr(args, "blessing", None) else {}
    for key in ("min_auc", "max_auc_drop"):
        if getattr(args, key, None) is not None:
            blessing[key] = getattr(args, key)
    try:
        config = _build_pipeline_config(args, model_config, train, blessing)
        config.model_outputs()  # model, train and weighting configs (the data is checked when the run starts)
        config.blessing_config()
        return config
    except (ConfigError, PipelineConfigError, BlessingConfigError) as e:
        # name the file the bad key came from (the configs are checked before any component runs)
        files = {"model config": args.model_config, "train config": args.train_config,
                 "blessing": getattr(args, "blessing", None)}
        for source, path in files.items():
            if path and str(e).startswith(source):
                raise type(e)(f"{path}: {e}") from None
        raise


def _build_pipeline_config(args, model_config, train, blessing):
    from pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig

    return PipelineConfig(data=args.data, spec=args.spec, output=args.output, model=args.model,
                          model_config=model_config, train=train, blessing=blessing,
                          span=getattr(args, "span", None), eval_split=args.eval_split,
                          train_spans=args.train_spans, tune=args.tune, max_trials=args.max_trials,
                          warm_start=getattr(args, "warm_start", False),
                          transform_cache=getattr(args, "transform_cache", False),
                          bulk_inference=getattr(args, "bulk_inference", False),
                          beam_args=tuple(args.beam_arg) if args.beam_arg else DEFAULT_BEAM_ARGS,
                          enable_cache=not args.no_cache,
                          max_bad_fraction=args.max_bad_fraction,
                          shuffle_examples=not getattr(args, "no_example_shuffle", False),
                          max_scenario_shift=getattr(args, "max_scenario_shift", 0.1),
                          canary=args.canary, keep_versions=args.keep_versions)


def cmd_run(args) -> int:
    return run_and_report(_pipeline_config(args)).status.exit_code


def run_and_report(config):
    """Run the pipeline with progress lines on the console, print and write its summary (also when the run is
    refused or fails: ``run_summary.json`` then holds the status, the error and the component states)."""
    from pipeline.run import PipelineRunError, run_pipeline

    try:
        result = run_pipeline(config, echo=_progress)
    except PipelineRunError as e:
        if e.result is not None:
            _write_run_summary(e.result.to_dict(), config.output)
        raise
    report_run(result)
    return result


def _write_run_summary(summary, output: str) -> str:
    path = os.path.join(output, "run_summary.json")
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    print(f"\nrun summary:  {path} (status: {summary['status']})")
    return path


def report_run(result) -> None:
    """Print where the model and evaluation are, and the AUC table (with oracle AUC on synthetic data)."""
    from pipeline import results
    from pipeline.eval_config import evaluated_heads

    spec = result.config.load_spec()
    print(f"\nevaluation:   {result.eval_uri}")
    print(f"blessed:      {result.blessed}")
    print(f"pushed model: {result.pushed_dir or 'not pushed (model not blessed)'}")
    print(f"report:       {result.report_path}")
    if not result.blessed:
        from pipeline.report import blessing_failures, find_evaluation, read_evaluation

        for head, where, threshold, value, _ in blessing_failures(
                read_evaluation(find_evaluation(result.config.output)).validation):
            print(f"  not blessed: {head} / {where}: {value} fails {threshold}")
    metrics = results.read_tfma_metrics(result.eval_uri)
    splits = result.config.span_plan().evaluator_splits
    oracle = results.oracle_aucs(spec, result.examples_uri, splits) if result.examples_uri else {}
    heads = evaluated_heads(spec, sorted({h for h, _ in metrics}))
    print("\n" + results.format_table(metrics, oracle, heads))
    summary = result.to_dict()
    summary["metrics"] = {f"{h}/{s}": m for (h, s), m in metrics.items()}
    summary["oracle_auc"] = {f"{h}/{s}": v for (h, s), v in oracle.items()}
    _write_run_summary(summary, result.config.output)


def cmd_compile_kubeflow(args) -> int:
    from pipeline.kubeflow_v2_runner import compile_pipeline, task_names

    config = _pipeline_config(args)
    path = compile_pipeline(config, args.json, image=args.image)
    print(f"compiled {len(task_names(path))} steps ({', '.join(task_names(path))}) -> {path}")
    return 0


# ---------------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from models.registry import describe_models

    for name, outputs, ref in describe_models():
        print(f"{name:16} outputs: {outputs}\n{'':16} reference: {ref}")
    return 0


# ---------------------------------------------------------------------------- spec
def cmd_spec_infer(args) -> int:
    """Draft a feature spec from a data sample (features.spec_infer); YAML to stdout or --output."""
    from features.spec_infer import infer_spec, summary

    draft = infer_spec(args.file, rows=args.rows, fmt=args.format, name=args.name, source=args.output)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(draft.text)
        print(f"spec infer: wrote {args.output}: {summary(draft)}")
    else:
        sys.stdout.write(draft.text)
    for warning in draft.warnings:
        print(f"msmt spec infer: TODO: {warning}", file=sys.stderr)
    if draft.warnings:
        print(f"msmt spec infer: the draft has {len(draft.warnings)} point(s) to check (lines marked TODO); edit "
              f"it before 'msmt run --spec'", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- data
def cmd_data_prepare(args) -> int:
    """Convert a public dataset download into impression logs + spec (features.datasets)."""
    from features.datasets import prepare, specific_options

    kwargs = {k: getattr(args, k) for k in specific_options() if getattr(args, k, None) is not None}
    summary = prepare(args.name, input=args.input, output=args.output, overwrite=args.overwrite,
                      max_bad_fraction=args.max_bad_fraction, progress_every=args.progress_every, **kwargs)
    out = summary["output"]
    print(f"data prepare {args.name}: {summary['rows_read_total']:,} input lines -> train "
          f"{summary['rows_written']['train']:,} / test {summary['rows_written']['test']:,} rows in "
          f"{summary['seconds']:.1f}s")
    for split in ("train", "test"):
        scen = ", ".join(f"{k}: {v:,}" for k, v in summary["scenarios"][split].items())
        labels = ", ".join(f"{k}: {v:,}" for k, v in summary["labels"][split].items())
        print(f"  {split:5} scenarios {scen or '-'}; labels {labels or '-'}")
    if summary["rows_skipped"]:
        print("  skipped: " + ", ".join(f"{k}: {v:,}" for k, v in summary["rows_skipped"].items())
              + f" ({summary['bad_rows']:,} bad lines)")
    print(f"  wrote {out}/{{train,test}}/impressions.csv, {out}/spec.yaml, {out}/prepare_summary.json")
    print(f"  next: msmt run --data {out}/train/impressions.csv --spec {out}/spec.yaml --output RUN_DIR")
    return 0


# ---------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    """generate-data + run on the synthetic spec: trains on the first two daily spans, evaluates on the third."""
    from pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig

    data_dir = os.path.join(args.output, "data")
    t0 = time.time()
    gen_args = argparse.Namespace(rows=args.rows, days=3, seed=args.seed, users=20_000, items=5_000, drift=0.05,
                                  history_length=0, format="csv", output=data_dir)
    cmd_generate_data(gen_args)
    config = PipelineConfig(data=os.path.join(data_dir, "span-{SPAN}", "impressions.csv"), spec="synthetic",
                            output=os.path.join(args.output, "run"), model=args.model,
                            train={"epochs": args.epochs, "seed": args.seed} if args.epochs else {"seed": args.seed},
                            beam_args=tuple(args.beam_arg) if args.beam_arg else DEFAULT_BEAM_ARGS,
                            shuffle_examples=not args.no_example_shuffle)
    result = run_and_report(config)
    print(f"\ndemo finished in {time.time() - t0:.1f}s")
    return result.status.exit_code


# ---------------------------------------------------------------------------- parser
def _add_run_options(p) -> None:
    from features.row_check import DEFAULT_MAX_BAD_FRACTION
    from serving.versions import DEFAULT_KEEP_VERSIONS
    from features.spec import builtin_spec_names
    from pipeline.spans import EVAL_SPLIT_MODES

    p.add_argument("--data", required=True,
                   help="file pattern of the impression logs (.csv, .tfrecord[.gz] or .parquet), "
                        "e.g. '/logs/span-*/impressions.csv' (quote it)")
    p.add_argument("--spec", required=True,
                   help="feature spec YAML, or a built-in name: " + ", ".join(builtin_spec_names()))
    p.add_argument("--output", required=True,
                   help="run directory: pipeline_root/, metadata.sqlite, serving/<model>/<version>/, logs/")
    p.add_argument("--model", default="shared_bottom", help="zoo model (see 'msmt models'); default shared_bottom")
    p.add_argument("--model-config", help="YAML file with the model's config (keys of its dataclass)")
    p.add_argument("--train-config", help="YAML file with TrainConfig keys (batch_size, epochs, learning_rate, ...)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides --train-config)")
    p.add_argument("--batch-size", type=int, help="global batch size (overrides --train-config)")
    p.add_argument("--learning-rate", type=float, help="Adam learning rate (overrides --train-config)")
    p.add_argument("--seed", type=int, help="random seed (overrides --train-config)")
    p.add_argument("--span", help="with {SPAN} in --data (e.g. 'logs/span-{SPAN}/impressions.csv'): the daily span "
                                  "to evaluate (next-span) or read (hash), an integer or 'latest' (default: latest)")
    p.add_argument("--eval-split", choices=EVAL_SPLIT_MODES, default="next-span",
                   help="next-span (default): with {SPAN} in --data and an earlier span present, train on the "
                        "earlier spans and evaluate and gate on the evaluated span, as a daily schedule would; "
                        "hash: a random (hash) split of one span, which leaks users, items and the day's effects "
                        "into the evaluation and overstates AUC")
    p.add_argument("--train-spans", type=int, metavar="K",
                   help="next-span evaluation: train on the K spans before the evaluated one (default: all)")
    p.add_argument("--min-auc", type=float,
                   help="blessing: minimum AUC of every gated head (default 0.5, docs/evaluation.md)")
    p.add_argument("--max-bad-fraction", type=float, default=DEFAULT_MAX_BAD_FRACTION,
                   help="CSV input: share of bad rows (malformed, wrong type, NaN/inf, empty id, missing, "
                        "out-of-range or impossible label) that are quarantined and skipped; above it the run "
                        f"fails (default {DEFAULT_MAX_BAD_FRACTION}; 0 = fail on any bad row). Bad rows and reasons: "
                        "<examples>/quarantine/")
    p.add_argument("--max-scenario-shift", type=float, default=0.1,
                   help="ExampleValidator drift limit: the largest change of any scenario's share against the "
                        "last accepted span (L-infinity; default 0.1); a larger shift, a changed column type or "
                        "a missing column stops the run before Transform, and nothing is pushed")
    p.add_argument("--canary", action="store_true",
                   help="serve a newly blessed version as 'canary' beside the 'stable' one (TF Serving version "
                        "labels in models.config) instead of making it stable; 'msmt serving promote' or "
                        "'rollback' decides later")
    p.add_argument("--keep-versions", type=int, default=DEFAULT_KEEP_VERSIONS,
                   help=f"the Pusher keeps the newest N versions on disk, never deleting a labelled one "
                        f"({DEFAULT_KEEP_VERSIONS})")
    p.add_argument("--max-auc-drop", type=float,
                   help="blessing: largest tolerated AUC drop of any gated head against the last blessed model, "
                        "overall and per scenario (default 0.01, docs/evaluation.md)")
    p.add_argument("--blessing", help="YAML file with blessing thresholds per head and scenario "
                                      "(keys of pipeline.eval_config.BlessingConfig)")
    p.add_argument("--tune", action="store_true",
                   help="add TFX's Tuner before the Trainer: KerasTuner random search over the model's search space "
                        "(learning rate, epochs, loss weighting, embedding size, L2, dropout, model-specific sizes; "
                        "keys set in --model-config / --train-config stay fixed), scored by the normalized "
                        "cross-entropy of the served heads on held-out training-span data; the Trainer trains "
                        "with the best point")
    p.add_argument("--max-trials", type=int, default=8, help="--tune: trials of the search (default 8)")
    p.add_argument("--warm-start", action="store_true",
                   help="initialise the model from the last blessed model (same model, config and table sizes)")
    p.add_argument("--transform-cache", action="store_true",
                   help="Transform reuses its analysis of the spans an earlier run analysed (TFT's analyzer "
                        "cache; for a window that moves by a span a day). Off (default): one joint analysis of "
                        "all training spans, which was as fast at 200k rows a span and keeps an unchanged rerun "
                        "cached (docs/benchmarks.md)")
    p.add_argument("--bulk-inference", action="store_true",
                   help="add a BulkInferrer that scores the eval split with the blessed model")
    _add_beam_options(p)
    p.add_argument("--no-cache", action="store_true", help="re-execute every component")


def _add_beam_options(p) -> None:
    """Options of the Beam components, shared by ``run`` and ``demo``."""
    p.add_argument("--beam-arg", action="append",
                   help="Beam pipeline argument, repeatable (default: DirectRunner in_memory); e.g. "
                        "--beam-arg=--runner=FlinkRunner")
    p.add_argument("--no-example-shuffle", action="store_true",
                   help="ExampleGen writes the rows in reading order instead of shuffling each split: on the "
                        "default in-process Beam runner the shuffle holds the whole split in memory (a 5M-row "
                        "ExampleGen peaked at 13 GiB); use it for large local runs of logs that are not sorted "
                        "(the Trainer still shuffles within a 20k-example buffer)")


def _add_data_parser(sub) -> None:
    """``msmt data prepare NAME --input DIR --output DIR``: the dataset adapters of features/datasets."""
    from features.datasets import ADAPTERS, names
    from features.row_check import DEFAULT_MAX_BAD_FRACTION

    dp = sub.add_parser("data", help="public datasets: convert a download into impression logs + a spec",
                        description="Public dataset tools. 'msmt data prepare NAME --input DIR --output DIR' "
                                    "converts a download (" + ", ".join(names()) + ") into impression logs.")
    data_sub = dp.add_subparsers(dest="data_action", metavar="ACTION")
    dp.set_defaults(func=lambda _args: (dp.print_help(), 2)[1])
    datasets = "\n\n".join(ADAPTERS[n].help for n in names())
    p = data_sub.add_parser(
        "prepare", help=f"convert a public dataset download ({', '.join(names())}) into impression logs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert the public download in --input DIR into this project's impression log, streaming "
                    "with bounded memory.\n\n" + datasets + "\n\n"
                    "Writes (the same for every dataset):\n"
                    "  OUTPUT/train/impressions.csv, OUTPUT/test/impressions.csv   header row, one row per impression\n"
                    "  OUTPUT/spec.yaml             feature spec of these columns (msmt run --spec); scenario values\n"
                    "                               = those seen; a header comment gives the source and the choices\n"
                    "  OUTPUT/prepare_summary.json  rows read per file, written per split, skipped by reason, per-\n"
                    "                               scenario and label counts, bad-line examples, seconds\n"
                    "OUTPUT appears only when the run succeeds (it is written under a hidden temporary name and\n"
                    "renamed). Bad lines are skipped, counted by reason and reported with file, line and column.\n"
                    "Details: features/datasets/<NAME>.py.")
    p.add_argument("name", metavar="NAME", choices=names(), help="dataset: " + ", ".join(names()))
    p.add_argument("--input", required=True, metavar="DIR", help="directory of the download (see above)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="output directory; must be absent or empty unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT when it holds an earlier 'msmt data prepare' output")
    p.add_argument("--max-bad-fraction", type=float, default=DEFAULT_MAX_BAD_FRACTION,
                   help="share of bad lines (malformed, wrong field count, non-integer id, NaN, bad label, failed "
                        "join) per input file that are skipped; above it the run fails and writes nothing "
                        f"(default {DEFAULT_MAX_BAD_FRACTION}, as the pipeline's; 0 = fail on any bad line)")
    p.add_argument("--progress-every", type=int, default=1_000_000, metavar="N",
                   help="print a progress line to stderr every N lines of a file (1000000)")
    p.add_argument("--country", metavar="CODE",
                   help="aliexpress: the country of input files whose path names none (e.g. NL)")
    p.add_argument("--test-day", metavar="YYYY-MM-DD",
                   help="alimama: the test day in UTC+8 (default 2017-05-13, the release's last day); "
                        "earlier days are train")
    p.add_argument("--conversion-window-hours", type=float, metavar="H",
                   help="alimama: a buy (cart/fav for raction) of the same (cate, brand) within H hours after "
                        "the impression labels it (default 24; used with behavior_log.csv)")
    p.set_defaults(func=cmd_data_prepare)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.run_status import exit_codes_help

    parser = argparse.ArgumentParser(prog="msmt", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate-data", help="synthetic impression logs with ground-truth probabilities",
                       description="Write synthetic multi-scenario impression logs, one directory per daily span "
                                   "(span-<d>/impressions.csv|.tfrecord.gz), with the true label probabilities "
                                   "in p_* columns. The generative model is documented in features/synthetic.py.")
    g.add_argument("--output", required=True, help="output directory")
    g.add_argument("--rows", type=int, default=200_000, help="impressions to generate (200000)")
    g.add_argument("--days", type=int, default=3, help="daily spans (3)")
    g.add_argument("--seed", type=int, default=0, help="random seed (0)")
    g.add_argument("--users", type=int, default=20_000, help="number of users (20000)")
    g.add_argument("--items", type=int, default=5_000, help="number of items (5000)")
    g.add_argument("--drift", type=float, default=0.05, help="day-to-day drift strength (0.05)")
    g.add_argument("--history-length", type=int, default=0,
                   help="add a recent_items column: each user's last N items, drawn from their latent "
                        "preferences, for a sequence feature (spec synthetic_sequence); 0 = none (0)")
    g.add_argument("--format", choices=("csv", "tfrecord", "both"), default="csv", help="file format (csv)")
    g.set_defaults(func=cmd_generate_data)

    r = sub.add_parser("run", help="run the TFX pipeline locally (LocalDagRunner, SQLite MLMD)",
                       description="ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> "
                                   "Trainer -> Evaluator -> Pusher, with progress per component. Prints the "
                                   "pushed model, the evaluation and AUC per head and scenario, and writes "
                                   "OUTPUT/run_summary.json with a top-level 'status'.",
                       epilog=exit_codes_help())
    _add_run_options(r)
    r.set_defaults(func=cmd_run)

    k = sub.add_parser("compile-kubeflow", help="compile the pipeline to Kubeflow V2 / Vertex AI JSON (offline)",
                       description="Compile the same pipeline as 'msmt run' with TFX's KubeflowV2DagRunner to a KFP "
                                   "PipelineSpec JSON. --data and --output must be paths the cluster's pods can "
                                   "read and write; every step runs in --image (build it from the Dockerfile).")
    _add_run_options(k)
    k.add_argument("--image", default="msmt-rank:latest", help="container image of every step (msmt-rank:latest)")
    k.add_argument("--json", default="msmt_pipeline.json", help="output JSON path (msmt_pipeline.json)")
    k.set_defaults(func=cmd_compile_kubeflow)

    from pipeline.report import add_evaluate_parser
    from pipeline.skew import add_skew_parser
    from serving.check import add_export_check_parser
    from serving.scoring import add_score_parser
    from serving.versions import add_serving_parser

    add_evaluate_parser(sub)
    add_export_check_parser(sub)
    add_score_parser(sub)
    add_serving_parser(sub)
    add_skew_parser(sub)

    s = sub.add_parser("spec", help="feature spec tools: draft a spec from a data sample",
                       description="Feature spec tools. 'msmt spec infer FILE' drafts a spec from a sample.")
    spec_sub = s.add_subparsers(dest="spec_action", metavar="ACTION")
    s.set_defaults(func=lambda _args: (s.print_help(), 2)[1])
    si = spec_sub.add_parser(
        "infer", help="draft a feature spec YAML from a CSV / Parquet / TFRecord sample",
        description="Read up to --rows rows of FILE (CSV with a header, Parquet, or TFRecord of tf.Example, gzip "
                    "or not; a quoted glob pattern reads its files in order) and write a draft feature spec: "
                    "dtypes, roles (id, scenario, categorical, numeric, multivalent), labels, priors and ignored "
                    "columns, with a comment on every line that says why. Lines marked TODO need a decision. "
                    "The draft loads as a spec; edit it, then pass it to 'msmt run --spec'.")
    si.add_argument("file", metavar="FILE", help="a sample of the impression log (.csv[.gz], .parquet, "
                                                 ".tfrecord[.gz]), or a quoted glob pattern")
    si.add_argument("--rows", type=int, default=10_000, help="rows to read (10000)")
    si.add_argument("--output", "-o", help="write the draft here (default: stdout)")
    si.add_argument("--format", choices=("csv", "parquet", "tfrecord"),
                    help="input format (default: from the file name)")
    si.add_argument("--name", help="the spec's name (default: the file name)")
    si.set_defaults(func=cmd_spec_infer)

    _add_data_parser(sub)

    m = sub.add_parser("models", help="list the models of the zoo", description="List models, outputs, papers.")
    m.set_defaults(func=cmd_models)

    d = sub.add_parser("demo", help="generate synthetic logs and run the whole pipeline on them",
                       description="generate-data + run on built-in synthetic data; prints AUC per head and "
                                   "scenario beside the oracle (Bayes) AUC.",
                       epilog=exit_codes_help())
    d.add_argument("--output", required=True, help="demo directory (data/ and run/ inside)")
    d.add_argument("--rows", type=int, default=200_000, help="impressions (200000)")
    d.add_argument("--model", default="shared_bottom", help="zoo model (see 'msmt models'); default shared_bottom")
    d.add_argument("--epochs", type=int, help="training epochs (default: the model's train default)")
    d.add_argument("--seed", type=int, default=0, help="random seed (0)")
    _add_beam_options(d)
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from features.spec import SpecError
    from models.config import ConfigError
    from pipeline.config import PipelineConfigError
    from pipeline.run import PipelineRunError
    from pipeline.run_status import RunStatus

    try:
        return args.func(args)
    except PipelineRunError as e:
        print(f"msmt {args.command}: error: {e}", file=sys.stderr)
        return e.status.exit_code
    except (SpecError, ConfigError, PipelineConfigError, ValueError, FileNotFoundError) as e:
        print(f"msmt {args.command}: error: {e}", file=sys.stderr)
        return RunStatus.FAILED.exit_code


if __name__ == "__main__":
    sys.exit(main())
