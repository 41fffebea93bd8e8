"""Tests of the serving benchmark's arithmetic and report (no model, no timing asserted)."""

from bench import serving as bench


def _run(rows, seconds):
    return {"rows": rows, "score_seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_bytes": 2 ** 30}


def test_steady_state_cancels_the_fixed_cost():
    # 3 s fixed + 1 s per 100k rows: the difference of the two runs is 100k rows/s
    assert bench.steady_state([_run(200_000, 5.0), _run(1_000_000, 13.0)]) == 100_000
    assert bench.steady_state([_run(200_000, 5.0)]) is None


def test_report_rows_ratio_and_before_after():
    results = {"data": "d", "cpus": 2, "load_average": 0.5, "python": "3", "tensorflow": "2", "beam": "2",
               "date": "today", "warmup": 1, "serving_model": "m", "sizes": [200_000, 1_000_000],
               "serving": [{"batch": 1, "calls": 3, "p50_ms": 1.0, "p99_ms": 2.0, "mean_ms": 1.5, "rows_per_s": 666.7}],
               "models": {"sb": {"ceiling": {"rows_per_s": 200_000.0, "predict_rows_per_s": 150_000.0},
                                 "scoring": {"csv": [_run(200_000, 5.0), _run(1_000_000, 13.0)]}}}}
    before = {"models": {"sb": {"scoring": {"csv": [_run(200_000, 50.0)]}}}}
    text = bench.report(results, dict(before, label="old.json"))
    assert "| sb | csv | 40,000 | 76,923 | 100,000 | 200,000 | 150,000 | 0.50 | 1.00 |" in text
    assert "| sb | csv | 200,000 | 4,000 | 40,000 | 10.0x |" in text
