"""GAUC: impression-weighted mean of per-user AUC, as a custom TFMA metric (docs/evaluation.md).

    GAUC = sum_u n_u * AUC_u / sum_u n_u

over the users ``u`` whose labels contain both classes; ``n_u`` is the user's number of impressions (the sum
of the example weights when the metrics spec is example-weighted) and ``AUC_u`` the exact AUC of the user's
impressions: the probability that a random positive scores above a random negative, ties counted 1/2
(the Mann-Whitney statistic with mid-ranks). A label counts as positive when it is > 0.5. Users with a
single class do not enter either sum; when no user has both classes GAUC is NaN.

Use it from an EvalConfig like any TFMA metric::

    MetricConfig(class_name="GAUC", module="pipeline.gauc", config='{"user_key": "user_id"}')

``user_key`` names the raw feature (of the evaluated tf.Examples) holding the user id; a feature
preprocessor brings it to the combiner next to the labels and predictions, per model and per output (one
GAUC per head, like AUC). Besides ``gauc`` the metric writes ``gauc_users``, the number of users GAUC
averages over. Examples without a user id are not counted.

Cost: per example, head and slice the combiner reads one label and one prediction (a shortcut for plain
binary heads, about 25 us; anything else goes through TFMA's generic ``to_label_prediction_example_weight``)
and keeps (user, label, prediction, weight) in numpy chunks: user ids as stable 64-bit hashes, 28 bytes per
example, head and slice, held until the end of the evaluation (an exact per-user AUC needs every example of
a slice in one place; 1M eval rows x 4 heads x (overall + scenario) is about 220 MB). Every user's AUC is
then computed in one vectorised pass (sort by user and score).
"""

from __future__ import annotations

import hashlib
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

GAUC_NAME = "gauc"
USERS_SUFFIX = "_users"
DEFAULT_USER_KEY = "user_id"
_FLUSH_EVERY = 4096


# ------------------------------------------------------------------------------------ pure functions
def auc_with_ties(labels: Sequence[float], predictions: Sequence[float],
                  weights: Optional[Sequence[float]] = None) -> float:
    """Exact (weighted) AUC of one group: P(score of a positive > score of a negative), ties count 1/2.

    Pairs are weighted by the product of the example weights. NaN when the labels hold a single class.
    """
    y = np.asarray(labels, dtype=np.float64) > 0.5
    p = np.asarray(predictions, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    pos_w, neg_w = w[y].sum(), w[~y].sum()
    if pos_w <= 0 or neg_w <= 0:
        return float("nan")
    # Walk the distinct scores in increasing order: a positive at score s beats the negatives below s
    # and ties with the negatives at s.
    order = np.argsort(p, kind="mergesort")
    p, y, w = p[order], y[order], w[order]
    distinct, start = np.unique(p, return_index=True)
    pos_at = np.add.reduceat(np.where(y, w, 0.0), start)
    neg_at = np.add.reduceat(np.where(y, 0.0, w), start)
    neg_below = np.cumsum(neg_at) - neg_at
    return float(np.sum(pos_at * (neg_below + 0.5 * neg_at)) / (pos_w * neg_w))


def per_user_auc(users: Sequence, labels: Sequence[float], predictions: Sequence[float],
                 weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised per-user AUC: (user codes, AUC per user or NaN, n_u = impressions or weight per user).

    ``users`` may hold any hashable ids; the returned codes index ``np.unique`` of them.
    """
    users = np.asarray(users)
    y = np.asarray(labels, dtype=np.float64) > 0.5
    p = np.asarray(predictions, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(y):
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    uniq, codes = np.unique(users, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.lexsort((p, codes))  # by user, then by score
    c, p, y, w = codes[order], p[order], y[order], w[order]
    # Groups of equal (user, score): ties.
    new_group = np.ones(len(c), dtype=bool)
    new_group[1:] = (c[1:] != c[:-1]) | (p[1:] != p[:-1])
    start = np.flatnonzero(new_group)
    g_user = c[start]
    pos_at = np.add.reduceat(np.where(y, w, 0.0), start)
    neg_at = np.add.reduceat(np.where(y, 0.0, w), start)
    # Negative weight strictly below each group, within its user.
    cum_neg = np.cumsum(neg_at) - neg_at
    n_users = len(uniq)
    first_group_of_user = np.searchsorted(g_user, g_user, side="left")  # g_user is sorted
    neg_below = cum_neg - cum_neg[first_group_of_user]
    num = np.bincount(g_user, weights=pos_at * (neg_below + 0.5 * neg_at), minlength=n_users)
    pos_w = np.bincount(g_user, weights=pos_at, minlength=n_users)
    neg_w = np.bincount(g_user, weights=neg_at, minlength=n_users)
    n_u = pos_w + neg_w
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((pos_w > 0) & (neg_w > 0), num / (pos_w * neg_w), np.nan)
    return np.arange(n_users), auc, n_u


def gauc_and_users(users: Sequence, labels: Sequence[float], predictions: Sequence[float],
                   weights: Optional[Sequence[float]] = None) -> Tuple[float, int]:
    """(GAUC, number of users with both classes); GAUC is NaN when there is no such user."""
    _, auc, n_u = per_user_auc(users, labels, predictions, weights)
    ok = ~np.isnan(auc)
    if not ok.any() or n_u[ok].sum() <= 0:
        return float("nan"), int(ok.sum())
    return float(np.sum(n_u[ok] * auc[ok]) / np.sum(n_u[ok])), int(ok.sum())


def gauc(users: Sequence, labels: Sequence[float], predictions: Sequence[float],
         weights: Optional[Sequence[float]] = None) -> float:
    """sum_u n_u AUC_u / sum_u n_u over users with both classes (NaN when there is none)."""
    return gauc_and_users(users, labels, predictions, weights)[0]


def user_hash(value) -> Optional[int]:
    """A stable (process-independent) signed 64-bit hash of one user id value; None when missing."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.reshape(-1)[0] if value.size == 1 else tuple(value.reshape(-1).tolist())
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0] if len(value) == 1 else tuple(value)
    if isinstance(value, np.generic):
        value = value.item()
    raw = value if isinstance(value, bytes) else repr(value).encode() if not isinstance(value, str) \
        else value.encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


# ------------------------------------------------------------------------------------ TFMA metric
class GAUC(metric_types.Metric):
    """Group AUC by user: impression-weighted mean of per-user AUC (users with both labels only).

    Writes two metrics per model, output and slice: ``<name>`` (GAUC) and ``<name>_users`` (the number of users
    with both classes that GAUC averages over: a small count means a noisy GAUC).

    Args:
      name: metric name (default ``gauc``).
      user_key: raw feature holding the user id (default ``user_id``).
    """

    def __init__(self, name: str = GAUC_NAME, user_key: str = DEFAULT_USER_KEY):
        super().__init__(_gauc_computations, name=name, user_key=user_key)

    @property
    def compute_confidence_interval(self) -> bool:
        return False


metric_types.register_metric(GAUC)


def _gauc_computations(name: str = GAUC_NAME, user_key: str = DEFAULT_USER_KEY,
                       eval_config: Optional[config_pb2.EvalConfig] = None,
                       model_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None,
                       example_weighted: bool = False) -> metric_types.MetricComputations:
    if not user_key:
        raise ValueError("GAUC needs a user_key (the raw feature holding the user id)")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key, users_key = (metric_types.MetricKey(name=n, model_name=model_name, output_name=output_name,
                                                     example_weighted=example_weighted)
                              for n in (name, name + USERS_SUFFIX))
            computations.append(metric_types.MetricComputation(
                keys=[key, users_key],
                preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[user_key])],
                combiner=_GAUCCombiner(key, users_key, eval_config, example_weighted, user_key)))
    return computations


class _GAUCAccumulator:
    """Examples of one slice: pending python lists, flushed into numpy chunks."""

    __slots__ = ["users", "labels", "preds", "weights", "chunks", "missing_user"]

    def __init__(self):
        self.users: List[int] = []
        self.labels: List[float] = []
        self.preds: List[float] = []
        self.weights: List[float] = []
        self.chunks: List[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.missing_user = 0

    def flush(self) -> None:
        if self.users:
            self.chunks.append((np.asarray(self.users, np.int64), np.asarray(self.labels, np.float32),
                                np.asarray(self.preds, np.float64), np.asarray(self.weights, np.float64)))
            self.users, self.labels, self.preds, self.weights = [], [], [], []

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self.flush()
        if len(self.chunks) > 1:
            self.chunks = [tuple(np.concatenate(parts) for parts in zip(*self.chunks))]
        if not self.chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0), np.zeros(0)
        return self.chunks[0]


class _GAUCCombiner(beam.CombineFn):
    """Accumulates (user, label, prediction, weight) per slice; GAUC at extract time."""

    def __init__(self, key: metric_types.MetricKey, users_key: metric_types.MetricKey,
                 eval_config: Optional[config_pb2.EvalConfig], example_weighted: bool, user_key: str):
        self._key = key
        self._users_key = users_key
        self._eval_config = eval_config
        self._example_weighted = example_weighted
        self._user_key = user_key
        self._missing_user = beam.metrics.Metrics.counter("msmt", "gauc_examples_without_user")

    def create_accumulator(self) -> _GAUCAccumulator:
        return _GAUCAccumulator()

    def add_input(self, accumulator: _GAUCAccumulator,
                  element: metric_types.StandardMetricInputs) -> _GAUCAccumulator:
        features = element.features or {}
        user = user_hash(features.get(self._user_key))
        if user is None:
            accumulator.missing_user += 1
            self._missing_user.inc()
            return accumulator
        fast = None if self._example_weighted else self._single_label_prediction(element)
        if fast is not None:
            accumulator.users.append(user)
            accumulator.labels.append(fast[0])
            accumulator.preds.append(fast[1])
            accumulator.weights.append(1.0)
        else:
            for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                    element, eval_config=self._eval_config, model_name=self._key.model_name,
                    output_name=self._key.output_name, example_weighted=self._example_weighted, flatten=True):
                accumulator.users.append(user)
                accumulator.labels.append(float(np.asarray(label).item()))
                accumulator.preds.append(float(np.asarray(prediction).item()))
                accumulator.weights.append(float(np.asarray(weight).item()))
        if len(accumulator.users) >= _FLUSH_EVERY:
            accumulator.flush()
        return accumulator

    def _single_label_prediction(self, element) -> Optional[Tuple[float, float]]:
        """(label, prediction) of a plain binary head with one numeric value each, else None.

        A shortcut (about 4x cheaper) for the common case; anything else (dict-valued predictions, label
        vocabularies, several classes, example weights) goes through TFMA's generic
        ``to_label_prediction_example_weight``.
        """
        try:
            label = element.get_labels(self._key.model_name, self._key.output_name)
            prediction = element.get_predictions(self._key.model_name, self._key.output_name)
        except (KeyError, ValueError, TypeError):
            return None
        if (isinstance(label, np.ndarray) and isinstance(prediction, np.ndarray) and label.size == 1
                and prediction.size == 1 and label.dtype.kind in "biuf" and prediction.dtype.kind == "f"):
            return float(label.reshape(-1)[0]), float(prediction.reshape(-1)[0])
        return None

    def merge_accumulators(self, accumulators: Iterable[_GAUCAccumulator]) -> _GAUCAccumulator:
        it = iter(accumulators)
        result = next(it)
        result.flush()
        for acc in it:
            acc.flush()
            result.chunks.extend(acc.chunks)
            result.missing_user += acc.missing_user
        return result

    def compact(self, accumulator: _GAUCAccumulator) -> _GAUCAccumulator:
        accumulator.arrays()
        return accumulator

    def extract_output(self, accumulator: _GAUCAccumulator) -> Dict[metric_types.MetricKey, float]:
        users, labels, preds, weights = accumulator.arrays()
        value, n_users = gauc_and_users(users, labels, preds, weights if self._example_weighted else None)
        return {self._key: value, self._users_key: float(n_users)}
