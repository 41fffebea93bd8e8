"""``msmt run`` on a log with too many bad rows stops at the ExampleGen and says why.

Injects: ``tests/data/corrupted_impressions.csv`` (16 bad rows of 46, see tests/data/README.md) with
``--max-bad-fraction 0.1``. Observes: exit code 3 (blocked by validation, also the summary's status), the rejection message with the share of bad rows, the
counts per kind with file, row, column and value, and the quarantine path; no Trainer ran. The counts and
the quarantine content with a tolerated fraction are checked in ``pipeline/checked_example_gen_test.py``.
"""

import json
import os
import shutil

from tests.helpers import run_cli

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corrupted_impressions.csv")


def test_too_many_bad_rows_stop_the_run_with_a_clear_message(tmp_path):
    data = tmp_path / "logs"
    data.mkdir()
    shutil.copy(FIXTURE, data / "impressions.csv")
    proc = run_cli(["run", "--data", str(data / "impressions.csv"), "--spec", "synthetic",
                    "--output", str(tmp_path / "run"), "--max-bad-fraction", "0.1"], timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]  # RunStatus.BLOCKED_BY_VALIDATION
    assert "ExampleGen rejected the input: 34.78% of the rows are bad, more than max_bad_fraction 0.1" in out
    assert "malformed_line: 3" in out and "impossible_labels: 2" in out
    assert "impressions.csv: row 12 (line 13), column 'user_age': 'abc'" in out
    assert "quarantine/bad_rows-" in out
    assert not list((tmp_path / "run" / "pipeline_root").glob("Trainer/*/*"))
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["status"] == "blocked_by_validation", summary["status"]
    assert summary["error"].startswith("ExampleGen rejected the input: 34.78% of the rows are bad")
    assert summary["states"]["ExampleGen"] == "FAILED" and summary["states"]["Trainer"] == "NOT_RUN", \
        summary["states"]
