"""What every adapter test checks on what an adapter wrote (:func:`check_output`), and where the raw fixtures and
the optional shared samples are. Shared by the adapter tests (test files do not import each other)."""

import json
import os

from features.datasets import common
from features.row_check import RowChecker, infer_column_types, split_csv_line
from features.spec import load_spec

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW = os.path.join(REPO_ROOT, "tests", "data", "raw")
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")


def check_output(out):
    """Load OUT/spec.yaml, row-check OUT/{train,test}/impressions.csv against it; returns (spec, summary, rows)
    with rows[split] = list of {column: cell} dicts."""
    spec = load_spec(os.path.join(out, common.SPEC_FILE))
    with open(os.path.join(out, common.SUMMARY_FILE)) as fh:
        summary = json.load(fh)
    rows = {}
    for split in common.SPLITS:
        path = os.path.join(out, split, common.IMPRESSIONS_FILE)
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        header = split_csv_line(lines[0])
        assert header == summary["columns"]
        assert sorted(header) == sorted(spec.raw_columns + list(spec.ignore)), (header, spec.raw_columns)
        fields = [split_csv_line(line) for line in lines[1:]]
        checker = RowChecker(spec, header, infer_column_types(spec, header, fields[:100]), path)
        bad = [(i, r.problems) for i, r in enumerate((checker.check_line(line) for line in lines[1:]), 2)
               if r.problems]
        assert bad == [], bad[:3]
        rows[split] = [dict(zip(header, f)) for f in fields]
        assert len(rows[split]) == summary["rows_written"][split]
        scen = spec.scenario.name
        counts = {}
        for r in rows[split]:
            counts[r[scen]] = counts.get(r[scen], 0) + 1
        assert counts == summary["scenarios"][split]
    assert spec.scenario.values == tuple(summary["scenario_values"])
    assert set(spec.scenario.values) == {r[spec.scenario.name] for s in rows.values() for r in s}
    return spec, summary, rows
