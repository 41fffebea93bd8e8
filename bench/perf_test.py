"""Unit tests of bench/perf.py's pure functions (fits, memory extrapolation, report); no TensorFlow, no runs."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import perf  # noqa: E402

GIB = perf.GIB
SIZES = (200_000, 1_000_000, 5_000_000)


def _run(rows, transform_seconds, rss_per_row=2000.0, failed=False):
    """A pipeline measurement: ExampleGen linear in rows, Transform as given, a resolver that takes no time."""
    if failed:
        return {"rows": rows, "failed": True, "exit_code": -9, "demo_peak_rss": 20 * GIB, "log": "x.log"}
    secs = {"ExampleGen": rows / 50_000, "latest_blessed_model_resolver": 0.05, "Transform": transform_seconds,
            "Trainer": rows / 20_000}
    base = 1.2 * GIB
    rss = {"ExampleGen": base + 0.5 * rss_per_row * rows, "latest_blessed_model_resolver": base,
           "Transform": base + rss_per_row * rows, "Trainer": base + 0.2 * GIB}
    return {"rows": rows, "run_dir": f"/runs/{rows}", "wall_seconds": sum(secs.values()) + 10,
            "component_seconds": secs, "component_peak_rss": rss, "peak_rss": max(rss.values()),
            "states": {c: "COMPLETE" for c in secs}, "beam_args": ["--direct_running_mode=in_memory"],
            "model": "shared_bottom", "epochs": 1, "train_rows": int(rows * 0.8), "eval_rows": int(rows * 0.2),
            "fit_seconds": rows / 40_000, "demo_wall_seconds": sum(secs.values()) + 20, "generate_seconds": 1.0}


def _results(label, eps=(40_000.0, 50_000.0)):
    return {"meta": {"label": label, "git": "abc1234", "date": "2026-01-01T00:00:00",
                     "machine": {"cores": 2, "usable_cores": 2, "ram_bytes": 24 * GIB, "cpu": "cpu",
                                 "load_average": 1.0}, "versions": {"tensorflow": "2.x"}},
            "pipeline": [_run(n, n / 10_000) for n in SIZES[:2]] + [_run(SIZES[2], 0, failed=True)],
            "trainer": [{"model": "ple", "run_dir": "/runs/1000000", "run_rows": 1_000_000, "params": 1234,
                         "batch_size": 1024, "steps": 30, "warmup": 5, "repeats": 3, "cache_batches": 8,
                         "input_eps": [eps[0], eps[0] * 1.1, eps[0] * 0.9], "memory_eps": [eps[1]] * 3,
                         "warmup_seconds": 2.0, "load_average": 1.0}]}


def test_fit_power_recovers_a_power_law():
    xs = [1e5, 1e6, 1e7]
    a, b = perf.fit_power(xs, [3.0 * x ** 1.5 for x in xs])
    assert a == pytest.approx(3.0, rel=1e-6)
    assert b == pytest.approx(1.5, abs=1e-9)


def test_fit_power_needs_two_distinct_positive_points():
    assert perf.fit_power([1e5, 1e5], [1.0, 2.0]) is None
    assert perf.fit_power([1e5, 1e6], [1.0, 0.0]) is None
    assert perf.fit_power([1e5], [1.0]) is None
    assert perf.fit_power([1e5, 1e6, 1e7], [1.0, None, 3.0]) is not None


def test_rows_for_inverts_the_fit():
    assert perf.rows_for(10.0, 2.0, 2.0, 1.0) == pytest.approx(4.0)
    assert perf.rows_for(10.0, 1.0, 1.0, 2.0) == pytest.approx(3.0)
    assert perf.rows_for(1.0, 2.0, 1.0, 1.0) is None  # the fixed part alone exceeds the limit
    assert perf.rows_for(10.0, 1.0, 1.0, 0.0) is None


def test_memory_fit_linear_growth_is_flagged_with_its_max_rows():
    pts = [(n, 1.2 * GIB + 2000.0 * n) for n in SIZES]
    fit = perf.memory_fit(pts, 24 * GIB)
    assert fit["kind"] == "~linear" and fit["linear"]
    assert fit["bytes_per_row"] == pytest.approx(2000.0, rel=1e-3)
    assert fit["fixed"] == pytest.approx(1.2 * GIB, rel=1e-3)
    assert fit["growth_exponent"] == pytest.approx(1.0, abs=1e-3)
    assert fit["exponent"] < 1.0  # the log-log exponent of the RSS itself is diluted by the fixed part
    assert fit["max_rows"] == pytest.approx((24 - 1.2) * GIB / 2000.0, rel=1e-3)


def test_memory_fit_flat_and_superlinear():
    flat = perf.memory_fit([(n, 1.5 * GIB + 10.0 * n) for n in SIZES], 24 * GIB)
    assert flat["kind"] == "flat" and not flat["linear"] and flat["max_rows"] is None
    sup = perf.memory_fit([(n, 1.0 * GIB + 1e-4 * n ** 2) for n in SIZES], 24 * GIB)
    assert sup["kind"] == "superlinear" and sup["linear"]
    assert sup["growth_exponent"] == pytest.approx(2.0, abs=1e-3)
    assert sup["fixed"] == pytest.approx(1.0 * GIB, rel=1e-3)
    assert sup["max_rows"] == pytest.approx(((24 - 1.0) * GIB / 1e-4) ** 0.5, rel=1e-3)
    assert perf.memory_fit([(SIZES[0], GIB)], 24 * GIB) is None  # one size: nothing to fit


def test_memory_fit_two_sizes_is_a_line():
    fit = perf.memory_fit([(n, 1.2 * GIB + 2000.0 * n) for n in SIZES[:2]], 24 * GIB)
    assert fit["growth_exponent"] is None and fit["kind"] == "~linear"
    assert fit["bytes_per_row"] == pytest.approx(2000.0) and fit["fixed"] == pytest.approx(1.2 * GIB)


def test_fit_offset_power_recovers_offset_and_exponent():
    xs = [2e4, 4e4, 2e5, 1e6]
    c, a, b = perf.fit_offset_power(xs, [5.0 + 0.3 * x ** 0.5 for x in xs])
    assert (c, a, b) == pytest.approx((5.0, 0.3, 0.5), rel=1e-3)
    assert perf.fit_offset_power(xs[:2], [1.0, 2.0]) is None


def test_memory_analysis_names_the_limiting_component():
    runs = [_run(n, n / 10_000) for n in SIZES]
    mem = perf.memory_analysis(runs, 24 * GIB)
    assert mem["components"]["Transform"]["linear"] and mem["components"]["ExampleGen"]["linear"]
    assert mem["components"]["Trainer"]["kind"] == "flat"
    rows, comp = mem["limit"]
    assert comp == "Transform"  # 2000 B/row vs ExampleGen's 1000
    assert rows == pytest.approx(mem["components"]["Transform"]["max_rows"])


def test_scaling_exponents_skip_components_under_a_second():
    exps = perf.scaling([_run(n, 2e-12 * n ** 2.5) for n in SIZES])
    assert exps["ExampleGen"] == pytest.approx(1.0)
    assert exps["Transform"] == pytest.approx(2.5)
    assert exps["latest_blessed_model_resolver"] is None
    assert 0.9 < exps[perf.WHOLE_RUN] < 2.5


def test_throughput_uses_train_rows_for_the_trainer():
    tp = perf.throughput(_run(1_000_000, 100.0))
    assert tp["ExampleGen"][1] == pytest.approx(50_000)
    assert tp["Transform"][1] == pytest.approx(10_000)
    assert tp["Trainer"][1] == pytest.approx(800_000 / 50.0)
    assert tp["Trainer model.fit"][1] == pytest.approx(800_000 / 25.0)
    assert tp["Evaluator"][1] is None  # no Evaluator time in this run
    assert tp["Evaluator alone, baseline"][1] is None  # not measured


def test_throughput_of_the_evaluator_alone_with_and_without_baseline():
    run = dict(_run(1_000_000, 100.0), evaluator_alone={"rows": 300_000, "seconds": {"no_baseline": 20.0,
                                                                                     "baseline": 30.0}})
    tp = perf.throughput(run)
    assert tp["Evaluator alone, no baseline"][1] == pytest.approx(15_000)
    assert tp["Evaluator alone, baseline"][1] == pytest.approx(10_000)


def test_report_tables_and_compare():
    after, before = _results("after", eps=(48_000.0, 50_000.0)), _results("before")
    text = perf.render_report(after, 24 * GIB, compare=before)
    assert text.startswith("# Performance benchmark: after\n")
    assert "abc1234" in text and "`--direct_running_mode=in_memory`" in text
    ple = next(line for line in text.splitlines() if line.startswith("| ple | 1,234 |"))
    assert "| 48,000 | 50,000 | 0.96 |" in ple  # median input ex/s, in-memory ex/s, efficiency
    assert "the demo failed** (exit code -9" in text
    assert "| Transform | 20.0 | 100.0 |" in text  # seconds per size
    assert "## Compare: after vs before" in text
    assert "| ple | 0.80 -> 0.96 | 40,000 -> 48,000 | 1.20x |" in text
    json.dumps(after)  # the results stay JSON


def test_report_with_one_size_and_nothing_measured():
    res = {"meta": {}, "pipeline": [_run(20_000, 25.0)], "trainer": []}
    text = perf.render_report(res, 24 * GIB)
    assert "# Performance benchmark\n" in text and "(not measured)" in text
    assert "One size only" in text
    assert "(no successful pipeline run)" in perf.render_report({"pipeline": [], "trainer": []}, GIB)


def test_fmt_rows():
    assert [perf.fmt_rows(n) for n in (200_000, 1_000_000, 5_000_000, 20_000, 1_500_000, 950, None)] == \
        ["200k", "1M", "5M", "20k", "1.5M", "950", "-"]


def test_parser_defaults():
    args = perf.build_parser().parse_args([])
    assert args.sizes == list(SIZES) and args.models == ["shared_bottom", "ple", "aem2tl"]
    assert args.batch_size == 1024 and not args.report_only
    assert perf.build_parser().parse_args(["--models", "--sizes"]).models == []


def test_a_demo_runs_rows_are_the_generated_rows_not_the_newest_span(tmp_path):
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "run_summary.json").write_text(json.dumps({"input_rows": {"total": 66_120}, "wall_seconds": 100.0,
                                                      "config": {}}))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "generation_summary.json").write_text(json.dumps(
        {"total_seconds": 3.0, "summary": {"overall": {"rows": 200_000}}}))
    assert perf.read_run(str(run))["rows"] == 200_000
    (tmp_path / "data" / "generation_summary.json").unlink()
    assert perf.read_run(str(run))["rows"] == 66_120  # a plain run: its summary's count
