"""Serving benchmark (``make bench-serving``): ``serving_default`` latency per batch size and batch-scoring speed.

1. Online path: the exported model is loaded in-process with ``tf.saved_model.load``; for each batch size
   (1, 16, 128, 512) ``serving_default`` is called on serialized tf.Examples of real rows, warm-up calls
   excluded; p50 / p99 / mean latency per call and rows/s (batch size / mean latency).
2. Offline path: ``serving.scoring.score`` (Beam DirectRunner, tfx-bsl RunInference) scores the first
   ``--rows`` CSV rows to Parquet in a child process, and a small run of ``--small-rows`` rows gives the fixed
   cost (pipeline start, model load), so the report shows end-to-end rows/s and the steady-state rate.
3. The CSV -> tf.Example conversion alone (pure Python, in-process), the input side of batch scoring.

Writes ``report.md`` and ``results.json`` into ``--output`` (default ``build/bench-serving``) and prints the
report. Timings are measured once on whatever else the machine is doing (the load average is recorded);
they are reported, never asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Sequence  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from serving import scoring  # noqa: E402

DEMO_MODELS = os.path.join(REPO, "build", "demo", "run", "serving", "msmt")
DEMO_DATA = os.path.join(REPO, "build", "demo", "data", "span-*", "impressions.csv")
BATCH_SIZES = (1, 16, 128, 512)

SCORE_CHILD = r"""
import json, sys
from serving import scoring
model, data, out, spec = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None
json.dump(scoring.score(model, data, out, "parquet", spec=spec, overwrite=True), open(sys.argv[1], "w"))
"""


def find_model(path: str = None) -> str:
    """``--model``, else the newest version pushed by ``make demo``; exits with a hint when there is none."""
    try:
        return scoring.resolve_model_dir(path or DEMO_MODELS)
    except scoring.ScoringError as e:
        hint = "" if path else f"no model under {DEMO_MODELS}: run `make demo` first, or pass --model MODEL_DIR\n"
        sys.exit(f"{hint}{e}")


def read_rows(pattern: str, layout: scoring.ScoringLayout, limit: int) -> List[Dict[str, str]]:
    """The first ``limit`` CSV rows of the files matching ``pattern``, as header -> text dicts."""
    rows: List[Dict[str, str]] = []
    for path in scoring.match_files(pattern):
        with open(path, newline="", encoding="utf-8") as fh:
            rows += [r for _, r in itertools.islice(scoring.iter_csv_rows(fh, path, layout), limit - len(rows))]
        if len(rows) >= limit:
            break
    return rows


def write_csv(rows: Sequence[Dict[str, str]], path: str) -> str:
    out = io.StringIO()
    header = list(rows[0])
    out.write(scoring.csv_line(dict(zip(header, header)), header) + "\n")
    out.writelines(scoring.csv_line(r, header) + "\n" for r in rows)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(out.getvalue())
    return path


def time_conversion(rows: Sequence[Dict[str, str]], layout: scoring.ScoringLayout) -> Dict[str, float]:
    """CSV row -> serialized tf.Example throughput (pure Python), and the examples themselves."""
    start = time.perf_counter()
    records = [scoring.convert_row(r, layout, "bench")[1] for r in rows]
    seconds = time.perf_counter() - start
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": len(rows) / seconds, "records": records}


def time_serving(model_dir: str, records: Sequence[bytes], batch_sizes: Sequence[int], calls: int,
                 warmup: int) -> List[Dict[str, float]]:
    """Latency of ``serving_default`` per call for each batch size (distinct batches, cycled)."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[scoring.SIGNATURE]
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


def time_score(model_dir: str, data: str, out_dir: str, spec: str) -> Dict:
    """``scoring.score`` to Parquet in a child process (a process that ran Beam may crash at exit)."""
    result_path = os.path.join(out_dir, "score_result.json")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCORE_CHILD, result_path, model_dir, data,
                           os.path.join(out_dir, "scores"), spec or ""], cwd=REPO, env=env,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if not os.path.exists(result_path):
        sys.exit(f"scoring child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    with open(result_path) as fh:
        result = json.load(fh)
    os.remove(result_path)
    return {"rows": result["rows_out"], "score_seconds": result["seconds"], "process_seconds": wall,
            "rows_per_s": result["rows_out"] / result["seconds"]}


def _steady_state(runs: Sequence[Dict]) -> str:
    """Rows/s without the fixed cost, from the difference between the small and the large run."""
    if len(runs) < 2:
        return "(one scoring run only: no steady-state rate)"
    small, large = runs[0], runs[-1]
    steady = (large["rows"] - small["rows"]) / max(large["score_seconds"] - small["score_seconds"], 1e-9)
    fixed = small["score_seconds"] - small["rows"] / steady
    return (f"steady-state scoring rate (difference of the two runs): **{steady:,.0f} rows/s**; fixed cost per "
            f"run (pipeline start, model load): {fixed:.1f} s")


def report(results: Dict) -> str:
    serving = results["serving"]
    runs = results["scoring"]
    lines = [
        "# Serving benchmark",
        "",
        f"model `{results['model_dir']}` (heads {', '.join(results['heads'])}); data `{results['data']}`",
        f"host: {results['cpus']} CPUs, load average {results['load_average']:.1f} at start, Python "
        f"{results['python']}, TensorFlow {results['tensorflow']}, Beam {results['beam']}; {results['date']}",
        "",
        f"## serving_default in-process (`tf.saved_model.load`), {results['warmup']} warm-up calls excluded",
        "",
        "| batch size | calls | p50 ms | p99 ms | mean ms | rows/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['batch']} | {s['calls']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} | "
              f"{s['rows_per_s']:,.0f} |" for s in serving]
    lines += [
        "",
        "## batch scoring: `msmt score` (Beam DirectRunner in_memory, 1 worker, tfx-bsl RunInference), "
        "CSV -> Parquet",
        "",
        "| rows | score() s | rows/s end to end | child process s |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['rows']:,} | {r['score_seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['process_seconds']:.1f} |"
              for r in runs]
    conv = results["conversion"]
    lines += ["", _steady_state(runs), "",
        f"CSV row -> tf.Example conversion alone (pure Python, in-process): {conv['rows_per_s']:,.0f} rows/s "
        f"({conv['rows']:,} rows)",
        "",
        "Measured once, on a machine possibly busy with other work; ratios within this run are more telling "
        "than absolute times. Nothing here is asserted.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="exported model (default: newest under build/demo/run/serving/msmt)")
    p.add_argument("--data", default=DEMO_DATA, help="CSV impression logs (default: the demo's)")
    p.add_argument("--spec", default=None,
                   help="feature spec (default: the model's export metadata, else synthetic)")
    p.add_argument("--rows", type=int, default=20_000, help="rows scored by score() (20000)")
    p.add_argument("--small-rows", type=int, default=500, help="rows of the small score() run (500)")
    p.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)), help="serving batch sizes (1,16,128,512)")
    p.add_argument("--calls", type=int, default=300, help="timed serving_default calls per batch size (300)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up calls per batch size, not timed (10)")
    p.add_argument("--output", default=os.path.join(REPO, "build", "bench-serving"), help="report directory")
    args = p.parse_args(argv)

    model_dir = find_model(args.model)
    spec = args.spec or (None if scoring.read_export_metadata(model_dir) else "synthetic")
    layout = scoring.load_layout(model_dir, spec)
    os.makedirs(args.output, exist_ok=True)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    load_average = os.getloadavg()[0]
    print(f"bench-serving: model {model_dir}; reading {args.rows:,} rows of {args.data}", flush=True)
    rows = read_rows(args.data, layout, args.rows)
    if len(rows) < args.rows:
        print(f"bench-serving: only {len(rows):,} rows available", flush=True)
    scoring_runs = []
    for n in sorted({min(args.small_rows, len(rows)), len(rows)}):
        data = write_csv(rows[:n], os.path.join(args.output, f"input-{n}.csv"))
        print(f"bench-serving: score() on {n:,} rows", flush=True)
        scoring_runs.append(time_score(model_dir, data, args.output, spec))
        os.remove(data)
    conversion = time_conversion(rows, layout)
    records = conversion.pop("records")
    print(f"bench-serving: serving_default latency, batch sizes {batch_sizes}", flush=True)
    serving = time_serving(model_dir, records, batch_sizes, args.calls, args.warmup)

    import apache_beam
    import tensorflow as tf

    results = {"model_dir": model_dir, "heads": list(layout.heads), "data": args.data, "cpus": os.cpu_count(),
               "load_average": load_average, "python": platform.python_version(), "tensorflow": tf.__version__,
               "beam": apache_beam.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "warmup": args.warmup,
               "serving": serving, "scoring": scoring_runs, "conversion": conversion}
    text = report(results)
    with open(os.path.join(args.output, "report.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(text)
    print(f"report: {os.path.join(args.output, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
