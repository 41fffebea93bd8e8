"""``msmt run``: run the pipeline in a child process, stream per-component progress, verify via MLMD.

The child (``pipeline.local_runner``) may crash at interpreter exit after ``tft_beam`` finished its work;
success is therefore judged from MLMD (every component COMPLETE or CACHED in the latest run) and the
run's outputs, never from the child's exit code alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from features.drift import read_drift
from pipeline import mlmd
from pipeline.config import PipelineConfig
from pipeline.local_runner import INGEST_MARKER, MAIN_MARKER
from pipeline.memory import PeakRss, gib
from pipeline.pipeline import COMPONENT_ORDER
from pipeline.run_status import NOT_RUN, RunStatus

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COMPONENT_RE = re.compile(r"Component (\w+) is (running|finished)")
_EPOCH_RE = re.compile(r"^\d+/\d+ - .*loss")


class PipelineRunError(RuntimeError):
    """The pipeline did not finish; the message names the component and the log file. ``status`` says whether
    the input was refused (:attr:`RunStatus.BLOCKED_BY_VALIDATION`) or something failed; ``result`` holds what
    is known of the run (None when it never started)."""

    def __init__(self, message: str, status: RunStatus = RunStatus.FAILED, result: Optional["RunResult"] = None):
        super().__init__(message)
        self.status = status
        self.result = result
        if result is not None:
            result.status, result.error = status, message


@dataclasses.dataclass
class RunResult:
    config: PipelineConfig
    log_path: str
    wall_seconds: float
    component_seconds: Dict[str, float]
    states: Dict[str, str]
    child_exit_code: int
    examples_uri: Optional[str] = None
    eval_uri: Optional[str] = None
    model_uri: Optional[str] = None
    blessed: Optional[bool] = None
    pushed_dir: Optional[str] = None
    report_path: Optional[str] = None
    input_rows: Optional[Dict] = None
    component_peak_rss: Dict[str, int] = dataclasses.field(default_factory=dict)
    peak_rss: int = 0
    spans: Optional[Dict] = None
    status: Optional[RunStatus] = None
    error: Optional[str] = None
    drift: Optional[Dict] = None  # the ExampleValidator's drift.json (features.drift)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        d["status"] = self.status.label if self.status else None
        return d


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _component_key(name: str) -> str:
    for c in COMPONENT_ORDER:
        if name.endswith(c):
            return c
    return name


def run_pipeline(config: PipelineConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Run the whole pipeline locally; raises :class:`PipelineRunError` unless every component finished."""
    config.validate()
    os.makedirs(config.log_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg_path = os.path.join(config.log_dir, f"pipeline-config-{stamp}.json")
    with open(cfg_path, "w") as fh:
        json.dump(config.to_dict(), fh, indent=2)
    log_path = os.path.join(config.log_dir, f"run-{stamp}.log")
    echo(f"msmt run: pipeline {config.pipeline_name!r}, model {config.model!r}, data {config.data}")
    plan = config.span_plan()
    if plan.next_span:
        echo(f"msmt run: next-span evaluation: trains on span(s) {', '.join(map(str, plan.train_spans))}, "
             f"evaluates and gates on span {plan.eval_span}")
    else:
        echo("msmt run: hash split: trains and evaluates on hash splits of the same data"
             + (f" ({plan.note})" if plan.note else ""))
    echo(f"msmt run: full log in {log_path}")
    t0 = time.time()
    started: Dict[str, float] = {}
    seconds: Dict[str, float] = {}
    phase = ""  # "span N " while an earlier span is ingested
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.local_runner", cfg_path], cwd=REPO_ROOT,
                                env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, errors="replace")
        assert proc.stdout is not None
        with PeakRss(proc.pid) as memory:
            for line in proc.stdout:
                log.write(line)
                if line.startswith(INGEST_MARKER):
                    phase = f"span {line[len(INGEST_MARKER):].strip()} "
                    echo(f"[{time.time() - t0:7.1f}s] reading training {phase.strip()} "
                         f"(ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator)")
                    continue
                if line.startswith(MAIN_MARKER):
                    phase = ""
                    continue
                m = _COMPONENT_RE.search(line)
                if m:
                    comp, what = phase + _component_key(m.group(1)), m.group(2)
                    now = time.time()
                    if what == "running":
                        started[comp] = now
                        memory.begin(comp)
                        echo(f"[{now - t0:7.1f}s] {comp:17} running ...")
                    else:
                        seconds[comp] = now - started.get(comp, now)
                        echo(f"[{now - t0:7.1f}s] {comp:17} finished in {seconds[comp]:.1f}s "
                             f"(peak RSS {gib(memory.end(comp))})")
                elif _EPOCH_RE.search(line.strip()):
                    echo(f"[{time.time() - t0:7.1f}s]   Trainer: {line.strip()[:160]}")
            code = proc.wait()
    wall = time.time() - t0
    result = RunResult(config, log_path, wall, seconds, {}, code, component_peak_rss=dict(memory.peaks),
                       peak_rss=memory.overall, spans=plan.to_dict())
    if not os.path.exists(config.metadata_path):
        raise PipelineRunError(f"the pipeline wrote no metadata (exit code {code}); see {log_path}:\n"
                               + _tail(log_path), RunStatus.FAILED, result)
    runs = mlmd.latest_run(mlmd.open_store(config.metadata_path), config.pipeline_name)
    result.states = {c: NOT_RUN for c in COMPONENT_ORDER}
    result.states.update({_component_key(k): v.state for k, v in runs.items()})
    unfinished = [c for c in COMPONENT_ORDER if result.states[c] not in mlmd.DONE_STATES]
    rejected = _rejected_input(log_path)
    if unfinished and rejected:
        raise PipelineRunError(f"{rejected}\nfull log: {log_path}", RunStatus.BLOCKED_BY_VALIDATION, result)
    if unfinished:
        raise PipelineRunError(
            f"component {unfinished[0]} did not finish (state {result.states[unfinished[0]]}, "
            f"child exit code {code}); see {log_path}:\n" + _tail(log_path), RunStatus.FAILED, result)
    by_comp = {_component_key(k): v for k, v in runs.items()}
    result.examples_uri = _uri(by_comp["ExampleGen"].outputs.get("examples"))
    result.eval_uri = _uri(by_comp["Evaluator"].outputs.get("evaluation"))
    result.model_uri = _uri(by_comp["Trainer"].outputs.get("model"))
    if result.examples_uri:
        from pipeline.checked_example_gen import describe, merge_quarantines, read_quarantine

        # Every span the run read: the training spans Transform was given and the newest ExampleGen output.
        read = list(by_comp["Transform"].inputs.get("examples") or []) + list(
            by_comp["ExampleGen"].outputs.get("examples") or [])
        uris = list(dict.fromkeys(a.uri for a in read))
        result.input_rows = merge_quarantines([q for q in (read_quarantine(u) for u in uris) if q])
        if result.input_rows:
            echo("msmt run: input rows: " + describe(result.input_rows))
    anomalies = by_comp["ExampleValidator"].outputs.get("anomalies") or []
    result.drift = read_drift(anomalies[0].uri) if anomalies else None
    for row in (result.drift or {}).get("features", []):
        if row["level"] == "warn":
            echo(f"msmt run: drift warning: {row['feature']}: {row['measure']} {row['value']:.4f} above warn "
                 f"{row['warn']:g} (blocks above {row['block']:g})")
    blessing = by_comp["Evaluator"].outputs.get("blessing") or []
    result.blessed = bool(blessing and mlmd.custom_property(blessing[0], "blessed"))
    result.status = RunStatus.SUCCEEDED if result.blessed else RunStatus.NOT_BLESSED
    pushed = by_comp["Pusher"].outputs.get("pushed_model") or []
    if pushed and mlmd.custom_property(pushed[0], "pushed"):
        result.pushed_dir = str(mlmd.custom_property(pushed[0], "pushed_destination"))
    from pipeline.report import write_report

    result.report_path = write_report(config.output)
    if code != 0:
        echo(f"msmt run: note: the pipeline process exited with code {code} after every component finished "
             f"(a known crash at interpreter exit after tft_beam); outputs verified in MLMD")
    echo(f"msmt run: finished in {wall:.1f}s (peak RSS of the pipeline process tree {gib(result.peak_rss)})")
    return result


def _rejected_input(log_path: str) -> Optional[str]:
    """The checked ExampleGen's or the ExampleValidator's rejection (first line and its indented detail
    lines), if logged."""
    from pipeline.checked_example_gen import ERROR_PREFIX as BAD_ROWS
    from pipeline.data_validator import ERROR_PREFIX as ANOMALIES

    with open(log_path, errors="replace") as fh:
        lines = fh.read().splitlines()
    starts = [(i, p) for i, line in enumerate(lines) for p in (BAD_ROWS, ANOMALIES) if p in line]
    if not starts:
        return None
    i, prefix = starts[-1]
    block = [lines[i][lines[i].index(prefix):]]
    for line in lines[i + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return "\n".join(block)


def _uri(artifacts: Optional[List]) -> Optional[str]:
    return artifacts[0].uri if artifacts else None


def _tail(path: str, n: int = 25) -> str:
    with open(path, errors="replace") as fh:
        lines = fh.readlines()
    return "".join(lines[-n:])
