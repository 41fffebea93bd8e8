"""Pure functions of the quality benchmark: the gate-noise count and the paired t-test table."""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import quality  # noqa: E402
from bench.quality import gate_noise, significance_section  # noqa: E402


def test_gate_noise_counts_refusals_and_calibration(tmp_path):
    rng = np.random.default_rng(0)
    n = 20_000
    scen = np.array(["a", "b"] * (n // 2))
    p = rng.uniform(0.01, 0.2, n)
    y = (rng.random(n) < p).astype(np.int64)
    targets = {"ctr": y}
    os.makedirs(tmp_path / "predictions")
    np.savez(tmp_path / "predictions" / "m-0.npz", ctr=p)
    np.savez(tmp_path / "predictions" / "m-1.npz", ctr=p)            # the same model again: never worse
    np.savez(tmp_path / "predictions" / "solo-0.npz", ctr=p)          # one seed: no pair, not counted
    same = gate_noise(str(tmp_path), targets, scen)
    whole = same["whole scenario"]
    assert whole["auc_comparisons"] == 2 * 2 and whole["auc_refusals"] == 0   # 2 scenarios x 2 orders
    assert whole["calibration_checks"] == 2 * 2 and whole["calibration_outside"] == 0
    # A second seed that predicts noise: refused against the first, and twice too high.
    np.savez(tmp_path / "predictions" / "m-1.npz", ctr=2 * rng.uniform(0.01, 0.2, n))
    noisy = gate_noise(str(tmp_path), targets, scen)["whole scenario"]
    assert noisy["auc_refusals"] == 2 and noisy["calibration_outside"] == 2
    assert set(same) == {"50", "200", "1000", "whole scenario"}


def test_significance_section_is_a_paired_t_test():
    def run(model, seed, auc):
        return {"model": model, "seed": seed, "metrics": {"ctr/overall": {"auc": auc}}}

    base = [0.700, 0.702, 0.701, 0.699, 0.703]
    mine = [0.705, 0.704, 0.707, 0.703, 0.706]
    runs = [run("ple", s, a) for s, a in enumerate(base)] + [run("star", s, a - 0.01) for s, a in enumerate(base)]
    runs += [run("aem2tl", s, a) for s, a in enumerate(mine)]
    lines = significance_section(runs, ["ple", "star", "aem2tl"])
    row = next(line for line in lines if "| aem2tl |" in line)
    d = np.array(mine) - np.array(base)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    from scipy import stats
    p = 2 * stats.t.sf(abs(t), len(d) - 1)
    assert row.startswith("| ctr | ple | 0.7010 | aem2tl | 0.7050 | +0.0040 |")
    assert f"| {p:.3g} | 5 |" in row


def test_sequence_variants_change_only_the_sequence_inputs():
    from features.dims import SparseInput
    from models.testing import tiny_dims

    dims = tiny_dims(sequence_pooling="attention").to_dict()
    assert quality.with_sequence(dims, "") is dims
    mean = quality.with_sequence(dims, "mean")
    assert [SparseInput(**s).pooling for s in mean["sparse"] if s["shares"]] == ["mean"]
    assert [s for s in mean["sparse"] if not s["shares"]] == [s for s in dims["sparse"] if not s["shares"]]
    none = quality.with_sequence(dims, "none")
    assert [s["name"] for s in none["sparse"]] == ["user_id", "item_id", "scenario", "tags"]
    rows = quality.variants(["shared_bottom"], False, ["shared_bottom-seq_mean", "shared_bottom-seq_none"])
    assert {v.sequence for v in rows.values()} == {"mean", "none"}
