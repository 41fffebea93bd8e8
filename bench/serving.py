"""Serving benchmark (``make bench-serving``): online latency, and batch scoring against the model alone.

1. Online path: ``serving_default`` loaded in-process (``tf.saved_model.load``) and called on serialized
   tf.Examples of real rows for each batch size (1, 16, 128, 512), warm-up calls excluded: p50 / p99 / mean
   latency per call and rows/s. Measured on the first model.
2. Model-only ceiling, per model: the call batch scoring makes (``serving.scoring.ScoringModel.predict``,
   i.e. ``predict_raw`` on columnar tensors) on typed batches of ``BATCH_ROWS`` rows already in memory.
3. Batch scoring, per model, input format (CSV, Parquet) and size (``--sizes``, default 200k and 1M rows;
   add 5M with ``--sizes 200000,1000000,5000000``): ``serving.scoring.score`` to Parquet in a child process
   (a process that ran Beam may crash at exit), which reports its own seconds and peak RSS. The inputs are
   the demo's rows repeated to the size. The steady-state rate comes from the difference between the
   smallest and the largest size (the fixed cost of starting Beam and loading the model cancels), and is
   reported as a ratio to the ceiling of 2.

Models: ``--model [NAME=]DIR`` (repeatable), else the newest model pushed by ``make demo``; ``--zoo
M1,M2,...`` (or ``--zoo all``) adds each zoo model with its default config, trained for a few steps by the
Trainer's ``run_fn`` on the demo's Transform output into ``OUTPUT/zoo/M`` (kept for later runs): scoring
speed does not depend on how well a model is trained.

Writes ``report.md`` and ``results.json`` into ``--output`` (default ``build/bench-serving``) and prints the
report; ``--compare OLD/results.json`` adds a before/after table of the scoring rates. Timings are measured
once on whatever else the machine is doing (the load average is recorded); they are reported, never
asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from features.records import MISSING_VALUES  # noqa: E402
from serving import scoring  # noqa: E402

DEMO_MODELS = os.path.join(REPO, "build", "demo", "run", "serving", "msmt")
DEMO_DATA = os.path.join(REPO, "build", "demo", "data", "span-*", "impressions.csv")
BATCH_SIZES = (1, 16, 128, 512)
FORMATS = ("csv", "parquet")
ZOO_STEPS = 50

SCORE_CHILD = r"""
import json, resource, sys
from serving import scoring
model, data, out = sys.argv[2], sys.argv[3], sys.argv[4]
result = scoring.score(model, data, out, "parquet", overwrite=True)
result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
json.dump(result, open(sys.argv[1], "w"))
"""


def say(msg: str) -> None:
    print(f"bench-serving: {msg}", flush=True)


def find_model(path: Optional[str] = None) -> str:
    """``path``, else the newest version pushed by ``make demo``; exits with a hint when there is none."""
    try:
        return scoring.resolve_model_dir(path or DEMO_MODELS)
    except scoring.ScoringError as e:
        hint = "" if path else f"no model under {DEMO_MODELS}: run `make demo` first, or pass --model MODEL_DIR\n"
        sys.exit(f"{hint}{e}")


def named_model(arg: str):
    """``NAME=DIR`` or ``DIR`` (named after its directory) -> (name, model directory); ``demo=`` is the demo's."""
    name, _, path = arg.rpartition("=") if "=" in arg else ("", "", arg)
    model_dir = find_model(path or None)
    return name or os.path.basename(path.rstrip("/")), model_dir


ZOO_CHILD = r"""
import json, os, sys
from models.trainer import run_fn
from pipeline.results import split_patterns
from features.spec import resolve_spec

transform, examples, out_dir, model = sys.argv[1:5]


class FnArgs:  # what the TFX Trainer hands to run_fn
    pass


a = FnArgs()
a.custom_config = {"spec": resolve_spec("synthetic").to_dict(), "model": model, "train": {"epochs": 1}}
a.transform_graph_path = transform
a.train_files, a.eval_files = split_patterns(examples, "train"), split_patterns(examples, "eval")
a.train_steps, a.eval_steps = ZOO_STEPS, 2
a.serving_model_dir, a.model_run_dir = os.path.join(out_dir, "serving"), os.path.join(out_dir, "run")
run_fn(a)
"""


def zoo_model(name: str, out_dir: str) -> str:
    """Model ``name`` with its default config, trained for ``ZOO_STEPS`` steps by the Trainer's ``run_fn`` on
    the Transform output of ``make demo`` and exported into ``out_dir/zoo/NAME`` (kept for later runs):
    scoring speed does not depend on how well a model is trained."""
    from pipeline.results import newest_artifact

    serving = os.path.join(out_dir, "zoo", name, "serving")
    if not os.path.exists(os.path.join(serving, "saved_model.pb")):
        run = os.path.dirname(os.path.dirname(os.path.dirname(find_model())))  # build/demo/run
        transform, examples = (newest_artifact(run, "Transform", o) for o in ("transform_graph",
                                                                             "transformed_examples"))
        say(f"{name}: training {ZOO_STEPS} steps on the demo's Transform output into {serving}")
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, "-c", ZOO_CHILD.replace("ZOO_STEPS", str(ZOO_STEPS)), transform, examples,
                        os.path.dirname(serving), name], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return serving


def source_table(pattern: str):
    """Every row of the CSV files matching ``pattern``, all columns as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tables = []
    for path in scoring.match_files(pattern):
        names = pacsv.open_csv(path).schema.names
        tables.append(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names})))
    return pa.concat_tables(tables)


def write_inputs(table, rows: int, out_dir: str) -> Dict[str, str]:
    """The first ``rows`` rows of ``table`` repeated as needed, as ``input-N.csv`` and ``input-N.parquet``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    paths = {fmt: os.path.join(out_dir, f"input-{rows}.{fmt}") for fmt in FORMATS}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    chunk = 500_000
    with pacsv.CSVWriter(paths["csv"], table.schema) as csv_out, \
            pq.ParquetWriter(paths["parquet"], table.schema) as pq_out:
        for start in range(0, rows, chunk):
            part = table.take(pa.array(np.arange(start, min(start + chunk, rows)) % table.num_rows))
            csv_out.write_table(part)
            pq_out.write_table(part)
    return paths


def typed_batches(table, layout: scoring.ScoringLayout, rows: int):
    """Typed batches of ``BATCH_ROWS`` rows (what the readers hand to the model), ``rows`` in all."""
    import pyarrow as pa

    typed = []
    for start in range(0, rows, scoring.BATCH_ROWS):
        part = table.take(pa.array(np.arange(start, min(start + scoring.BATCH_ROWS, rows)) % table.num_rows))
        typed.append(scoring.typed_batch(part.combine_chunks().to_batches()[0], layout, None, str))
    return typed


def _rate(call, items, seconds: float) -> float:
    """rows/s of ``call(item)`` over ``items`` (cycled) for about ``seconds``, 2 warm-up calls excluded."""
    for item in items[:2]:
        call(item)
    rows, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        rows += call(items[i % len(items)])
        i += 1
    return rows / (time.perf_counter() - start)


def time_ceiling(model_dir: str, batches, seconds: float = 10.0) -> Dict[str, float]:
    """The model alone: ``predict_raw`` on tensors built beforehand (the ceiling), and
    ``ScoringModel.predict`` on typed Arrow batches (the same call plus the Arrow -> tensor conversion)."""
    import tensorflow as tf

    model = scoring.ScoringModel(model_dir)
    raw = tf.saved_model.load(model_dir).signatures[scoring.PREDICT_RAW_SIGNATURE]
    tensors = [{k: tf.constant(b.column(k).fill_null(MISSING_VALUES[d.name]).to_numpy(zero_copy_only=False), d)
                for k, d in model.raw_inputs.items()} for b in batches]
    return {"batch": scoring.BATCH_ROWS,
            "rows_per_s": _rate(lambda t: raw(**t) and len(next(iter(t.values()))), tensors, seconds),
            "predict_rows_per_s": _rate(lambda b: model.predict(b) and b.num_rows, batches, seconds)}


def time_serving(model_dir: str, records: Sequence[bytes], batch_sizes: Sequence[int], calls: int,
                 warmup: int) -> List[Dict[str, float]]:
    """Latency of ``serving_default`` per call for each batch size (distinct batches, cycled)."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[scoring.SERVING_SIGNATURE]
    results = []
    for size in batch_sizes:
        batches = [tf.constant([records[(i * size + j) % len(records)] for j in range(size)]) for i in range(4)]
        for i in range(warmup):
            signature(examples=batches[i % len(batches)])
        latencies = []
        for i in range(calls):
            start = time.perf_counter()
            signature(examples=batches[i % len(batches)])
            latencies.append(time.perf_counter() - start)
        lat = np.asarray(latencies) * 1000.0
        results.append({"batch": size, "calls": calls, "p50_ms": float(np.percentile(lat, 50)),
                        "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()),
                        "rows_per_s": size / (lat.mean() / 1000.0)})
    return results


def time_score(model_dir: str, data: str, out_dir: str) -> Dict:
    """``scoring.score`` to Parquet in a child process: rows, seconds, rows/s and the child's peak RSS."""
    result_path = os.path.join(out_dir, "score_result.json")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCORE_CHILD, result_path, model_dir, data,
                           os.path.join(out_dir, "scores")], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if not os.path.exists(result_path):
        sys.exit(f"scoring child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    with open(result_path) as fh:
        result = json.load(fh)
    os.remove(result_path)
    return {"rows": result["rows_out"], "score_seconds": result["seconds"], "process_seconds": wall,
            "rows_per_s": result["rows_out"] / result["seconds"], "peak_rss_bytes": result["peak_rss_bytes"]}


def steady_state(runs: Sequence[Dict]) -> Optional[float]:
    """rows/s without the fixed cost: the difference between the smallest and the largest run."""
    if len(runs) < 2:
        return None
    small, large = runs[0], runs[-1]
    return (large["rows"] - small["rows"]) / max(large["score_seconds"] - small["score_seconds"], 1e-9)


def report(results: Dict, compare: Optional[Dict] = None) -> str:
    lines = [
        "# Serving benchmark", "",
        f"data `{results['data']}`; host: {results['cpus']} CPUs, load average {results['load_average']:.1f} at "
        f"start, Python {results['python']}, TensorFlow {results['tensorflow']}, Beam {results['beam']}; "
        f"{results['date']}", "",
        f"## serving_default in-process, {results['warmup']} warm-up calls excluded (`{results['serving_model']}`)",
        "", "| batch size | calls | p50 ms | p99 ms | mean ms | rows/s |", "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['batch']} | {s['calls']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} | "
              f"{s['rows_per_s']:,.0f} |" for s in results["serving"]]
    lines += ["", "## batch scoring: `msmt score` (Beam DirectRunner in_memory, 1 worker) -> Parquet", "",
              "rows/s end to end (score() seconds, incl. Beam start and model load); steady state from the "
              "difference between sizes; ceiling: `predict_raw` alone on tensors built beforehand, batches of "
              f"{scoring.BATCH_ROWS:,} rows (with the Arrow -> tensor conversion: `predict` rows/s).", "",
              "| model | input | " + " | ".join(f"{r:,} rows" for r in results["sizes"])
              + " | steady rows/s | ceiling rows/s | predict rows/s | steady / ceiling | peak RSS GiB |",
              "|---|---|" + "---:|" * (len(results["sizes"]) + 5)]
    for name, entry in results["models"].items():
        for fmt in FORMATS:
            runs = entry["scoring"].get(fmt, [])
            if not runs:
                continue
            steady = steady_state(runs)
            ceiling = entry["ceiling"]["rows_per_s"]
            rss = max((r["peak_rss_bytes"] for r in runs), default=0) / 2 ** 30
            lines.append(f"| {name} | {fmt} | " + " | ".join(f"{r['rows_per_s']:,.0f}" for r in runs)
                         + f" | {steady or 0:,.0f} | {ceiling:,.0f} | {entry['ceiling']['predict_rows_per_s']:,.0f} "
                         f"| {(steady or 0) / ceiling:.2f} | {rss:.2f} |")
    if compare:
        lines += ["", f"## before / after (before: `{compare.get('label', 'compare')}`)", "",
                  "| model | input | rows | before rows/s | after rows/s | speed-up |", "|---|---|---:|---:|---:|---:|"]
        for name, entry in results["models"].items():
            old_entry = compare.get("models", {}).get(name, {})
            for fmt in FORMATS:
                old = {r["rows"]: r for r in old_entry.get("scoring", {}).get(fmt, [])}
                for r in entry["scoring"].get(fmt, []):
                    if r["rows"] in old:
                        before = old[r["rows"]]["rows_per_s"]
                        lines.append(f"| {name} | {fmt} | {r['rows']:,} | {before:,.0f} | {r['rows_per_s']:,.0f} "
                                     f"| {r['rows_per_s'] / before:.1f}x |")
    lines += ["", "Measured once, on a machine possibly busy with other work; ratios within this run are more "
              "telling than absolute times. Nothing here is asserted."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None, metavar="[NAME=]DIR",
                   help="exported model, repeatable (default: demo=newest under build/demo/run/serving/msmt)")
    p.add_argument("--zoo", default=None, help="zoo models to train briefly and measure, comma-separated, or 'all'")
    p.add_argument("--data", default=DEMO_DATA, help="CSV impression logs whose rows are repeated (the demo's)")
    p.add_argument("--sizes", default="200000,1000000", help="rows scored per run, comma-separated (200000,1000000)")
    p.add_argument("--formats", default=",".join(FORMATS), help="input formats (csv,parquet)")
    p.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)), help="serving batch sizes (1,16,128,512)")
    p.add_argument("--calls", type=int, default=300, help="timed serving_default calls per batch size (300)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up calls per batch size, not timed (10)")
    p.add_argument("--compare", default=None, metavar="RESULTS_JSON", help="earlier results.json for before/after")
    p.add_argument("--output", default=os.path.join(REPO, "build", "bench-serving"), help="report directory")
    args = p.parse_args(argv)

    os.makedirs(args.output, exist_ok=True)
    models = dict(named_model(m) for m in args.model or ([] if args.zoo else ["demo="]))
    if args.zoo:
        from models.registry import MODELS

        for name in (sorted(MODELS) if args.zoo == "all" else args.zoo.split(",")):
            models[name] = zoo_model(name, args.output)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    formats = [f for f in args.formats.split(",") if f]
    load_average = os.getloadavg()[0]
    table = source_table(args.data)
    say(f"{table.num_rows:,} source rows from {args.data}; sizes {sizes}")
    inputs = {n: write_inputs(table, n, args.output) for n in sizes}
    results = {"data": args.data, "cpus": os.cpu_count(), "load_average": load_average,
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M"), "warmup": args.warmup,
               "sizes": sizes, "models": {}}
    for name, model_dir in models.items():
        layout = scoring.load_layout(model_dir)
        batches = typed_batches(table, layout, min(table.num_rows, 8 * scoring.BATCH_ROWS))
        say(f"{name}: model-only ceiling ({model_dir})")
        entry = {"model_dir": model_dir, "heads": list(layout.heads), "ceiling": time_ceiling(model_dir, batches),
                 "scoring": {}}
        for fmt in formats:
            for n in sizes:
                say(f"{name}: score() on {n:,} {fmt} rows")
                entry["scoring"].setdefault(fmt, []).append(time_score(model_dir, inputs[n][fmt], args.output))
        results["models"][name] = entry
        if "serving" not in results:
            say(f"serving_default latency, batch sizes {args.batch_sizes}")
            records = [r for b in batches[:2] for r in scoring.serialize_examples(b)]
            results["serving_model"] = model_dir
            results["serving"] = time_serving(model_dir, records, [int(b) for b in args.batch_sizes.split(",")],
                                              args.calls, args.warmup)

    import apache_beam
    import tensorflow as tf

    results.update(tensorflow=tf.__version__, beam=apache_beam.__version__)
    compare = None
    if args.compare:
        with open(args.compare) as fh:
            compare = dict(json.load(fh), label=args.compare)
    text = report(results, compare)
    with open(os.path.join(args.output, "report.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(text)
    print(f"report: {os.path.join(args.output, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
