"""Quality benchmark (``make bench-quality``): every zoo model x seeds on synthetic logs, tested on a later span.

1. ``generate-data`` writes ``--rows`` impressions over ``--days`` daily spans (CSV + TFRecord).
2. The TFX pipeline runs on the training spans (all but the last): its Transform graph and transformed
   examples are reused by every model, so all models see identical features.
3. Each model x seed trains on the transformed training spans (in-memory ``tf.data``, same ``TrainConfig``
   fields as the Trainer) and predicts the held-out last span through the transform graph.
4. Metrics per scenario x head on the test span: AUC, GAUC (impression-weighted per-user AUC over users with
   both classes), logloss, the oracle AUC of the true probabilities, the oracle gap
   ``(AUC - 0.5) / (AUC_oracle - 0.5)`` and RelaImpr vs SharedBottom ``((AUC - 0.5)/(AUC_base - 0.5) - 1)``.
   Output: ``report.md``, ``results.json`` and PNG bar charts in ``--output``. Timings are reported, never asserted.

Which generator structure exercises which module (features/synthetic.py):
* scenario-specific preference matrices ``specificity`` (0.6 / 0.9 / 1.2) and unequal shares: Scenario-CGC,
  STAR partitions, scenario routing;
* prior gain ``g = 2 sigmoid(w_a log a_j + w_q log q_i + c_s)``: personalised gates (PEPNet, AEM2TL PGN);
* view-through conversions ``unclicked_cvr``: the conv_unclick edge (AEM2TL, entire-space heads) vs ESMM/AITM;
* sparse conversions (cvr 5-9% of clicks) related to click and action (``task_correlation``): transfer
  (AITM, EKTM) and the entire-space composition.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Sequence  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from features.synthetic import ORACLE_FOR_HEAD, oracle_auc  # noqa: E402
from pipeline.results import newest_artifact, split_files  # noqa: E402
from pipeline.run_status import RunStatus  # noqa: E402

HEADS = ("ctr", "ctavr", "ctcvr", "xcvr")
DEFAULT_MODELS = ("shared_bottom", "mmoe", "ple", "esmm", "esm2", "aitm", "star", "pepnet", "aem2tl", "ektm")
GRADNORM = {"strategy": "gradnorm", "alpha": 1.5}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One benchmarked configuration: a zoo model at its defaults, plus model-config and train-config
    overrides (``train`` keys of ``models.config.TrainConfig``, e.g. ``weighting``, ``supervised_heads``)."""

    model: str
    config: Dict = dataclasses.field(default_factory=dict)
    train: Dict = dataclasses.field(default_factory=dict)
    note: str = ""
    # The spec's behaviour sequences: "" as the spec says, "attention" / "mean" that pooling, "none" left out.
    sequence: str = ""


# Ablation rows (docs/models.md): each changes one part of the model's tuned point (the EKTM embedding-32 rows
# change the embedding size as well).
ABLATIONS = {
    "aem2tl": {
        "aem2tl-no_scenario_cgc": Variant("aem2tl", {"scenario_cgc": False}, note="w/o Scenario-CGC"),
        "aem2tl-no_task_cgc": Variant("aem2tl", {"task_cgc": False}, note="w/o Task-CGC"),
        "aem2tl-no_pgn": Variant("aem2tl", {"personalized_gate": False}, note="w/o personalized gate"),
        "aem2tl-no_entire_space": Variant("aem2tl", {"entire_space": False},
                                          note="w/o entire-space module (direct ctr/xcvr towers)"),
        "aem2tl-gradnorm": Variant("aem2tl", {}, {"weighting": GRADNORM}, note="GradNorm loss weighting (alpha 1.5)"),
        "aem2tl-paper_losses": Variant("aem2tl", {}, {"supervised_heads": ["ctr", "ctavr", "xcvr"]},
                                       note="the paper's losses: ctr, ctavr, xcvr (no ctcvr loss)"),
    },
    "ektm": {
        "ektm-no_router": Variant("ektm", {"router": False}, note="w/o router (uniform mean over sources)"),
        "ektm-no_transmitter": Variant("ektm", {"transmitter": False}, note="w/o transmitter"),
        "ektm-no_enhance": Variant("ektm", {"enhance": False}, note="w/o enhanced module"),
        "ektm-embedding_32": Variant("ektm", {"embedding_dim": 32},
                                     note="embedding 32 (the size the PLE baseline was tuned to)"),
        "ektm-embedding_32-no_transfer": Variant("ektm", {"embedding_dim": 32, "router": False, "transmitter": False,
                                                          "enhance": False},
                                                 note="embedding 32, no router, transmitter or enhancer"),
        # one module off at a time, at embedding 32: which module costs what
        **{f"ektm-embedding_32-no_{module}": Variant("ektm", {"embedding_dim": 32, module: False},
                                                     note=f"embedding 32, w/o {module}")
           for module in ("router", "transmitter", "enhance")},
    },
}
# With a spec that has a behaviour sequence (--spec synthetic_sequence --history-length 20): the model with the
# sequence pooled by target attention, by a masked mean, and without the sequence.
SEQUENCE_ABLATIONS = {
    f"{model}-seq_{mode}": Variant(model, sequence=mode, note=note)
    for model in DEFAULT_MODELS
    for mode, note in (("attention", "behaviour sequence, DIN target attention"),
                       ("mean", "behaviour sequence, mean pooling"), ("none", "no behaviour sequence"))
}


def with_sequence(dims: Dict, mode: str) -> Dict:
    """``InputDims.to_dict()`` with every behaviour sequence pooled by ``mode`` ("attention" / "mean"), or left
    out ("none"); unchanged for ""."""
    if not mode:
        return dims
    sparse = [s if not s.get("shares") else dict(s, pooling=mode) for s in dims["sparse"]
              if mode != "none" or not s.get("shares")]
    return dict(dims, sparse=sparse)


def variants(models: Sequence[str], ablations: bool, only: Sequence[str] = ()) -> Dict[str, Variant]:
    """The benchmarked rows: every model at its defaults, plus its ablation rows; ``only`` names ablation rows
    to run instead (e.g. ``aem2tl-paper_losses``)."""
    rows = {name: v for per_model in ABLATIONS.values() for name, v in per_model.items()}
    rows.update(SEQUENCE_ABLATIONS)
    if only:
        unknown = [v for v in only if v not in rows]
        if unknown:
            raise SystemExit(f"unknown variant {unknown[0]!r}; known: {', '.join(sorted(rows))}")
        return {v: rows[v] for v in only}
    out = {m: Variant(m, note="defaults") for m in models}
    if ablations:
        for base, per_model in ABLATIONS.items():
            if base in models:
                out.update(per_model)
    return out


def gauc(labels: np.ndarray, probs: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUC over users whose labels have both classes."""
    order = np.argsort(users, kind="stable")
    users, labels, probs = users[order], labels[order], probs[order]
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    num = den = 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        y = labels[a:b]
        if 0 < y.sum() < len(y):
            num += (b - a) * oracle_auc(y, probs[a:b])
            den += b - a
    return num / den if den else float("nan")


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _run(cmd: List[str], ok_exit_codes=(0,)) -> None:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=REPO)
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if code not in ok_exit_codes:
        raise subprocess.CalledProcessError(code, cmd)


def prepare(args) -> Dict[str, str]:
    data = os.path.join(args.output, "data")
    if not glob.glob(os.path.join(data, "span-*", "impressions.csv")):
        _run([sys.executable, "-m", "pipeline.cli", "generate-data", "--rows", str(args.rows), "--days",
              str(args.days), "--seed", "0", "--format", "both", "--output", data,
              "--history-length", str(args.history_length)])
    last = args.days - 1
    train_pattern = os.path.join(data, f"span-[0-{last - 1}]", "impressions.csv")
    run_dir = os.path.join(args.output, "pipeline")
    if not glob.glob(os.path.join(run_dir, "pipeline_root", "Transform", "transform_graph", "*")):
        _run([sys.executable, "-m", "pipeline.cli", "run", "--data", train_pattern, "--spec", args.spec,
              "--output", run_dir, "--epochs", "1", "--min-auc", "0"],
             # only Transform's outputs are used: a one-epoch model the gate does not bless is fine
             ok_exit_codes=(RunStatus.SUCCEEDED.exit_code, RunStatus.NOT_BLESSED.exit_code))
    return {"transform": newest_artifact(run_dir, "Transform", "transform_graph"),
            "examples": newest_artifact(run_dir, "Transform", "transformed_examples"),
            "test": os.path.join(data, f"span-{last}", "impressions.tfrecord.gz")}


def predict(model, test_batches) -> Dict[str, np.ndarray]:
    """``{head: [rows]}`` predictions of ``model`` on the test span."""
    preds: Dict[str, List] = {}
    for tb in test_batches:
        for k, v in model(tb, training=False).items():
            preds.setdefault(k, []).append(np.reshape(v.numpy(), [-1]))
    return {k: np.concatenate(v) for k, v in preds.items()}


def test_metrics(model, test_batches, targets, scen, slices, users, preds=None) -> Dict:
    """``{head/slice: {auc, gauc, logloss, calibration}}`` of ``model`` (or of ``preds``) on the test span."""
    preds = predict(model, test_batches) if preds is None else preds
    out = {}
    for h in HEADS:
        if h not in preds:
            continue
        for s in slices:
            m = np.ones(len(scen), bool) if s == "overall" else scen == s
            y, p = targets[h][m], preds[h][m]
            out[f"{h}/{s}"] = {"auc": oracle_auc(y, p), "gauc": gauc(y, p, users[m]), "logloss": logloss(y, p),
                               "calibration": float(p.mean() / max(y.mean(), 1e-12))}
    return out


GATE_LEVELS = (50, 200, 1000)  # positives per slice at which the gate's noise is measured
GATE_DRAWS = 40


def gate_noise(output: str, targets: Dict[str, np.ndarray], scen: np.ndarray, max_auc_drop: float = 0.01,
               calibration=(0.8, 1.25), seed: int = 0) -> Dict:
    """How often the default gate refuses a model that is no worse: two seeds of the same configuration, one
    as candidate and one as baseline, on the same rows (``OUTPUT/predictions/<model>-<seed>.npz``).

    For every model with two or more seeds, head and scenario, and for slices holding about ``GATE_LEVELS``
    positives (``GATE_DRAWS`` random row subsets of the scenario each) and the whole scenario: the share of
    (candidate, baseline) comparisons with AUC(candidate) - AUC(baseline) < -max_auc_drop, and the share of
    single models whose calibration falls outside ``calibration``."""
    import itertools

    files = sorted(glob.glob(os.path.join(output, "predictions", "*.npz")))
    by_model: Dict[str, List[Dict[str, np.ndarray]]] = {}
    for f in files:
        name = os.path.basename(f)[:-4].rsplit("-", 1)[0]
        with np.load(f) as z:
            by_model.setdefault(name, []).append({k: z[k] for k in z.files})
    rng = np.random.default_rng(seed)
    counts: Dict[str, List[int]] = {}  # level -> [auc comparisons, auc refusals, calibration checks, outside]
    for name, runs in by_model.items():
        if len(runs) < 2:
            continue
        for h in HEADS:
            if h not in runs[0]:
                continue
            for s in sorted(set(scen)):
                rows = np.flatnonzero(scen == s)
                rate = targets[h][rows].mean()
                subsets = {"whole scenario": [rows]}
                for k in GATE_LEVELS:
                    n = int(k / max(rate, 1e-9))
                    if n < len(rows):
                        subsets[str(k)] = [rng.choice(rows, n, replace=False) for _ in range(GATE_DRAWS)]
                for level, draws in subsets.items():
                    c = counts.setdefault(level, [0, 0, 0, 0])
                    for idx in draws:
                        y = targets[h][idx]
                        if y.min() == y.max():
                            continue
                        aucs = [oracle_auc(y, r[h][idx]) for r in runs]
                        for a, b in itertools.permutations(range(len(runs)), 2):
                            c[0] += 1
                            c[1] += int(aucs[a] - aucs[b] < -max_auc_drop)
                        for r in runs:
                            cal = r[h][idx].mean() / y.mean()
                            c[2] += 1
                            c[3] += int(not calibration[0] <= cal <= calibration[1])
    return {level: {"auc_comparisons": c[0], "auc_refusals": c[1], "calibration_checks": c[2],
                    "calibration_outside": c[3]} for level, c in counts.items()}


def tune(args, spec, dims, dataset) -> Dict:
    """Every model gets the same search (``--max-trials`` random-search trials, ``models.tuning``): trials train
    on the training spans' ``train`` split and are scored (and calibrated) on their ``eval`` split, never on
    the test span. Results are kept in ``OUTPUT/tuning.json`` (resumed per model, and an interrupted search
    resumes from its completed trials)."""
    from models.tuning import search

    path = os.path.join(args.output, "tuning.json")
    done = {}
    if os.path.exists(path):
        with open(path) as fh:
            done = json.load(fh)
    train, held_out = dataset(["train"]), dataset(["eval"])
    for name in dict.fromkeys(v.model for v in args.variants.values()):
        if name in done or args.report_only:
            continue
        t0 = time.time()
        result = search(name, spec, dims, lambda cfg: train.shuffle(64, seed=0), held_out, train,
                        max_trials=args.max_trials, seed=0, directory=os.path.join(args.output, "tuning"),
                        log=lambda m: print(m, flush=True), resume=True)
        done[name] = dict(result, seconds=time.time() - t0)
        print(f"tuned {name}: {result['values']} (NE {result['objective']:.5f}, {done[name]['seconds']:.0f}s)",
              flush=True)
        with open(path, "w") as fh:
            json.dump(done, fh, indent=1)
    return done


def evaluate(args, paths) -> Dict:
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from features.dims import input_dims
    from features.labels import model_label_arguments
    from features.spec import resolve_spec
    from models.registry import build_model, train_config
    from models.trainer import fit_model
    from models.tuning import apply_hyperparameters

    spec = resolve_spec(args.spec)
    tfo = tft.TFTransformOutput(paths["transform"])
    dims = input_dims(spec, tfo.vocabulary_size_by_name).to_dict()
    fspec = tfo.transformed_feature_spec()

    def dataset(splits):
        files = split_files(paths["examples"], splits)
        return (tf.data.TFRecordDataset(files, compression_type="GZIP").batch(args.batch_size)
                .map(lambda x: tf.io.parse_example(x, fspec), num_parallel_calls=tf.data.AUTOTUNE).cache())

    # As the pipeline's Trainer in next-span mode: fit on train + eval, calibrate on the calibration split.
    train, calibration = dataset(["train", "eval"]), dataset(["calibration"])
    raw_spec = tfo.raw_feature_spec()
    layer = tfo.transform_features_layer()
    test_raw = tf.data.TFRecordDataset([paths["test"]], compression_type="GZIP").batch(4096)
    extra = ["user_id", "scenario", "click", "action", "conversion"] + [o for o, _ in ORACLE_FOR_HEAD.values()]
    test_batches, cols = [], {c: [] for c in extra}
    for batch in test_raw:
        raw = tf.io.parse_example(batch, raw_spec)
        test_batches.append(layer(raw))
        for c in extra:
            v = raw[c]
            v = tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v
            cols[c].append(np.reshape(v.numpy(), [-1]))
    cols = {c: np.concatenate(v) for c, v in cols.items()}
    targets = {"ctr": cols["click"], "ctavr": cols["click"] * cols["action"],
               "ctcvr": cols["click"] * cols["conversion"], "xcvr": cols["conversion"]}
    scen = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in cols["scenario"]])
    slices = ["overall"] + sorted(set(scen))
    results = {"oracle": {}, "runs": [], "positives": {}}
    for h in HEADS:
        for s in slices:
            m = np.ones(len(scen), bool) if s == "overall" else scen == s
            results["oracle"][f"{h}/{s}"] = oracle_auc(targets[h][m], cols[ORACLE_FOR_HEAD[h][0]][m])
            results["positives"][f"{h}/{s}"] = int(targets[h][m].sum())
    done_path = os.path.join(args.output, "runs.jsonl")
    done = {}
    if os.path.exists(done_path):  # resume: runs already measured are kept, not repeated
        with open(done_path) as fh:
            for line in fh:
                r = json.loads(line)
                done[(r["model"], r["seed"])] = r
    overrides = {k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                                   ("batch_size", args.batch_size)) if v is not None}
    results["tuning"] = tune(args, spec, dims, dataset) if args.tune else {}
    # seeds outermost: a run cut short still has every model for its first seeds
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name, variant in args.variants.items():
            if (name, seed) in done:
                results["runs"].append(done[(name, seed)])
                continue
            if args.report_only:
                continue
            # the tuned point, then the variant's one change (a variant key wins over a tuned value)
            model_cfg, train_keys = apply_hyperparameters(
                results["tuning"].get(variant.model, {}).get("values", {}), {}, {})
            model_cfg, train_keys = dict(model_cfg, **variant.config), dict(train_keys, **variant.train)
            cfg = train_config(variant.model, dict(train_keys, seed=seed, **overrides))
            keras.utils.set_random_seed(seed)
            model = build_model(variant.model, with_sequence(dims, variant.sequence), model_cfg,
                                weighting=cfg.weighting, supervised_heads=cfg.supervised_heads,
                                **model_label_arguments(spec))
            model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
            fitted = fit_model(model, cfg, train.shuffle(64, seed=seed), calibration, train, verbose=0)
            preds = predict(model, test_batches)
            if args.save_predictions:
                os.makedirs(os.path.join(args.output, "predictions"), exist_ok=True)
                np.savez_compressed(os.path.join(args.output, "predictions", f"{name}-{seed}.npz"), **preds)
            row = {"model": name, "seed": seed, "train_seconds": fitted["train_seconds"], "note": variant.note,
                   "train": dataclasses.asdict(cfg), "metrics": test_metrics(model, test_batches, targets, scen,
                                                                            slices, cols["user_id"], preds),
                   "edge_base_rates": fitted["edge_base_rates"],
                   "calibration_fit": {k: fitted["calibration"].get(k) for k in
                                       ("calibration_before", "calibration_after", "rows")}}
            if fitted["calibration"]["fitted"]:  # the same model without its fitted calibration
                fitted_slope, fitted_offset = model.calibration.slope.numpy(), model.calibration.offset.numpy()
                model.calibration.slope.assign(np.ones_like(fitted_slope))
                model.calibration.offset.assign(np.zeros_like(fitted_offset))
                row["metrics_uncalibrated"] = test_metrics(model, test_batches, targets, scen, slices,
                                                           cols["user_id"])
                model.calibration.slope.assign(fitted_slope)
                model.calibration.offset.assign(fitted_offset)
            results["runs"].append(row)
            with open(done_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{name} seed {seed}: {fitted['train_seconds']:.0f}s " + " ".join(
                f"{h}={row['metrics'][f'{h}/overall']['auc']:.4f}/cal {row['metrics'][f'{h}/overall']['calibration']:.2f}"
                for h in HEADS if f"{h}/overall" in row["metrics"]), flush=True)
    results["gate_noise"] = gate_noise(args.output, targets, scen)
    return results


FLAGSHIPS = ("aem2tl", "ektm")
MIN_POSITIVES = 200  # the calibration target is checked on slices with at least this many positives


def calibration_section(results: Dict, models: Sequence[str], stat) -> List[str]:
    """Calibration (mean prediction / mean label) on the test span: overall and the scenarios with enough
    positives, with and without the fitted calibration."""
    lines = ["", f"## Calibration on the test span (mean prediction / mean label, mean over seeds; scenarios with "
             f">= {MIN_POSITIVES} positives)", "",
             "| model | " + " | ".join(f"{h} overall | {h} scenarios (min..max)" for h in HEADS) + " |",
             "|---" * (1 + 2 * len(HEADS)) + "|"]
    for m in models:
        cells = []
        for h in HEADS:
            overall, _ = stat(m, f"{h}/overall", "calibration")
            scen = [stat(m, k, "calibration")[0] for k, n in results.get("positives", {}).items()
                    if k.startswith(h + "/") and not k.endswith("/overall") and n >= MIN_POSITIVES]
            scen = [v for v in scen if not np.isnan(v)]
            cells.append("- | -" if np.isnan(overall) else
                         f"{overall:.3f} | {min(scen):.3f}..{max(scen):.3f}" if scen else f"{overall:.3f} | -")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    unc = [r for r in results["runs"] if r.get("metrics_uncalibrated") and r["model"] in models]
    if unc:
        lines += ["", "Without the fitted calibration (the same models, calibration layer at identity), overall:", "",
                  "| model | " + " | ".join(HEADS) + " |", "|---" * (1 + len(HEADS)) + "|"]
        for m in models:
            vals = []
            for h in HEADS:
                v = [r["metrics_uncalibrated"][f"{h}/overall"]["calibration"] for r in unc
                     if r["model"] == m and f"{h}/overall" in r["metrics_uncalibrated"]]
                vals.append(f"{np.mean(v):.3f}" if v else "-")
            lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return lines


def significance_section(runs: List[Dict], models: Sequence[str]) -> List[str]:
    """Paired t-test (over seeds) of each flagship against the best baseline per head (AEM2TL's protocol)."""
    from scipy import stats

    def per_seed(model, key):
        return {r["seed"]: r["metrics"][key]["auc"] for r in runs if r["model"] == model and key in r["metrics"]}

    lines = ["", "## Flagships vs the best baseline per head (overall AUC; paired t-test over seeds)", "",
             "| head | best baseline | its AUC | model | AUC | diff | p-value | seeds |", "|---|---|---|---|---|---|---|---|"]
    for h in HEADS:
        key = f"{h}/overall"
        baselines = {m: per_seed(m, key) for m in models if m not in FLAGSHIPS}
        baselines = {m: v for m, v in baselines.items() if v}
        if not baselines:
            continue
        best = max(baselines, key=lambda m: np.mean(list(baselines[m].values())))
        for f in FLAGSHIPS:
            mine = per_seed(f, key)
            seeds = sorted(set(mine) & set(baselines[best]))
            if not seeds:
                continue
            a = np.array([mine[s] for s in seeds])
            b = np.array([baselines[best][s] for s in seeds])
            p = float(stats.ttest_rel(a, b).pvalue) if len(seeds) > 1 and np.any(a != b) else float("nan")
            lines.append(f"| {h} | {best} | {b.mean():.4f} | {f} | {a.mean():.4f} | {a.mean() - b.mean():+.4f} | "
                         f"{p:.3g} | {len(seeds)} |")
    return lines


def gate_noise_section(noise: Dict) -> List[str]:
    if not noise:
        return []
    lines = ["", "## Gate noise: how often the default gate refuses a model that is no worse", "",
             "Two seeds of the same configuration, one as candidate and one as baseline, on the same rows of the test "
             f"span; slices drawn from a scenario so that they hold about N positives of the head ({GATE_DRAWS} draws "
             "per model, head and scenario).", "",
             "| positives per slice | AUC comparisons | refused by max_auc_drop 0.01 | calibration checks | "
             "outside [0.8, 1.25] |", "|---|---|---|---|---|"]
    for level in [str(k) for k in GATE_LEVELS] + ["whole scenario"]:
        c = noise.get(level)
        if c and c["auc_comparisons"]:
            lines.append(f"| {level} | {c['auc_comparisons']} | {100 * c['auc_refusals'] / c['auc_comparisons']:.1f} % | "
                         f"{c['calibration_checks']} | "
                         f"{100 * c['calibration_outside'] / max(c['calibration_checks'], 1):.1f} % |")
    return lines


def tuning_section(tuning: Dict) -> List[str]:
    if not tuning:
        return []
    lines = ["", "## Tuning (random search, same number of trials per model; held-out NE of the served heads)", "",
             "| model | best point | NE | trials | seconds |", "|---|---|---|---|---|"]
    for m, t in tuning.items():
        lines.append(f"| {m} | {t['values']} | {t['objective']:.5f} | {len(t['trials'])} | {t.get('seconds', 0):.0f} |")
    return lines


def report(results: Dict, out: str) -> str:
    runs = results["runs"]
    everything = list(dict.fromkeys(r["model"] for r in runs))
    ablation_rows = {v for rows in ABLATIONS.values() for v in rows}
    models = [m for m in everything if m not in ablation_rows]
    keys = sorted({k for r in runs for k in r["metrics"]}, key=lambda k: (HEADS.index(k.split("/")[0]),
                                                                         k.split("/")[1] != "overall", k))

    def seeds(model):
        return len({r["seed"] for r in runs if r["model"] == model})

    def stat(model, key, metric):
        vals = [r["metrics"][key][metric] for r in runs if r["model"] == model and key in r["metrics"]]
        # sample std (ddof 1) over seeds; 0 for a single seed
        return ((float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0) if vals
                else (float("nan"), float("nan")))

    lines = ["# Quality benchmark", "",
             f"{len(runs)} runs; mean +- sample std over seeds; test = the last daily span.", ""]
    lines.append("## AUC per head (overall) with oracle gap and RelaImpr vs shared_bottom")
    lines.append("")
    lines.append("| model | " + " | ".join(f"{h} AUC | gap | RelaImpr" for h in HEADS) + " | train s | seeds |")
    lines.append("|---" * (1 + 3 * len(HEADS) + 2) + "|")
    for m in models:
        cells = []
        for h in HEADS:
            auc, sd = stat(m, f"{h}/overall", "auc")
            orc = results["oracle"].get(f"{h}/overall", float("nan"))
            base, _ = stat("shared_bottom", f"{h}/overall", "auc")
            gap = (auc - 0.5) / (orc - 0.5) if orc > 0.5 else float("nan")
            rel = ((auc - 0.5) / (base - 0.5) - 1) * 100 if base > 0.5 else float("nan")
            cells.append(f"{auc:.4f}+-{sd:.4f} | {gap:.3f} | {rel:+.2f}%" if not np.isnan(auc) else "- | - | -")
        secs = np.mean([r["train_seconds"] for r in runs if r["model"] == m])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {secs:.0f} | {seeds(m)} |")
    lines += ["", "## Per scenario x head: AUC / GAUC / logloss (oracle AUC in the header)", ""]
    lines.append("| model | " + " | ".join(f"{k} ({results['oracle'].get(k, float('nan')):.3f})" for k in keys) + " |")
    lines.append("|---" * (1 + len(keys)) + "|")
    for m in models:
        cells = []
        for k in keys:
            a, _ = stat(m, k, "auc")
            g, _ = stat(m, k, "gauc")
            ll, _ = stat(m, k, "logloss")
            cells.append(f"{a:.4f} / {g:.4f} / {ll:.4f}" if not np.isnan(a) else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += calibration_section(results, models, stat)
    lines += significance_section(runs, models)
    lines += gate_noise_section(results.get("gate_noise") or {})
    lines += tuning_section(results.get("tuning") or {})
    for base, rows in ABLATIONS.items():
        present = [v for v in rows if v in everything]
        if base not in everything or not present:
            continue
        lines += ["", f"## Ablation: {base} (overall AUC, mean +- std over seeds; delta vs the full model)", ""]
        lines.append("| variant | " + " | ".join(f"{h} AUC | delta" for h in HEADS) + " | train s | seeds |")
        lines.append("|---" * (3 + 2 * len(HEADS)) + "|")
        for v in [base] + present:
            cells = []
            for h in HEADS:
                auc, sd = stat(v, f"{h}/overall", "auc")
                full, _ = stat(base, f"{h}/overall", "auc")
                cells.append(f"{auc:.4f}+-{sd:.4f} | {auc - full:+.4f}" if not np.isnan(auc) else "- | -")
            note = rows[v].note if v in rows else "full model"
            secs = np.mean([r["train_seconds"] for r in runs if r["model"] == v])
            lines.append(f"| {v} ({note}) | " + " | ".join(cells) + f" | {secs:.0f} | {seeds(v)} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(HEADS), figsize=(4 * len(HEADS), 4))
        for ax, h in zip(axes, HEADS):
            vals = [stat(m, f"{h}/overall", "auc") for m in models]
            ax.bar(range(len(models)), [v[0] for v in vals], yerr=[v[1] for v in vals])
            ax.axhline(results["oracle"].get(f"{h}/overall", np.nan), color="k", ls="--", label="oracle")
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=60, fontsize=8)
            ax.set_ylim(0.5, 1.0)
            ax.set_title(f"{h} AUC (test span)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "auc_overall.png"), dpi=100)
    except ImportError:
        pass
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=os.path.join(REPO, "build", "bench-quality"))
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds per model")
    p.add_argument("--spec", default="synthetic",
                   help="feature spec of the generated logs (synthetic; synthetic_sequence with --history-length)")
    p.add_argument("--history-length", type=int, default=0,
                   help="generate each user's recent items (generate-data --history-length); use a fresh --output")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds run are FIRST_SEED .. FIRST_SEED+SEEDS-1 (e.g. to add seeds to an earlier run)")
    p.add_argument("--epochs", type=int, help="override every model's default epochs")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--learning-rate", type=float, help="override every model's default learning rate")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--no-ablations", dest="ablations", action="store_false",
                   help="skip the AEM2TL / EKTM ablation variants")
    p.add_argument("--variants", nargs="+", default=[],
                   help="run only these ablation rows (e.g. aem2tl-paper_losses), at the tuned point of their model")
    p.add_argument("--tune", action="store_true",
                   help="tune every model first with the same budget (models.tuning; OUTPUT/tuning.json), then run "
                        "the seeds with each model's best point")
    p.add_argument("--max-trials", type=int, default=8, help="--tune: random-search trials per model (8)")
    p.add_argument("--save-predictions", action="store_true",
                   help="keep every run's test-span predictions in OUTPUT/predictions/ (for the gate-noise table)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the runs already in OUTPUT/runs.jsonl")
    args = p.parse_args(argv)
    args.variants = variants(args.models, args.ablations, args.variants)
    os.makedirs(args.output, exist_ok=True)
    t0 = time.time()
    paths = prepare(args)
    results = evaluate(args, paths)
    results["wall_seconds"] = time.time() - t0
    results["args"] = {k: v for k, v in vars(args).items()}
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    print(report(results, args.output))
    print(f"report: {os.path.join(args.output, 'report.md')} ({results['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
