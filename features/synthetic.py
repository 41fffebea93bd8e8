r"""Synthetic multi-scenario impression logs with known ground truth (docs/benchmarks.md).

Every row carries the true probabilities of its labels, so every metric has an oracle (Bayes) value.

Generative model
----------------
Scenarios :math:`s \in \{0..S-1\}` with shares :math:`\pi_s`; days (spans) :math:`d \in \{0..D-1\}`;
users :math:`j` with latent factors :math:`u_j \sim N(0, I_k)`; items :math:`i` with :math:`v_i \sim N(0, I_k)`.
Latents are never written; they are visible only through features:

* ``user_segment = argmax(P_seg u_j)``, ``item_category = argmax(P_cat v_i)``,
  ``item_tags`` = the 2 best tags of ``P_tag v_i`` plus one random tag, ``item_price = 20 exp(0.5 v_{i,0} + e)``,
  and the ids themselves (an id embedding can learn :math:`u_j`, :math:`v_i`).
* priors: ``user_activity`` :math:`a_j \sim LogNormal(0, 0.6)` and ``item_popularity``
  :math:`q_i \sim LogNormal(0, 0.8)` (items are shown proportionally to :math:`q_i`).

Each request is one user in one scenario on one day and shows ``impressions_per_request`` items.
For each impression with user j, item i, scenario s, day d, hour h:

.. math::

   g &= \gamma\,\sigma(w_a \log a_j + w_q \log q_i + c_s)                      && \text{personalised prior gain, } \gamma = 2 \\
   m_t &= u_j^\top (B_t + \rho_s A_{t,s} + \tfrac{d}{D}\,\eta E_{t,s}) v_i / k           && t \in \{c, a, v\} \\
   p_c &= \sigma(b_{c,s,d} + \delta_d + g\,m_c + \beta_{age} + \beta_{hour} + \beta_p z_{price}) && P(\text{click}) \\
   p_a &= \sigma(b_{a,s,d} + g\,m_a)                                             && P(\text{action} \mid \text{click}) \\
   p_{v1} &= \sigma(b_{v,s,d} + \lambda + m_v),\; p_{v0} = \sigma(b_{v,s,d} + m_v) && P(\text{conv} \mid \text{click}, \pm\text{action}) \\
   p_{vt} &= \sigma(b_{t,s,d} + m_v)                                             && P(\text{conv} \mid \text{no click}) \text{ (view-through)}

:math:`B_a = r B_c + \sqrt{1-r^2} N`, :math:`B_v = r B_a + \sqrt{1-r^2} N'` (related tasks, correlation r);
:math:`A_{t,s}` are scenario-specific preference matrices with weight :math:`\rho_s`; :math:`E_{t,s}` and the
random walk :math:`\delta_d` (step ``drift``) make later spans drift. The intercepts :math:`b_{\cdot,s,d}` are
solved by bisection per scenario and day so that each scenario's rates equal the configured ``ctr``,
``action_rate`` (given click), ``cvr`` (given click) and ``unclicked_cvr`` on every day before the click's day
shift :math:`\delta_d`: the preferences drift (which users click which items), the base rates wander only by
:math:`\delta_d`. (Intercepts solved on day 0 alone let the growing drift term move a scenario's rates steadily:
over four days of 1M rows a day, ``detail_page``'s true P(click, action) rose 5 % from day 0 to day 3; with
per-day intercepts it moves 1 %.) Labels are drawn down the funnel
(click, then action given click, then conversion given click and action; or a view-through conversion
given no click), and the rows carry the true probabilities

.. math::

   P(\text{click}) = p_c,\quad P(\text{click} \wedge \text{action}) = p_c p_a,\quad
   P(\text{click} \wedge \text{conv}) = p_c (p_a p_{v1} + (1-p_a) p_{v0}),\quad
   P(\text{conv}) = P(\text{click} \wedge \text{conv}) + (1 - p_c) p_{vt}

in the columns ``p_click``, ``p_click_action``, ``p_click_conv`` and ``p_conv`` (ignored by the spec).

Behaviour history (``history_length`` > 0): each user has a list ``recent_items`` of ``history_length``
distinct items, drawn once per user (from their own random stream, so every other column is the same with or
without it) with probabilities proportional to

.. math::

   w_i \exp\big(\tau\, u_j^\top B_c v_i / k\big)

(item exposure :math:`w_i` times the user's shared click preference, :math:`\tau` = ``history_temperature``),
written most preferred first, separator ``|``. The history is a function of :math:`u_j` only, so the true
probabilities above are unchanged; it tells a model what the user likes through the items themselves, and a
candidate close to the history is one the user tends to click (what target attention can use).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ORACLE_COLUMNS = ("p_click", "p_click_action", "p_click_conv", "p_conv")
LABEL_TO_ORACLE = {"click": "p_click", "action": "p_click_action", "conversion": "p_conv"}


@dataclasses.dataclass(frozen=True)
class ScenarioConfig:
    """One scenario: its share of impressions, its label rates and how specific its preferences are."""

    name: str
    share: float
    ctr: float
    action_rate: float = 0.25
    cvr: float = 0.06
    unclicked_cvr: float = 0.002
    specificity: float = 0.8


DEFAULT_SCENARIOS = (
    ScenarioConfig("home_feed", 0.60, ctr=0.05, action_rate=0.20, cvr=0.05, unclicked_cvr=0.0015, specificity=0.6),
    ScenarioConfig("search", 0.28, ctr=0.10, action_rate=0.30, cvr=0.09, unclicked_cvr=0.003, specificity=0.9),
    ScenarioConfig("detail_page", 0.12, ctr=0.07, action_rate=0.25, cvr=0.07, unclicked_cvr=0.002, specificity=1.2),
)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of the generator. Defaults produce three unequal scenarios over three daily spans."""

    rows: int = 200_000
    days: int = 3
    seed: int = 0
    num_users: int = 20_000
    num_items: int = 5_000
    latent_dim: int = 8
    impressions_per_request: int = 5
    scenarios: Tuple[ScenarioConfig, ...] = DEFAULT_SCENARIOS
    task_correlation: float = 0.6
    prior_gamma: float = 2.0
    prior_user_weight: float = 1.2
    prior_item_weight: float = 0.8
    conversion_action_lift: float = 1.5
    drift: float = 0.05
    missing_price_rate: float = 0.02
    start_timestamp: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    history_length: int = 0
    history_temperature: float = 2.0

    def __post_init__(self):
        if self.rows < 1:
            raise ValueError(f"rows must be >= 1, got {self.rows}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if not self.scenarios:
            raise ValueError("at least one scenario is required")
        if not 0 <= self.history_length <= self.num_items:
            raise ValueError(f"history_length must be in [0, num_items={self.num_items}], got {self.history_length}")
        total = sum(s.share for s in self.scenarios)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"scenario shares must sum to 1, got {total}")
        for s in self.scenarios:
            for name in ("ctr", "action_rate", "cvr", "unclicked_cvr"):
                v = getattr(s, name)
                if not 0.0 < v < 1.0:
                    raise ValueError(f"scenario {s.name}: {name} must be in (0, 1), got {v}")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(target: float, rate_fn: Callable[[float], float]) -> float:
    """Bisection for b such that rate_fn(b) == target (rate_fn increasing in b)."""
    lo, hi = -20.0, 20.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if rate_fn(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class _World:
    """Users, items, preference matrices and intercepts drawn once from the seed."""

    def __init__(self, cfg: GeneratorConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        k, S = cfg.latent_dim, len(cfg.scenarios)
        self.U = rng.standard_normal((cfg.num_users, k))
        self.V = rng.standard_normal((cfg.num_items, k))
        self.activity = rng.lognormal(0.0, 0.6, cfg.num_users)
        self.popularity = rng.lognormal(0.0, 0.8, cfg.num_items)
        self.user_age = rng.integers(0, 7, cfg.num_users)
        self.user_gender = rng.integers(0, 2, cfg.num_users)
        self.user_segment = np.argmax(self.U @ rng.standard_normal((k, 10)), axis=1)
        self.item_category = np.argmax(self.V @ rng.standard_normal((k, 30)), axis=1)
        self.item_brand = self.item_category * 10 + rng.integers(0, 10, cfg.num_items)
        tag_scores = self.V @ rng.standard_normal((k, 50))
        top2 = np.argsort(-tag_scores, axis=1)[:, :2]
        self.item_tags = np.concatenate([top2, rng.integers(0, 50, (cfg.num_items, 1))], axis=1)
        self.price = 20.0 * np.exp(0.5 * self.V[:, 0] + 0.3 * rng.standard_normal(cfg.num_items))
        self.price_z = (np.log(self.price) - np.log(self.price).mean()) / np.log(self.price).std()
        self.beta_age = 0.3 * rng.standard_normal(7)
        self.beta_hour = 0.2 * np.sin(np.arange(24) / 24.0 * 2 * np.pi)
        self.beta_price = -0.2
        # User activity is Zipf-like: a few heavy users make many requests.
        w = self.activity * rng.pareto(2.0, cfg.num_users).clip(0, 50)
        self.user_weights = (w + 1e-3) / (w + 1e-3).sum()
        self.item_weights = self.popularity / self.popularity.sum()
        # Related preference matrices per task, shared + scenario-specific + drift direction.
        r = cfg.task_correlation
        Bc = rng.standard_normal((k, k))
        Ba = r * Bc + np.sqrt(1 - r * r) * rng.standard_normal((k, k))
        Bv = r * Ba + np.sqrt(1 - r * r) * rng.standard_normal((k, k))
        self.B = {"c": Bc, "a": Ba, "v": Bv}
        self.A = {t: rng.standard_normal((S, k, k)) for t in "cav"}
        self.E = {t: rng.standard_normal((S, k, k)) for t in "cav"}
        self.gate_bias = 0.5 * rng.standard_normal(S)
        self.day_shift = np.concatenate([[0.0], np.cumsum(cfg.drift * rng.standard_normal(cfg.days - 1))])
        self._calibrate(rng)

    def histories(self, chunk: int = 1024) -> np.ndarray:
        """``[num_users, history_length]`` item indices: each user's history, most preferred first (Gumbel
        top-k over ``log w_i + tau u^T B_c v_i / k``, i.e. sampling without replacement from those weights)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 2])  # its own stream: the other columns do not change
        log_w = np.log(self.item_weights)
        preference = self.B["c"] @ self.V.T / cfg.latent_dim  # [k, items]
        out = np.empty((cfg.num_users, cfg.history_length), np.int64)
        for start in range(0, cfg.num_users, chunk):
            u = self.U[start:start + chunk]
            keys = log_w + cfg.history_temperature * (u @ preference) + rng.gumbel(size=(len(u), cfg.num_items))
            top = np.argpartition(-keys, cfg.history_length - 1, axis=1)[:, :cfg.history_length]
            order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
            out[start:start + chunk] = np.take_along_axis(top, order, axis=1)
        return out

    def matrix(self, task: str, s: int, day: int) -> np.ndarray:
        cfg = self.cfg
        frac = day / max(cfg.days, 1)
        return self.B[task] + cfg.scenarios[s].specificity * self.A[task][s] + frac * cfg.drift * 4 * self.E[task][s]

    def gain(self, users, items, s):
        cfg = self.cfg
        x = (cfg.prior_user_weight * np.log(self.activity[users])
             + cfg.prior_item_weight * np.log(self.popularity[items]) + self.gate_bias[s])
        return cfg.prior_gamma * _sigmoid(x)

    def match(self, task, users, items, s, day):
        M = self.matrix(task, s, day)
        return np.einsum("nk,kl,nl->n", self.U[users], M, self.V[items]) / self.cfg.latent_dim

    def click_logit_rest(self, users, items, hours):
        return self.beta_age[self.user_age[users]] + self.beta_hour[hours] + self.beta_price * self.price_z[items]

    def _calibrate(self, rng, n=40_000):
        """Solve per-scenario, per-day intercepts so each day's rates hit the configured values."""
        cfg = self.cfg
        self.b = {}
        for s, sc in enumerate(cfg.scenarios):
            users = rng.choice(cfg.num_users, n, p=self.user_weights)
            items = rng.choice(cfg.num_items, n, p=self.item_weights)
            hours = rng.integers(0, 24, n)
            for d in range(cfg.days):
                self.b[(s, d)] = self._solve_day(s, d, sc, users, items, hours)

    def _solve_day(self, s: int, d: int, sc: ScenarioConfig, users, items, hours) -> Dict[str, float]:
        """Intercepts of scenario ``s`` on day ``d`` for the sampled impressions: the configured rates."""
        g = self.gain(users, items, s)
        zc = g * self.match("c", users, items, s, d) + self.click_logit_rest(users, items, hours)
        za = g * self.match("a", users, items, s, d)
        zv = self.match("v", users, items, s, d)
        bc = _solve_intercept(sc.ctr, lambda b: _sigmoid(b + zc).mean())
        pc = _sigmoid(bc + zc)
        ba = _solve_intercept(sc.action_rate, lambda b: (pc * _sigmoid(b + za)).sum() / pc.sum())
        pa = _sigmoid(ba + za)
        lift = self.cfg.conversion_action_lift

        def cvr_given_click(b):
            pv = pa * _sigmoid(b + lift + zv) + (1 - pa) * _sigmoid(b + zv)
            return (pc * pv).sum() / pc.sum()

        bv = _solve_intercept(sc.cvr, cvr_given_click)
        bt = _solve_intercept(sc.unclicked_cvr, lambda b: ((1 - pc) * _sigmoid(b + zv)).sum() / (1 - pc).sum())
        return dict(c=bc, a=ba, v=bv, t=bt)


def generate(cfg: GeneratorConfig, progress: Optional[Callable[[str], None]] = None) -> Dict[str, np.ndarray]:
    """Generate ``cfg.rows`` impressions as a dict of equal-length numpy columns."""
    world = _World(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    S = len(cfg.scenarios)
    n_req = -(-cfg.rows // cfg.impressions_per_request)
    req_user = rng.choice(cfg.num_users, n_req, p=world.user_weights)
    req_scen = rng.choice(S, n_req, p=[s.share for s in cfg.scenarios])
    req_day = rng.integers(0, cfg.days, n_req)
    req_hour = rng.integers(0, 24, n_req)
    req_device = rng.integers(0, 3, n_req)
    rep = cfg.impressions_per_request
    n = cfg.rows
    request = np.repeat(np.arange(n_req), rep)[:n]
    users = req_user[request]
    scen = req_scen[request]
    day = req_day[request]
    hour = req_hour[request]
    items = rng.choice(cfg.num_items, n, p=world.item_weights)
    p_c = np.empty(n)
    p_a = np.empty(n)
    p_v1 = np.empty(n)
    p_v0 = np.empty(n)
    p_vt = np.empty(n)
    for s in range(S):
        for d in range(cfg.days):
            idx = np.nonzero((scen == s) & (day == d))[0]
            if idx.size == 0:
                continue
            u, it = users[idx], items[idx]
            b = world.b[(s, d)]
            g = world.gain(u, it, s)
            zc = g * world.match("c", u, it, s, d) + world.click_logit_rest(u, it, hour[idx])
            za = g * world.match("a", u, it, s, d)
            zv = world.match("v", u, it, s, d)
            p_c[idx] = _sigmoid(b["c"] + world.day_shift[d] + zc)
            p_a[idx] = _sigmoid(b["a"] + za)
            p_v1[idx] = _sigmoid(b["v"] + cfg.conversion_action_lift + zv)
            p_v0[idx] = _sigmoid(b["v"] + zv)
            p_vt[idx] = _sigmoid(b["t"] + zv)
        if progress:
            progress(f"scenario {cfg.scenarios[s].name}: {(scen == s).sum()} impressions")
    click = rng.random(n) < p_c
    action = click & (rng.random(n) < p_a)
    pv = np.where(action, p_v1, p_v0)
    conv = np.where(click, rng.random(n) < pv, rng.random(n) < p_vt)
    p_click_conv = p_c * (p_a * p_v1 + (1 - p_a) * p_v0)
    price = world.price[items].astype(np.float64)
    price[rng.random(n) < cfg.missing_price_rate] = np.nan
    tags = world.item_tags[items]
    ts = cfg.start_timestamp + day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    names = np.array([s.name for s in cfg.scenarios])
    devices = np.array(["ios", "android", "web"])
    extra = {}
    if cfg.history_length:
        history = world.histories()
        per_user = np.array(["|".join(f"i{i}" for i in row) for row in history])
        extra["recent_items"] = per_user[users] if n else np.array([], str)
    return {
        "request_id": np.char.add("r", request.astype(str)),
        "ts": ts.astype(np.int64),
        "span": day.astype(np.int64),
        "user_id": np.char.add("u", users.astype(str)),
        "item_id": np.char.add("i", items.astype(str)),
        "scenario": names[scen],
        "user_segment": world.user_segment[users].astype(np.int64),
        "user_age": world.user_age[users].astype(np.int64),
        "user_gender": world.user_gender[users].astype(np.int64),
        "user_activity": world.activity[users].round(4),
        "item_category": world.item_category[items].astype(np.int64),
        "item_brand": world.item_brand[items].astype(np.int64),
        "item_price": price.round(2),
        "item_popularity": world.popularity[items].round(4),
        "item_tags": np.array(["|".join(f"t{t}" for t in row) for row in tags]) if n else np.array([], str),
        "hour": hour.astype(np.int64),
        "device": devices[req_device[request]],
        "click": click.astype(np.int64),
        "action": action.astype(np.int64),
        "conversion": conv.astype(np.int64),
        "p_click": p_c.round(6),
        "p_click_action": (p_c * p_a).round(6),
        "p_click_conv": p_click_conv.round(6),
        "p_conv": (p_click_conv + (1 - p_c) * p_vt).round(6),
        **extra,
    }


# ---------------------------------------------------------------------- writing
def _write_csv(cols: Dict[str, np.ndarray], idx: np.ndarray, path: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({k: v[idx] for k, v in cols.items()})
    frame.to_csv(path, index=False, float_format="%.6g")


def _write_tfrecord(cols: Dict[str, np.ndarray], idx: np.ndarray, path: str) -> None:
    """Write gzipped tf.Examples; a NaN numeric becomes an absent feature (missing value)."""
    import pyarrow as pa
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    arrays, names = [], []
    for k, v in cols.items():
        v = v[idx]
        if v.dtype.kind == "f":
            arr = pa.array([None if np.isnan(x) else [float(x)] for x in v], type=pa.list_(pa.float32()))
        elif v.dtype.kind in "iu":
            arr = pa.array(v.reshape(-1, 1).tolist(), type=pa.list_(pa.int64()))
        else:
            arr = pa.array([[x.encode()] for x in v.tolist()], type=pa.list_(pa.binary()))
        arrays.append(arr)
        names.append(k)
    batch = pa.RecordBatch.from_arrays(arrays, names)
    encoder = example_coder.RecordBatchToExamplesEncoder()
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for start in range(0, batch.num_rows, 50_000):
            for rec in encoder.encode(batch.slice(start, 50_000)):
                w.write(rec)


def write_spans(cols: Dict[str, np.ndarray], output_dir: str, formats: Sequence[str] = ("csv",),
                progress: Optional[Callable[[str], None]] = None) -> List[str]:
    """Write one directory per day: ``span-<d>/impressions.csv`` and/or ``impressions.tfrecord.gz``."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for d in np.unique(cols["span"]):
        idx = np.nonzero(cols["span"] == d)[0]
        span_dir = os.path.join(output_dir, f"span-{int(d)}")
        os.makedirs(span_dir, exist_ok=True)
        for fmt in formats:
            if fmt == "csv":
                path = os.path.join(span_dir, "impressions.csv")
                _write_csv(cols, idx, path)
            elif fmt == "tfrecord":
                path = os.path.join(span_dir, "impressions.tfrecord.gz")
                _write_tfrecord(cols, idx, path)
            else:
                raise ValueError(f"unknown output format {fmt!r}; use csv or tfrecord")
            written.append(path)
            if progress:
                progress(f"wrote {idx.size} rows to {path}")
    return written


def oracle_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of the true probabilities (rank statistic with ties averaged); nan if one class is absent."""
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(probs, kind="mergesort")
    sorted_p = np.asarray(probs)[order]
    ranks = np.empty(labels.size)
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def summarize(cols: Dict[str, np.ndarray], cfg: GeneratorConfig) -> Dict[str, Dict[str, float]]:
    """Per scenario (and overall): share, label rates and oracle AUC of each label."""
    out = {}
    groups = [("overall", np.ones(len(cols["scenario"]), bool))]
    groups += [(s.name, cols["scenario"] == s.name) for s in cfg.scenarios]
    for name, mask in groups:
        click = cols["click"][mask]
        row = {
            "rows": int(mask.sum()),
            "share": float(mask.mean()),
            "ctr": float(click.mean()),
            "action_rate": float(cols["action"][mask].sum() / max(click.sum(), 1)),
            "cvr": float((cols["conversion"][mask] & click).sum() / max(click.sum(), 1)),
            "unclicked_cvr": float((cols["conversion"][mask] & (1 - click)).sum() / max((1 - click).sum(), 1)),
        }
        for label, oracle in LABEL_TO_ORACLE.items():
            row[f"oracle_auc_{label}"] = oracle_auc(cols[label][mask], cols[oracle][mask])
        row["oracle_auc_click_conv"] = oracle_auc(cols["conversion"][mask] & click, cols["p_click_conv"][mask])
        out[name] = row
    return out


def run(cfg: GeneratorConfig, output_dir: str, formats: Sequence[str] = ("csv",),
        progress: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """Generate, write span directories, and return a summary with timings."""
    t0 = time.time()
    cols = generate(cfg, progress)
    t_gen = time.time() - t0
    files = write_spans(cols, output_dir, formats, progress)
    return {"files": files, "generate_seconds": t_gen, "total_seconds": time.time() - t0,
            "summary": summarize(cols, cfg)}


# Head -> (oracle probability column, label roles whose product is the head's target).
ORACLE_FOR_HEAD = {
    "ctr": ("p_click", ("click",)),
    "ctavr": ("p_click_action", ("click", "raction")),
    "ctcvr": ("p_click_conv", ("click", "conversion")),
    "xcvr": ("p_conv", ("conversion",)),
}
