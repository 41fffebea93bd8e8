"""Performance benchmark (``make bench-perf``): Trainer input-pipeline efficiency and whole-pipeline scaling.

(a) Trainer input pipeline. For each ``--models`` model, on the Transform output of one pipeline run (the
    newest ``Transform/transform_graph`` and ``Transform/transformed_examples`` of ``--trainer-run``, default
    the largest run measured in (b)), the Trainer's own input function (``models.trainer.input_dataset``)
    feeds the model that ``run_fn`` builds
    (``build_model`` from the run's train config, ``compile(Adam)``, same strategy, same determinism settings,
    ``--batch-size``). The same model's Keras train step (``make_train_function``, what ``fit`` calls per step)
    is then fed from ``--cache-batches`` batches of that dataset held in memory (``take(K).cache().repeat()``):
    the ceiling without input cost. Both are timed over ``--steps`` steps after ``--warmup`` steps (trace,
    shuffle-buffer fill and cache fill excluded), ``--repeats`` times alternately; the median is reported.
    examples/s = steps x batch size / seconds; efficiency = Trainer-input examples/s / in-memory examples/s.
    The dataset repeats (``epochs=None``, ``run_fn``'s path when TrainArgs give a step count; the pipeline
    reads ``epochs`` passes) so a short split does not run out. Keras callbacks (TensorBoard) are not timed.

(b) Whole-pipeline scaling. For each ``--sizes`` N, ``python -m pipeline.cli demo --rows N --output
    OUTPUT/rows-N`` runs in a child process (skipped when ``OUTPUT/rows-N/run/run_summary.json`` exists, so a
    rerun resumes; a directory left by a failed run is deleted and run again). ``--runs DIR ...`` adds existing
    demo (or run) directories; a size they cover is not run again. From each ``run_summary.json``: wall
    seconds and peak RSS of the pipeline process tree per component (``component_seconds``,
    ``component_peak_rss``, ``peak_rss``), train / eval row counts (StatisticsGen) and the Trainer's fit time
    (``train_summary.json``).

(c) Throughput: rows/s of ExampleGen, StatisticsGen and Transform (rows = N), of the Trainer component and of
    its ``model.fit`` (train rows x epochs / seconds; the fit includes validation) and of the Evaluator
    (eval rows / seconds). The demo's one run has no baseline, so the Evaluator executor is also run alone
    (``pipeline.evaluator.evaluate_offline``) on the latest span with the run's model, without and with a
    baseline (the same model): "Evaluator alone" rows/s = the latest span's rows / its seconds.

(d) Scaling: least-squares fit of seconds ~= a * rows^b in log-log over the sizes, per component (those that
    take >= 1 s at the largest size) and for the whole run. Peak RSS: the log-log exponent of the RSS, and a
    fit RSS = fixed + a * rows^b (libraries and graphs vs the data-dependent part; b needs 3 sizes, with 2 a
    line is fitted). A component whose data part is >= 256 MiB at the largest size is flagged (~linear,
    superlinear or sublinear by b): it is what limits the largest input. The max rows that fit in
    ``--memory-gib`` are extrapolated from that fit.

Output in ``--output`` (default ``build/bench-perf``): ``report.md`` (header: label, date, git commit, machine,
load average, Beam args, versions; then the tables above, and a before/after table with ``--compare``),
``results.json`` (raw measurements, rewritten after each one; ``--report-only`` re-renders from it), PNG plots
``scaling_seconds.png`` (seconds vs rows, log-log), ``scaling_rss.png`` (peak RSS vs rows, log-log, with the
memory limit) and ``trainer_input.png``, and ``logs/demo-rows-N.log`` (the demo's output). Timings depend on
whatever else the machine is doing (the load average is recorded); they are reported, never asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from models.config import TRAIN_SUMMARY_FILE  # noqa: E402
from pipeline.results import newest_artifact, split_patterns  # noqa: E402
from pipeline.run_status import RunStatus  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO, "build", "bench-perf")
DEFAULT_SIZES = (200_000, 1_000_000, 5_000_000)
DEFAULT_MODELS = ("shared_bottom", "ple", "aem2tl")
GIB = 2 ** 30
MIN_FIT_SECONDS = 1.0  # components faster than this at the largest size are not fitted (timer noise)
MIN_GROWTH_BYTES = 256 * 2 ** 20  # a data-dependent RSS part below this at the largest size is flat
LINEAR_EXPONENT = 0.75  # growth exponents in [0.75, 1/0.75] count as ~linear
WHOLE_RUN = "whole run"
_T0 = time.time()


def say(msg: str) -> None:
    print(f"[{time.time() - _T0:7.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------- pure helpers
def fit_power(xs: Sequence[float], ys: Sequence[float]) -> Optional[Tuple[float, float]]:
    """Least-squares fit of ``y = a * x**b`` in log-log; ``(a, b)``, or None without 2 distinct x with y > 0."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    b, log_a = np.polyfit(np.log([x for x, _ in pts]), np.log([y for _, y in pts]), 1)
    return float(np.exp(log_a)), float(b)


def rows_for(limit: float, baseline: float, a: float, b: float) -> Optional[float]:
    """Rows at which ``baseline + a * rows**b`` reaches ``limit`` (None when it never does / already does)."""
    if b <= 0 or a <= 0 or limit <= baseline:
        return None
    return ((limit - baseline) / a) ** (1.0 / b)


def fmt_rows(n) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            v = n / div
            return f"{v:.0f}{unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f}{unit}"
    return f"{n:.0f}"


def fmt(x, spec: str = ".1f", none: str = "-") -> str:
    return none if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def fmt_gib(n_bytes) -> str:
    return "-" if not n_bytes else f"{n_bytes / GIB:.2f}"


def median(vals: Sequence[float]) -> Optional[float]:
    return float(np.median(vals)) if len(vals) else None


def ok_runs(results: Dict) -> List[Dict]:
    """Successful pipeline measurements, ordered by rows."""
    return sorted((e for e in results.get("pipeline", []) if not e.get("failed")), key=lambda e: e["rows"])


def component_order(runs: Sequence[Dict]) -> List[str]:
    """Components in execution order (run_summary lists them as they finished), union over the runs."""
    out: List[str] = []
    for e in runs:
        for c in e.get("component_seconds", {}):
            if c not in out:
                out.append(c)
    return out


def throughput(e: Dict) -> Dict[str, Tuple[str, Optional[float]]]:
    """rows/s per component of one pipeline measurement: {name: (what the rows are, rows/s)}."""
    secs = e.get("component_seconds", {})
    epochs = e.get("epochs") or 1
    train = e.get("train_rows")

    def rate(rows, seconds):
        return rows / seconds if rows and seconds else None

    out = {c: ("all rows", rate(e["rows"], secs.get(c))) for c in ("ExampleGen", "StatisticsGen", "Transform")}
    if train:
        out["Trainer"] = ("train rows x epochs", rate(train * epochs, secs.get("Trainer")))
        out["Trainer model.fit"] = ("train rows x epochs", rate(train * epochs, e.get("fit_seconds")))
    else:
        out["Trainer"] = ("all rows (train count unknown)", rate(e["rows"], secs.get("Trainer")))
    out["Evaluator"] = ("eval rows", rate(e.get("eval_rows"), secs.get("Evaluator")))
    alone = e.get("evaluator_alone") or {}
    for key, label in (("no_baseline", "Evaluator alone, no baseline"), ("baseline", "Evaluator alone, baseline")):
        out[label] = ("latest span's rows", rate(alone.get("rows"), (alone.get("seconds") or {}).get(key)))
    return out


def scaling(runs: Sequence[Dict]) -> Dict[str, Optional[float]]:
    """Exponent b of seconds ~ a * rows^b per component and for the whole run (None when not fitted)."""
    out: Dict[str, Optional[float]] = {}
    for c in component_order(runs):
        pts = [(e["rows"], e["component_seconds"].get(c)) for e in runs]
        pts = [(x, y) for x, y in pts if y is not None]
        if not pts or max(y for _, y in pts) < MIN_FIT_SECONDS:
            out[c] = None
            continue
        fit = fit_power(*zip(*pts))
        out[c] = fit[1] if fit else None
    fit = fit_power([e["rows"] for e in runs], [e.get("wall_seconds") for e in runs])
    out[WHOLE_RUN] = fit[1] if fit else None
    return out


def rss_points(runs: Sequence[Dict], component: str) -> List[Tuple[int, float]]:
    """(rows, peak RSS bytes) of a component (or of the whole run) over the runs that measured it."""
    pts = [(e["rows"], e.get("peak_rss") if component == WHOLE_RUN else e.get("component_peak_rss", {}).get(component))
           for e in runs]
    return [(x, float(y)) for x, y in pts if y]


def fit_offset_power(xs: Sequence[float], ys: Sequence[float]) -> Optional[Tuple[float, float, float]]:
    """Least-squares fit of ``y = c + a * x**b`` (a >= 0, 0.05 <= b <= 3): ``(c, a, b)``; needs 3 distinct x.

    ``c`` is the part that does not depend on x (for peak RSS: libraries, graphs), so ``b`` is the exponent
    of the growth itself. For a fixed b the fit is linear in x**b; b is found by a grid search, refined once."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    if len(set(x)) < 3:
        return None
    scale = x.max()

    def solve(b):
        design = np.stack([np.ones_like(x), (x / scale) ** b], axis=1)
        (c, a), *_ = np.linalg.lstsq(design, y, rcond=None)
        if a < 0:
            c, a = float(np.mean(y)), 0.0
        return float(np.sum((c + a * (x / scale) ** b - y) ** 2)), float(c), float(a)

    grid = np.linspace(0.05, 3.0, 591)
    best = min(grid, key=lambda b: solve(b)[0])
    best = min(np.linspace(max(0.05, best - 0.005), min(3.0, best + 0.005), 201), key=lambda b: solve(b)[0])
    _, c, a = solve(best)
    return c, a / scale ** best, float(best)


def memory_fit(pts: Sequence[Tuple[int, float]], memory_bytes: float) -> Optional[Dict]:
    """How a component's peak RSS grows with rows, from >= 2 sizes.

    ``exponent``: the log-log exponent of the RSS itself (diluted by the part that does not grow). The RSS is
    split as ``fixed + a * rows**growth_exponent`` (:func:`fit_offset_power`, >= 3 sizes; with 2 sizes a line,
    exponent assumed 1): ``fixed`` = libraries and graphs, the rest = the data-dependent part. ``data_bytes`` is
    that part at the largest size; below MIN_GROWTH_BYTES the RSS counts as flat. ``kind``: flat, ~linear
    (growth exponent within [LINEAR_EXPONENT, 1/LINEAR_EXPONENT]), superlinear or sublinear. ``max_rows``:
    where the fit reaches ``memory_bytes``. ``bytes_per_row``: data part / rows at the largest size."""
    xs = np.array([x for x, _ in pts], float)
    ys = np.array([y for _, y in pts], float)
    if len(set(xs)) < 2:
        return None
    total_fit = fit_power(xs, ys)
    fit = fit_offset_power(xs, ys)
    if fit:
        fixed, a, growth_exponent = fit
    else:
        a, fixed = (float(v) for v in np.polyfit(xs, ys, 1))
        growth_exponent = None
    b = growth_exponent if growth_exponent is not None else 1.0
    largest = float(xs.max())
    data_bytes = max(a, 0.0) * largest ** b
    if data_bytes < MIN_GROWTH_BYTES:
        kind = "flat"
    elif LINEAR_EXPONENT <= b <= 1 / LINEAR_EXPONENT:
        kind = "~linear"
    else:
        kind = "superlinear" if b > 1 else "sublinear"
    return {"fixed": fixed, "bytes_per_row": data_bytes / largest, "exponent": total_fit[1] if total_fit else None,
            "growth_exponent": growth_exponent, "growth_a": a, "data_bytes": data_bytes, "kind": kind,
            "linear": kind in ("~linear", "superlinear"), "largest_rows": largest,
            "max_rows": rows_for(memory_bytes, fixed, a, b) if kind != "flat" else None}


def memory_analysis(runs: Sequence[Dict], memory_bytes: float) -> Dict:
    """:func:`memory_fit` per component and for the whole run, and the component that limits the rows first:
    ``{"components": {name: fit}, "limit": (max_rows, name) or None}``."""
    comps = {}
    for c in component_order(runs) + [WHOLE_RUN]:
        fit = memory_fit(rss_points(runs, c), memory_bytes)
        if fit:
            comps[c] = fit
    limits = [(v["max_rows"], c) for c, v in comps.items() if v["max_rows"] and c != WHOLE_RUN]
    return {"components": comps, "limit": min(limits) if limits else None}


def latest_trainer(results: Dict) -> Dict[str, Dict]:
    """The newest Trainer-input measurement per model."""
    out: Dict[str, Dict] = {}
    for t in results.get("trainer", []):
        out[t["model"]] = t
    return out


# ---------------------------------------------------------------------------- report
def render_report(results: Dict, memory_bytes: float, compare: Optional[Dict] = None) -> str:
    meta = results.get("meta", {})
    machine = meta.get("machine", {})
    title = "# Performance benchmark" + (f": {meta['label']}" if meta.get("label") else "")
    runs = ok_runs(results)
    beam = sorted({" ".join(e.get("beam_args") or []) for e in runs})
    lines = [title, "",
             f"* date: {meta.get('date', '-')}; git commit: {meta.get('git', '-')}",
             f"* machine: {machine.get('cores', '-')} cores ({machine.get('usable_cores', '-')} usable), "
             f"{fmt_gib(machine.get('ram_bytes'))} GiB RAM, {machine.get('cpu', '-')}; load average at the start "
             f"{fmt(machine.get('load_average'), '.2f')} (a load above the core count inflates every timing)",
             f"* Beam args: {'; '.join(f'`{b}`' for b in beam) or '-'}",
             "* versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
             f"* memory limit for the extrapolation: {memory_bytes / GIB:.1f} GiB", ""]

    # (a) Trainer input
    trainer = latest_trainer(results)
    lines += ["## Trainer input pipeline: `models.trainer.input_dataset` vs the same train step on in-memory batches", ""]
    if trainer:
        t0 = next(iter(trainer.values()))
        lines += [f"Transform output of `{t0.get('run_dir')}` ({fmt_rows(t0.get('run_rows'))} rows); batch "
                  f"{t0['batch_size']}; {t0['steps']} steps timed after {t0['warmup']} warm-up steps, median of "
                  f"{t0['repeats']}; in-memory = {t0['cache_batches']} batches of the same dataset cached and "
                  f"repeated. examples/s = steps x batch / seconds.", "",
                  "| model | params | Trainer input ex/s | in-memory ex/s | efficiency | input ms/step | "
                  "in-memory ms/step | warm-up s (trace) | load avg |", "|---" * 9 + "|"]
        for m, t in trainer.items():
            p, mem = median(t["input_eps"]), median(t["memory_eps"])
            eff = p / mem if p and mem else None
            ms = [t["batch_size"] / v * 1e3 if v else None for v in (p, mem)]
            lines.append(f"| {m} | {t.get('params', 0):,} | {fmt(p, ',.0f')} | {fmt(mem, ',.0f')} | "
                         f"{fmt(eff, '.2f')} | {fmt(ms[0], '.1f')} | {fmt(ms[1], '.1f')} | "
                         f"{fmt(t.get('warmup_seconds'), '.1f')} | {fmt(t.get('load_average'), '.2f')} |")
        lines += ["", "Efficiency < 1 is time the train step waits for input (read, parse, shuffle, batch) that a "
                  "faster input pipeline could remove; ~1 means the model is the bottleneck.", ""]
    else:
        lines += ["(not measured)", ""]

    for e in results.get("pipeline", []):
        if e.get("failed"):
            lines += [f"**{fmt_rows(e['rows'])} rows: the demo failed** (exit code {e.get('exit_code')}, peak RSS "
                      f"{fmt_gib(e.get('demo_peak_rss'))} GiB; log `{e.get('log')}`)", ""]
    if not runs:
        lines += ["## Pipeline scaling", "", "(no successful pipeline run)", ""]
        return "\n".join(lines + _compare_lines(results, compare)) + "\n"

    sizes = [e["rows"] for e in runs]
    comps = component_order(runs)
    heads = " | ".join(fmt_rows(n) for n in sizes)
    exps = scaling(runs)
    big = runs[-1]

    # (b) seconds
    lines += ["## Pipeline wall seconds per component (`msmt demo`)", "",
              f"Sizes: {', '.join(f'{n:,}' for n in sizes)} rows. b: least-squares exponent of seconds ~ a * rows^b "
              f"(log-log; '-' below {MIN_FIT_SECONDS:.0f} s or with one size). Share: of the pipeline wall time at "
              f"the largest size.", "",
              f"| component | {heads} | share @{fmt_rows(sizes[-1])} | b |", "|---" * (len(sizes) + 3) + "|"]
    for c in comps:
        cells = " | ".join(fmt(e["component_seconds"].get(c)) for e in runs)
        share = big["component_seconds"].get(c, 0) / big["wall_seconds"] if big.get("wall_seconds") else None
        lines.append(f"| {c} | {cells} | {fmt(share and share * 100, '.0f')}% | {fmt(exps.get(c), '.2f')} |")
    lines.append(f"| **pipeline (wall)** | {' | '.join(fmt(e.get('wall_seconds')) for e in runs)} | 100% | "
                 f"{fmt(exps.get(WHOLE_RUN), '.2f')} |")
    lines.append(f"| demo total (generate + run + report) | "
                 f"{' | '.join(fmt(e.get('demo_wall_seconds')) for e in runs)} | | |")
    lines.append(f"| of which generate-data | {' | '.join(fmt(e.get('generate_seconds')) for e in runs)} | | |")
    lines.append(f"| (load average at start) | {' | '.join(fmt(e.get('load_average'), '.2f') for e in runs)} | | |")
    top = max(comps, key=lambda c: big["component_seconds"].get(c, 0))
    lines += ["", f"Largest share at {fmt_rows(sizes[-1])} rows: **{top}** "
                  f"({big['component_seconds'][top]:.0f} s of {big['wall_seconds']:.0f} s).", ""]
    cached = sorted({c for e in runs for c, s in e.get("states", {}).items() if s == "CACHED"})
    if cached:
        lines += [f"Warning: CACHED (not executed) in a measured run: {', '.join(cached)}; their times are not "
                  "measurements.", ""]

    # (c) throughput
    models = sorted({e.get("model") or "?" for e in runs})
    lines += ["## Throughput (rows/s)", "", f"Trainer: the pipeline's model ({', '.join(models)}); `model.fit` "
              "time from its train_summary.json (includes validation on the eval split).", "",
              f"| component | rows counted | {heads} |", "|---" * (len(sizes) + 2) + "|"]
    tps = [throughput(e) for e in runs]
    for name in tps[-1]:
        what = tps[-1][name][0]
        lines.append(f"| {name} | {what} | {' | '.join(fmt(tp.get(name, ('', None))[1], ',.0f') for tp in tps)} |")
    split_cells = " | ".join(f"{fmt_rows(e.get('train_rows'))} / {fmt_rows(e.get('eval_rows'))}" for e in runs)
    lines.append(f"| (train / eval rows) | StatisticsGen | {split_cells} |")
    lines.append("")

    # (d) memory
    mem = memory_analysis(runs, memory_bytes)
    limit_gib = memory_bytes / GIB
    lines += ["## Peak RSS per component (GiB, whole pipeline process tree)", "",
              "RSS = fixed + a x rows^b fitted over the sizes (fixed: libraries, graphs; the rest: the data-"
              "dependent part; b = 'b growth', ~1 = linear; needs 3 sizes, else a line). b RSS: log-log exponent of "
              "the peak RSS itself (diluted by the fixed part). bytes/row: data part / rows at the largest size. A "
              f"component is flagged when its data part at the largest size is >= {MIN_GROWTH_BYTES // 2 ** 20} "
              f"MiB. Max rows: where the fit reaches {limit_gib:.1f} GiB.", "",
              f"| component | {heads} | fixed | bytes/row | b RSS | b growth | data part @{fmt_rows(sizes[-1])} | "
              f"growth | max rows in {limit_gib:.0f} GiB |", "|---" * (len(sizes) + 8) + "|"]
    for c in comps + [WHOLE_RUN]:
        vals = [e.get("peak_rss") if c == WHOLE_RUN else e.get("component_peak_rss", {}).get(c) for e in runs]
        a = mem["components"].get(c)
        if not a:
            lines.append(f"| {c} | {' | '.join(fmt_gib(v) for v in vals)} |" + " - |" * 7)
            continue
        ratio = a["max_rows"] / a["largest_rows"] if a["max_rows"] else None
        far = f" ({ratio:.0f}x the largest run)" if ratio and ratio > 10 else ""
        kind = f"**{a['kind']}**" if a["linear"] else a["kind"]
        lines.append(f"| {c} | {' | '.join(fmt_gib(v) for v in vals)} | {fmt_gib(a['fixed'])} | "
                     f"{fmt(a['bytes_per_row'], ',.0f')} | {fmt(a['exponent'], '.2f')} | "
                     f"{fmt(a['growth_exponent'], '.2f')} | {a['data_bytes'] / GIB:.2f} GiB | {kind} | "
                     f"{fmt_rows(a['max_rows'])}{far} |")
    lines.append("")
    flagged = [c for c, a in mem["components"].items() if a["linear"] and c != WHOLE_RUN]
    if mem["limit"]:
        rows, comp = mem["limit"]
        lines += [f"Estimated largest input that fits in {limit_gib:.1f} GiB: **~{fmt_rows(rows)} rows**, limited "
                  f"by {comp}" + (f" (RSS growing ~linearly or faster: {', '.join(flagged)})" if flagged else "")
                  + ". An extrapolation beyond the measured sizes; memory kept by an earlier component of the "
                  "same process counts against a later one.", ""]
    elif len(sizes) < 2:
        lines += ["One size only: no RSS scaling fitted, no memory limit extrapolated.", ""]
    else:
        lines += [f"No component's RSS grows by >= {MIN_GROWTH_BYTES // 2 ** 20} MiB over these sizes (no memory "
                  "limit extrapolated).", ""]
    return "\n".join(lines + _compare_lines(results, compare)) + "\n"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _compare_lines(results: Dict, other: Optional[Dict]) -> List[str]:
    """Before/after tables: this run vs ``other`` (ratio = this / other)."""
    if not other:
        return []
    this_label = results.get("meta", {}).get("label") or "this"
    other_label = other.get("meta", {}).get("label") or "other"
    lines = [f"## Compare: {this_label} vs {other_label} (`{other.get('meta', {}).get('git', '-')}`)", "",
             f"Ratio = {this_label} / {other_label}: < 1 means {this_label} is faster / smaller.", ""]
    mine = {e["rows"]: e for e in ok_runs(results)}
    theirs = {e["rows"]: e for e in ok_runs(other)}
    common = sorted(set(mine) & set(theirs))
    if common:
        comps = component_order([mine[n] for n in common] + [theirs[n] for n in common])
        lines += ["| component | " + " | ".join(f"s @{fmt_rows(n)} ({other_label} -> {this_label}) | ratio | "
                                                  f"peak RSS GiB @{fmt_rows(n)} | ratio" for n in common) + " |",
                  "|---" * (1 + 4 * len(common)) + "|"]
        for c in comps + [WHOLE_RUN]:
            cells = []
            for n in common:
                if c == WHOLE_RUN:
                    s0, s1 = theirs[n].get("wall_seconds"), mine[n].get("wall_seconds")
                    r0, r1 = theirs[n].get("peak_rss"), mine[n].get("peak_rss")
                else:
                    s0, s1 = theirs[n]["component_seconds"].get(c), mine[n]["component_seconds"].get(c)
                    r0 = theirs[n].get("component_peak_rss", {}).get(c)
                    r1 = mine[n].get("component_peak_rss", {}).get(c)
                cells.append(f"{fmt(s0)} -> {fmt(s1)} | {_ratio(s1, s0)} | {fmt_gib(r0)} -> {fmt_gib(r1)} | "
                             f"{_ratio(r1, r0)}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    else:
        lines += ["(no pipeline size measured in both)", ""]
    t_mine, t_theirs = latest_trainer(results), latest_trainer(other)
    models = [m for m in t_mine if m in t_theirs]
    settings = {m: [(t[m]["batch_size"], t[m]["steps"], t[m].get("run_rows")) for t in (t_theirs, t_mine)]
                for m in models}
    if models:
        differ = [m for m, (a, b) in settings.items() if a != b]
        if differ:
            lines += [f"Note: batch size, steps or run size differ for {', '.join(differ)}: " + "; ".join(
                f"{m}: batch {a[0]} / {a[1]} steps / {fmt_rows(a[2])} rows -> batch {b[0]} / {b[1]} steps / "
                f"{fmt_rows(b[2])} rows" for m, (a, b) in settings.items() if a != b), ""]
        lines += [f"| model | efficiency {other_label} -> {this_label} | Trainer input ex/s {other_label} -> "
                  f"{this_label} | ratio | in-memory ex/s {other_label} -> {this_label} | ratio |", "|---" * 6 + "|"]
        for m in models:
            (p0, m0), (p1, m1) = [(median(t[m]["input_eps"]), median(t[m]["memory_eps"])) for t in (t_theirs, t_mine)]
            e0, e1 = (p0 / m0 if p0 and m0 else None), (p1 / m1 if p1 and m1 else None)
            lines.append(f"| {m} | {fmt(e0, '.2f')} -> {fmt(e1, '.2f')} | {fmt(p0, ',.0f')} -> {fmt(p1, ',.0f')} | "
                         f"{_ratio(p1, p0)} | {fmt(m0, ',.0f')} -> {fmt(m1, ',.0f')} | {_ratio(m1, m0)} |")
        lines.append("")
    return lines


def plot(results: Dict, out: str, memory_bytes: float) -> List[str]:
    """PNG plots; returns the files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return []

    def axes(ax, xs):
        ax.set_xticks(xs)
        ax.set_xticklabels([fmt_rows(x) for x in xs])
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        lo, hi = ax.get_ylim()
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if hi / lo < 30 else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)

    written = []
    runs = ok_runs(results)
    if runs:
        xs = [e["rows"] for e in runs]
        # components that take >= 1 s somewhere (the resolvers, SchemaGen, ... only clutter the plots)
        comps = [c for c in component_order(runs)
                 if max(e["component_seconds"].get(c) or 0 for e in runs) >= MIN_FIT_SECONDS]
        fig, ax = plt.subplots(figsize=(7, 5))
        for c in comps:
            ax.plot(xs, [e["component_seconds"].get(c) for e in runs], marker="o", label=c)
        ax.plot(xs, [e.get("wall_seconds") for e in runs], "k--", marker="s", label="pipeline (wall)")
        ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds", title="Pipeline seconds vs rows")
        axes(ax, xs)
        fig.tight_layout()
        written.append(os.path.join(out, "scaling_seconds.png"))
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(7, 5))
        for c in comps:
            ys = [e.get("component_peak_rss", {}).get(c) for e in runs]
            if any(ys):
                ax.plot(xs, [(y or np.nan) / GIB for y in ys], marker="o", label=c)
        ax.plot(xs, [(e.get("peak_rss") or np.nan) / GIB for e in runs], "k--", marker="s", label=WHOLE_RUN)
        ax.axhline(memory_bytes / GIB, color="r", ls=":", label=f"memory {memory_bytes / GIB:.0f} GiB")
        ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="peak RSS (GiB)",
               title="Peak RSS of the pipeline process tree vs rows")
        axes(ax, xs)
        fig.tight_layout()
        written.append(os.path.join(out, "scaling_rss.png"))
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    trainer = latest_trainer(results)
    if trainer:
        models = list(trainer)
        idx = np.arange(len(models))
        fig, ax = plt.subplots(figsize=(max(5, 2 * len(models)), 4))
        ax.bar(idx - 0.2, [median(trainer[m]["input_eps"]) or 0 for m in models], 0.4, label="Trainer input")
        ax.bar(idx + 0.2, [median(trainer[m]["memory_eps"]) or 0 for m in models], 0.4, label="in-memory batches")
        ax.set_xticks(idx)
        ax.set_xticklabels(models)
        ax.set(ylabel="examples/s", title="Train step throughput")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(os.path.join(out, "trainer_input.png"))
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------- environment
def total_ram() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo; pass --memory-gib")


def git_commit() -> str:
    """``git rev-parse --short HEAD`` (+ ``-dirty``); without git (the runtime has none) read .git directly."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    git = os.path.join(REPO, ".git")
    try:
        with open(os.path.join(git, "HEAD")) as fh:
            head = fh.read().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        if os.path.exists(os.path.join(git, ref)):
            with open(os.path.join(git, ref)) as fh:
                return fh.read().strip()[:7] + " (read from .git; dirty state unknown)"
        with open(os.path.join(git, "packed-refs")) as fh:
            for line in fh:
                if line.rstrip().endswith(" " + ref):
                    return line.split()[0][:7] + " (read from .git; dirty state unknown)"
    except OSError:
        pass
    return "unknown"


def machine() -> Dict:
    cpu = platform.processor() or "-"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "ram_bytes": total_ram(),
            "cpu": cpu, "load_average": os.getloadavg()[0], "python": platform.python_version()}


def versions() -> Dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("tensorflow", "tfx", "apache-beam", "tensorflow-transform"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------- results file
def load_results(path: str) -> Dict:
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    return {"meta": {}, "pipeline": [], "trainer": []}


def save_results(path: str, results: Dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    os.replace(tmp, path)


def upsert(items: List[Dict], item: Dict, key) -> None:
    """Replace the item with the same ``key(item)`` (or append)."""
    items[:] = [i for i in items if key(i) != key(item)] + [item]


# ---------------------------------------------------------------------------- (b) pipeline runs
def find_run_dir(path: str) -> Optional[str]:
    """The run directory (with run_summary.json) of a demo directory or of a run directory itself."""
    for d in (os.path.join(path, "run"), path):
        if os.path.exists(os.path.join(d, "run_summary.json")):
            return os.path.abspath(d)
    return None


def split_rows(run_dir: str, split: str) -> Optional[int]:
    """Examples in a split, from the newest StatisticsGen output."""
    stats = newest_artifact(run_dir, "StatisticsGen", "statistics")
    path = stats and os.path.join(stats, f"Split-{split}", "FeatureStats.pb")
    if not path or not os.path.exists(path):
        return None
    from tensorflow_metadata.proto.v0 import statistics_pb2

    lst = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as fh:
        lst.ParseFromString(fh.read())
    return int(sum(d.num_examples for d in lst.datasets))


def pipeline_finished(run_dir: str) -> bool:
    """Whether the run directory holds a run whose every component finished (blessed or not)."""
    path = os.path.join(run_dir, "run_summary.json")
    if not os.path.exists(path):
        return False
    with open(path) as fh:
        status = json.load(fh).get("status", RunStatus.SUCCEEDED.label)  # summaries before 'status': finished
    return status in (RunStatus.SUCCEEDED.label, RunStatus.NOT_BLESSED.label)


def read_run(run_dir: str) -> Dict:
    """One pipeline measurement from a run directory's run_summary.json and artifacts."""
    with open(os.path.join(run_dir, "run_summary.json")) as fh:
        s = json.load(fh)
    cfg = s.get("config", {})
    rows = (s.get("input_rows") or {}).get("total")
    entry = {"run_dir": run_dir, "wall_seconds": s.get("wall_seconds"),
             "component_seconds": s.get("component_seconds", {}),
             "component_peak_rss": s.get("component_peak_rss", {}), "peak_rss": s.get("peak_rss"),
             "states": s.get("states", {}), "beam_args": cfg.get("beam_args"), "model": cfg.get("model"),
             "epochs": (cfg.get("train") or {}).get("epochs") or 1,
             "batch_size": (cfg.get("train") or {}).get("batch_size") or 1024,
             "train_rows": split_rows(run_dir, "train"), "eval_rows": split_rows(run_dir, "eval")}
    gen = os.path.join(os.path.dirname(run_dir), "data", "generation_summary.json")
    if os.path.exists(gen):
        with open(gen) as fh:
            g = json.load(fh)
        entry["generate_seconds"] = g.get("total_seconds")
        # every generated span: a next-span run's input_rows counts only the newest span's ExampleGen
        rows = g.get("summary", {}).get("overall", {}).get("rows") or rows
    if not rows and entry["train_rows"]:
        rows = entry["train_rows"] + (entry["eval_rows"] or 0)
    if not rows:
        raise SystemExit(f"{run_dir}: cannot tell its row count (no input_rows in run_summary.json, no "
                         "data/generation_summary.json, no StatisticsGen output)")
    entry["rows"] = int(rows)
    model_run = newest_artifact(run_dir, "Trainer", "model_run")
    summary = model_run and os.path.join(model_run, TRAIN_SUMMARY_FILE)
    if summary and os.path.exists(summary):
        with open(summary) as fh:
            t = json.load(fh)
        entry["fit_seconds"], entry["fit_steps"] = t.get("train_seconds"), t.get("steps")
    return entry


def run_demo(rows: int, demo_dir: str, log_path: str, demo_args: Sequence[str] = ()) -> Dict:
    """``python -m pipeline.cli demo --rows N --output DIR`` in a child process; its progress is echoed."""
    from pipeline.memory import PeakRss

    if os.path.exists(demo_dir):
        say(f"rows={rows}: removing {demo_dir} (left by an unfinished run)")
        shutil.rmtree(demo_dir)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    cmd = [sys.executable, "-m", "pipeline.cli", "demo", "--rows", str(rows), "--output", demo_dir] + list(demo_args)
    say(f"rows={rows}: {' '.join(cmd)} (log {log_path})")
    t0, load = time.time(), os.getloadavg()[0]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, errors="replace")
        assert proc.stdout is not None
        with PeakRss(proc.pid, interval=0.5) as memory:
            for line in proc.stdout:
                log.write(line)
                text = line.strip()
                if text.startswith(("[", "msmt run:", "generate-data:", "demo finished")):
                    say(f"rows={rows}: {text[:170]}")
            code = proc.wait()
    return {"exit_code": code, "demo_wall_seconds": time.time() - t0, "demo_peak_rss": memory.overall,
            "log": log_path, "load_average": load}


def run_scaling(args, results: Dict, results_path: str) -> None:
    for path in args.runs:
        run_dir = find_run_dir(path)
        if not run_dir:
            say(f"--runs {path}: no run_summary.json in it or in its run/; skipped")
            continue
        entry = dict(read_run(run_dir), source="reused", git=git_commit())
        results["meta"].update(args.fresh_meta)
        upsert(results["pipeline"], entry, key=lambda e: e["rows"])
        save_results(results_path, results)
        say(f"reused {run_dir}: {entry['rows']:,} rows, pipeline {entry['wall_seconds']:.0f}s")
    covered = {e["rows"] for e in results["pipeline"] if not e.get("failed") and e.get("source") == "reused"}
    for rows in args.sizes:
        if rows in covered:
            say(f"rows={rows}: covered by --runs; not run")
            continue
        demo_dir = os.path.join(args.output, f"rows-{rows}")
        run_dir = os.path.join(demo_dir, "run")
        previous = next((e for e in results["pipeline"] if e.get("run_dir") == run_dir), {})
        if pipeline_finished(run_dir):
            say(f"rows={rows}: {run_dir}/run_summary.json exists; reading it (delete {demo_dir} to re-run)")
            demo = {k: previous[k] for k in ("demo_wall_seconds", "demo_peak_rss", "log", "git", "date", "load_average")
                    if k in previous}
        else:
            results["meta"].update(args.fresh_meta)
            demo = run_demo(rows, demo_dir, os.path.join(args.output, "logs", f"demo-rows-{rows}.log"),
                            args.demo_arg)
            demo.update(git=git_commit(), date=datetime.datetime.now().isoformat(timespec="seconds"))
        if pipeline_finished(run_dir):
            entry = dict(read_run(run_dir), source="demo", **demo)
            entry.pop("exit_code", None)
            say(f"rows={rows}: pipeline {entry['wall_seconds']:.0f}s, peak RSS {fmt_gib(entry['peak_rss'])} GiB; "
                + ", ".join(f"{c} {s:.0f}s" for c, s in entry["component_seconds"].items() if s >= 1))
            entry["evaluator_alone"] = previous.get("evaluator_alone") or measure_evaluator_alone(run_dir)
            if entry["evaluator_alone"]:
                say(f"rows={rows}: Evaluator alone on {entry['evaluator_alone']['rows']:,.0f} rows: " + ", ".join(
                    f"{k} {v:.1f}s" for k, v in entry["evaluator_alone"]["seconds"].items()))
        else:
            with open(demo["log"], errors="replace") as fh:
                tail = fh.readlines()[-15:]
            entry = dict(demo, rows=rows, run_dir=run_dir, failed=True, tail="".join(tail))
            say(f"rows={rows}: FAILED (exit code {demo['exit_code']}, peak RSS {fmt_gib(demo['demo_peak_rss'])} "
                f"GiB); see {demo['log']}:\n" + "".join(tail))
        upsert(results["pipeline"], entry, key=lambda e: e["rows"])
        save_results(results_path, results)


EVALUATOR_CHILD = r"""
import json, os, sys
import tensorflow_model_analysis as tfma
from features.spec import resolve_spec
from pipeline.evaluator import evaluate_offline

examples, model, spec, out = sys.argv[2:6]
seconds, rows = {}, None
for name, baseline in (("no_baseline", None), ("baseline", model)):
    run = evaluate_offline(examples, model, os.path.join(out, name), resolve_spec(spec), baseline_uri=baseline)
    seconds[name] = run["seconds"]
    for m in tfma.load_metrics(run["evaluation"]):
        if not m.slice_key.single_slice_keys:
            rows = max([kv.value.double_value.value for kv in m.metric_keys_and_values
                        if kv.key.name == "example_count"] + [rows or 0])
json.dump({"seconds": seconds, "rows": rows}, open(sys.argv[1], "w"))
"""


def measure_evaluator_alone(run_dir: str) -> Optional[Dict]:
    """The Evaluator executor (``pipeline.evaluator.evaluate_offline``, its default path) on the run's newest
    examples with its model, without and with a baseline (the same model): {"seconds": {...}, "rows": N}.
    None when the run has no model or examples."""
    import tempfile

    with open(os.path.join(run_dir, "run_summary.json")) as fh:
        s = json.load(fh)
    if not s.get("examples_uri") or not s.get("model_uri"):
        return None
    with tempfile.TemporaryDirectory(prefix="bench-evaluator-") as tmp:
        result = os.path.join(tmp, "result.json")
        code = subprocess.call([sys.executable, "-c", EVALUATOR_CHILD, result, s["examples_uri"], s["model_uri"],
                                s["config"].get("spec") or "synthetic", os.path.join(tmp, "out")], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if code or not os.path.exists(result):
            say(f"{run_dir}: the Evaluator measurement failed (exit code {code})")
            return None
        with open(result) as fh:
            return json.load(fh)


# ---------------------------------------------------------------------------- (a) Trainer input
def measure_trainer(model_name: str, run_dir: str, args) -> Dict:
    """Train-step examples/s fed by the Trainer's input function vs by in-memory batches (same model)."""
    import gc

    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from features.dims import input_dims
    from features.spec import resolve_spec
    from models.config import TrainConfig, parse_config
    from models.distribution import choose_strategy, set_mixed_precision
    from models.registry import build_model
    from models.trainer import input_dataset, make_deterministic

    with open(os.path.join(run_dir, "run_summary.json")) as fh:
        cfg = json.load(fh)["config"]
    spec = resolve_spec(cfg["spec"])
    train_cfg = parse_config(TrainConfig, dict(cfg.get("train") or {}, batch_size=args.batch_size),
                             source="bench/perf.py train config")
    transform = newest_artifact(run_dir, "Transform", "transform_graph")
    examples = newest_artifact(run_dir, "Transform", "transformed_examples")
    # What run_fn does before fit, in its order.
    strategy = choose_strategy(train_cfg.distribution)
    make_deterministic(train_cfg.seed)
    set_mixed_precision(train_cfg.mixed_precision)
    tfo = tft.TFTransformOutput(transform)
    dims = input_dims(spec, tfo.vocabulary_size_by_name)
    ds = input_dataset(split_patterns(examples, "train"), tfo, train_cfg.batch_size, True, None,
                       train_cfg.seed)
    with strategy.scope():
        model = build_model(model_name, dims.to_dict(), cfg.get("model_config") if model_name == cfg.get("model")
                            else None, with_action=bool(spec.labels.raction), weighting=train_cfg.weighting,
                            supervised_heads=train_cfg.supervised_heads)
        model.compile(optimizer=keras.optimizers.Adam(train_cfg.learning_rate))
    step = model.make_train_function()  # what fit calls once per step (steps_per_execution = 1)

    def timed(iterator, n: int) -> float:
        t0 = time.perf_counter()
        logs = None
        for _ in range(n):
            logs = step(iterator)
        tf.nest.map_structure(lambda v: v.numpy() if hasattr(v, "numpy") else v, logs)  # wait for the last step
        return time.perf_counter() - t0

    load = os.getloadavg()[0]
    warmup = max(1, args.warmup)
    say(f"trainer {model_name}: warm-up {warmup} steps on the Trainer input (trace, shuffle buffer)")
    input_it = iter(ds)
    warmup_seconds = timed(input_it, warmup)
    say(f"trainer {model_name}: filling the in-memory cache with {args.cache_batches} batches")
    t0 = time.perf_counter()
    memory_it = iter(ds.take(args.cache_batches).cache().repeat())
    for _ in range(args.cache_batches):
        next(memory_it)
    cache_seconds = time.perf_counter() - t0
    timed(memory_it, warmup)
    input_eps, memory_eps = [], []
    for r in range(args.repeats):
        s = timed(input_it, args.steps)
        input_eps.append(args.steps * train_cfg.batch_size / s)
        s = timed(memory_it, args.steps)
        memory_eps.append(args.steps * train_cfg.batch_size / s)
        say(f"trainer {model_name} ({r + 1}/{args.repeats}): Trainer input {input_eps[-1]:,.0f} ex/s, "
            f"in-memory {memory_eps[-1]:,.0f} ex/s, efficiency {input_eps[-1] / memory_eps[-1]:.2f}")
    result = {"model": model_name, "run_dir": run_dir, "transform": transform, "examples": examples,
              "params": int(model.count_params()), "batch_size": train_cfg.batch_size, "steps": args.steps,
              "warmup": warmup, "repeats": args.repeats, "cache_batches": args.cache_batches,
              "input_eps": input_eps, "memory_eps": memory_eps, "warmup_seconds": warmup_seconds,
              "cache_fill_seconds": cache_seconds, "load_average": load, "git": git_commit(),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "tensorflow": tf.__version__}
    del model, input_it, memory_it, ds
    keras.backend.clear_session()
    gc.collect()
    return result


def trainer_key(t: Dict) -> Tuple:
    return (t["model"], t["examples"], t["batch_size"], t["steps"], t["warmup"], t["repeats"], t["cache_batches"])


def run_trainer(args, results: Dict, results_path: str) -> None:
    if not args.models:
        return
    if args.trainer_run:
        run_dir = find_run_dir(args.trainer_run)
        if not run_dir:
            sys.exit(f"--trainer-run {args.trainer_run}: no run_summary.json in it or in its run/")
    else:
        runs = ok_runs(results)
        if not runs:
            say("no successful pipeline run: Trainer input not measured (pass --trainer-run DIR)")
            return
        run_dir = runs[-1]["run_dir"]
    examples = newest_artifact(run_dir, "Transform", "transformed_examples")
    if not examples or not newest_artifact(run_dir, "Transform", "transform_graph"):
        say(f"{run_dir} has no Transform output: Trainer input not measured")
        return
    run_rows = next((e["rows"] for e in results["pipeline"] if e.get("run_dir") == run_dir), None)
    if run_rows is None:
        run_rows = read_run(run_dir)["rows"]
    for m in args.models:
        key = (m, examples, args.batch_size, args.steps, max(1, args.warmup), args.repeats, args.cache_batches)
        if any(trainer_key(t) == key for t in results["trainer"]):
            say(f"trainer {m}: already measured with these settings in {results_path}; kept")
            continue
        results["meta"].update(args.fresh_meta)
        t = dict(measure_trainer(m, run_dir, args), run_rows=run_rows)
        upsert(results["trainer"], t, key=lambda x: x["model"])
        save_results(results_path, results)


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=DEFAULT_OUTPUT,
                   help="output directory: report.md, results.json, PNG plots, rows-N/ demo runs, logs/ "
                        "(default build/bench-perf)")
    p.add_argument("--label", help="name of this measurement (e.g. before, after): in the report title and in "
                                    "the --compare table (default: kept from results.json)")
    p.add_argument("--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES), metavar="N",
                   help="rows of each `msmt demo` run for the scaling part (default 200000 1000000 5000000; "
                        "none: only --runs)")
    p.add_argument("--demo-arg", action="append", default=[], metavar="ARG",
                   help="extra argument of every `msmt demo` run, repeatable, e.g. "
                        "--demo-arg=--no-example-shuffle --demo-arg=--beam-arg=--direct_num_workers=2")
    p.add_argument("--runs", nargs="*", default=[], metavar="DIR",
                   help="existing demo directories (or their run/ directory) to include instead of running "
                        "their size again")
    p.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), metavar="MODEL",
                   help="zoo models for the Trainer-input measurement (default shared_bottom ple aem2tl; "
                        "none: skip it)")
    p.add_argument("--trainer-run", metavar="DIR",
                   help="demo or run directory whose Transform output feeds the Trainer-input measurement "
                        "(default: the largest successful run of the scaling part)")
    p.add_argument("--batch-size", type=int, default=1024, help="batch size (default 1024, TrainConfig's)")
    p.add_argument("--steps", type=int, default=200, help="train steps timed per measurement (default 200)")
    p.add_argument("--warmup", type=int, default=20,
                   help="untimed train steps first, per input (trace, shuffle-buffer fill; default 20)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed rounds, Trainer input and in-memory alternately; the median is reported "
                        "(default 3)")
    p.add_argument("--cache-batches", type=int, default=32, metavar="K",
                   help="batches of the Trainer dataset cached in memory for the ceiling (default 32)")
    p.add_argument("--memory-gib", type=float,
                   help="memory limit for the max-rows extrapolation (default: MemTotal of /proc/meminfo)")
    p.add_argument("--compare", metavar="OTHER_RESULTS_JSON",
                   help="results.json of another run (e.g. before a change): adds a table of ratios this/other "
                        "per component and size, and per model")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: re-render report.md and the plots from OUTPUT/results.json")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.output = os.path.abspath(args.output)
    os.makedirs(args.output, exist_ok=True)
    results_path = os.path.join(args.output, "results.json")
    results = load_results(results_path)
    for k in ("meta", "pipeline", "trainer"):
        results.setdefault(k, {} if k == "meta" else [])
    if args.label:
        results["meta"]["label"] = args.label
    if not args.report_only:
        # the header describes the invocation that measured last: a rerun that only resumes keeps it
        args.fresh_meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), git=git_commit(),
                               machine=machine(), versions=versions(),
                               args={k: v for k, v in vars(args).items()})
        if "machine" not in results["meta"]:
            results["meta"].update(args.fresh_meta)
        m = args.fresh_meta["machine"]
        say(f"perf benchmark -> {args.output}: {m['cores']} cores, {m['ram_bytes'] / GIB:.1f} GiB RAM, load "
            f"{m['load_average']:.2f}, commit {args.fresh_meta['git']}")
        save_results(results_path, results)
        run_scaling(args, results, results_path)
        run_trainer(args, results, results_path)
    memory_bytes = args.memory_gib * GIB if args.memory_gib else total_ram()
    compare = load_results(args.compare) if args.compare else None
    text = render_report(results, memory_bytes, compare)
    with open(os.path.join(args.output, "report.md"), "w") as fh:
        fh.write(text)
    plots = plot(results, args.output, memory_bytes)
    print(text)
    say(f"report: {os.path.join(args.output, 'report.md')}" + (f"; plots: {', '.join(plots)}" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
