"""Schema drift against the last accepted span stops the run before Transform, and nothing is pushed.

Each case reruns ``msmt run`` in the session's run directory (``synthetic_run``, whose accepted statistics are
the baseline) on a new span derived from the session's data:

* ``type+scenario`` (one run, three anomalies): ``p_click`` (an oracle column the spec ignores, typed from the
  data) turned into strings, the ``scenario`` mix shifted (90% of home_feed rows dropped) and every
  ``item_price`` tripled. The ExampleValidator reports the changed type of p_click, the scenario's L-infinity
  drift above ``--max-scenario-shift 0.1`` and item_price's Jensen-Shannon divergence above its block level
  (0.2, the spec's default);
* ``label``: the ``conversion`` label column dropped. The checked ExampleGen already rejects the file (a spec
  column is missing from the header), before any statistics. (A spec column whose type changed is rejected
  there too, as 100% wrong_type rows; TFRecord / Parquet input reaches the ExampleValidator instead.)

Observed each time: exit code 3 (blocked by validation), the reason on the CLI, no Transform or Trainer in the run (MLMD), and the
served versions unchanged.
"""

import csv
import json

import pytest

from pipeline import mlmd
from tests.helpers import run_cli, served_versions


def _rows(root):
    rows = []
    for path in sorted((root / "data").glob("span-*/impressions.csv")):
        with open(path) as fh:
            rows += list(csv.DictReader(fh))
    return rows


def _write(path, rows, columns):
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return str(path)


def _type_changed_and_scenario_shifted(rows, columns):
    rows = [r for i, r in enumerate(rows) if r["scenario"] != "home_feed" or i % 10 == 0]
    return [dict(r, p_click="high" if float(r["p_click"]) > 0.05 else "low",
                 item_price=str(3 * float(r["item_price"])) if r["item_price"] else "") for r in rows], columns


def _label_dropped(rows, columns):
    return rows, [c for c in columns if c != "conversion"]


@pytest.mark.parametrize("case,make,expected", [
    ("type+scenario", _type_changed_and_scenario_shifted, [
        "ExampleValidator found anomalies: 3", "  p_click: ", "  scenario: ",
        "High Linfty distance between current and previous", "  item_price: ",
        "High approximate Jensen-Shannon divergence between current and previous"]),
    ("label", _label_dropped, ["ExampleGen rejected the input", "the header has no column conversion"]),
])
def test_drifted_span_stops_the_run_and_nothing_is_pushed(synthetic_run, session_run_copy, tmp_path, case, make,
                                                         expected):
    root, out = synthetic_run[0], session_run_copy
    rows = _rows(root)
    rows, columns = make(rows, list(rows[0]))
    data = _write(tmp_path / case / "impressions.csv", rows, columns)
    before = served_versions(out)
    proc = run_cli(["run", "--data", data, "--spec", "synthetic", "--output", str(out), "--epochs", "4",
                    "--batch-size", "256", "--max-scenario-shift", "0.1"], timeout=900)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 3, text[-4000:]  # RunStatus.BLOCKED_BY_VALIDATION
    with open(out / "run_summary.json") as fh:
        assert json.load(fh)["status"] == "blocked_by_validation"
    for needle in expected:
        assert needle in text, (needle, text[-4000:])
    runs = mlmd.latest_run(mlmd.open_store(str(out / "metadata.sqlite")), "msmt")
    ran = {k for k in runs}
    assert not any(k.endswith(("Transform", "Trainer", "Pusher")) for k in ran), ran
    assert served_versions(out) == before
