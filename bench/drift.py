"""Drift levels, measured: TFDV's drift of every feature between consecutive daily spans, and of injected shifts.

Reads the daily spans of ``make demo`` (``build/demo/data/span-*/impressions.csv``, or ``--data``), computes
TFDV statistics of each span and reports, with the ExampleValidator's own check
(``pipeline.data_validator.check_span``) and every level near zero so that each value is reported:

* the shift of every feature from one day to the next (what normal days look like);
* the shift of ``item_price`` scaled by 1.1 / 1.25 / 1.5 / 2, ``user_age`` moved by a year, and 5-40 % of one
  ``device`` value's rows moved to another.

The table behind the defaults in docs/defaults.md ("Drift levels, measured"). Usage (inside the runtime):
``python bench/drift.py [--data DIR]``. Benchmarks report; they assert nothing.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None) -> int:
    import numpy as np
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from features.spec import resolve_spec
    from pipeline.data_validator import check_span, drift_levels_of

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(REPO, "build", "demo", "data"),
                        help="directory of span-*/impressions.csv (synthetic spec); default: make demo's")
    args = parser.parse_args(argv)
    spec = resolve_spec("synthetic")
    levels = drift_levels_of(spec, 1.0)
    for level in levels.values():
        level.update(warn=1e-9, block=1.0)
    columns = [f.name for f in spec.features]
    paths = sorted(glob.glob(os.path.join(args.data, "span-*", "impressions.csv")))
    if len(paths) < 2:
        sys.exit(f"{args.data}: need at least two span-*/impressions.csv (run make demo first)")
    spans = [pd.read_csv(p, usecols=columns) for p in paths]
    stats = [tfdv.generate_statistics_from_dataframe(s) for s in spans]
    open_vocabulary = [f.name for f in spec.features if not f.is_scenario]

    def shifts(previous, current):
        return {r["feature"]: (r["measure"], r["value"]) for r in
                check_span(current, previous, None, levels, open_vocabulary)[1]}

    print("| change | feature (measure) | shift |\n|---|---|---:|")
    for i in range(1, len(spans)):
        for name, (measure, value) in sorted(shifts(stats[i - 1], stats[i]).items(), key=lambda kv: -kv[1][1]):
            print(f"| next day, span {i - 1} -> {i} | {name} ({measure}) | {value:.4f} |")
    base, day = stats[-2], spans[-1]

    def injected(label, frame, name):
        measure, value = shifts(base, tfdv.generate_statistics_from_dataframe(frame))[name]
        print(f"| {label} | {name} ({measure}) | {value:.4f} |")

    for k in (1.1, 1.25, 1.5, 2.0):
        injected(f"prices x {k}", day.assign(item_price=day["item_price"] * k), "item_price")
    injected("user_age + 1", day.assign(user_age=day["user_age"] + 1), "user_age")
    shares = day["device"].value_counts(normalize=True)
    rng = np.random.default_rng(0)
    for fraction in (0.05, 0.1, 0.2, 0.4):
        moved = (day["device"] == shares.index[0]) & (rng.random(len(day)) < fraction)
        injected(f"{fraction:.0%} of {shares.index[0]} rows -> {shares.index[-1]}",
                 day.assign(device=day["device"].where(~moved, shares.index[-1])), "device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
