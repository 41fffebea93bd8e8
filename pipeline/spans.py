"""Daily spans: which span a run evaluates and which spans it trains on (next-span evaluation).

With ``{SPAN}`` in ``--data`` (one directory or file per day, e.g. ``logs/span-{SPAN}/impressions.csv``), a run
by default **trains on the earlier spans and evaluates on the latest one** (or on ``--span``), as ranking teams
evaluate: a random split of the same days leaks users, items and the day's own effects into the evaluation and
overstates AUC. ``--eval-split hash`` keeps the random (hash) split of one span instead.

It is built from TFX's own span machinery, not from copied files:

* every span is read by its own ExampleGen execution with a ``RangeConfig`` static range of that span
  (``msmt run`` first runs a short *ingest* pipeline, ExampleGen -> StatisticsGen -> SchemaGen ->
  ExampleValidator, for each training span that ML Metadata does not hold yet, in span order, so each span is
  validated against the one before it, as daily runs would have done);
* the main run's ExampleGen reads the evaluated span; a ``Resolver``
  (``pipeline.resolvers.training_spans_resolver``: TFX's ``SpanRangeStrategy`` over a ``RangeConfig`` static
  range) gives Transform and the Trainer the Examples artifacts of the training spans;
* the Evaluator evaluates every split of the evaluated span.

Each span's ExampleGen output has three hash splits: ``train`` and ``eval`` (both trained on in next-span mode)
and ``calibration``, held out from training and from evaluation, on which the Trainer fits the served
probabilities' calibration (``models.base.MultiTaskRanker.calibrate``). In hash mode the Evaluator evaluates
the ``eval`` split and the Trainer trains on ``train`` only.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

SPAN_TOKEN = "{SPAN}"
EVAL_SPLIT_MODES = ("next-span", "hash")
TRAIN_SPLIT, CALIBRATION_SPLIT, EVAL_SPLIT = "train", "calibration", "eval"


def span_regex(pattern: str) -> "re.Pattern":
    """A regex that matches the files of glob ``pattern`` and captures the number at ``{SPAN}``."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith(SPAN_TOKEN, i):
            out.append(r"(\d+)")
            i += len(SPAN_TOKEN)
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "$")


def available_spans(pattern: str) -> List[int]:
    """The span numbers with at least one file matching ``pattern`` (which holds ``{SPAN}``), ascending."""
    pattern = os.path.abspath(pattern)
    regex = span_regex(pattern)
    spans = set()
    for path in glob.glob(pattern.replace(SPAN_TOKEN, "*")):
        m = regex.match(path)
        if m:
            spans.add(int(m.group(1)))
    return sorted(spans)


@dataclasses.dataclass(frozen=True)
class SpanPlan:
    """What one run reads.

    Attributes:
      mode: ``next-span`` (train on ``train_spans``, evaluate ``eval_span``) or ``hash`` (one span or no spans;
        train and evaluate on hash splits of the same data).
      eval_span: the span the run's ExampleGen reads (None: no ``{SPAN}`` in the data, or the latest).
      train_spans: next-span mode: the spans the model trains on, ascending.
      note: why the mode differs from the one asked for, if it does.
    """

    mode: str
    eval_span: Optional[int] = None
    train_spans: Tuple[int, ...] = ()
    note: str = ""

    @property
    def next_span(self) -> bool:
        return self.mode == "next-span"

    @property
    def trainer_train_splits(self) -> List[str]:
        return [TRAIN_SPLIT, EVAL_SPLIT] if self.next_span else [TRAIN_SPLIT]

    @property
    def evaluator_splits(self) -> List[str]:
        return [TRAIN_SPLIT, CALIBRATION_SPLIT, EVAL_SPLIT] if self.next_span else [EVAL_SPLIT]

    def to_dict(self) -> Dict:
        return {"mode": self.mode, "eval_span": self.eval_span, "train_spans": list(self.train_spans),
                "note": self.note}


def plan_spans(data: str, eval_split: str, span: Optional[int], train_spans: Optional[int]) -> SpanPlan:
    """The :class:`SpanPlan` of a run over ``data``.

    Args:
      data: the ``--data`` pattern; spans only with ``{SPAN}`` in it.
      eval_split: ``next-span`` (default) or ``hash``.
      span: the span to evaluate (None = the latest present).
      train_spans: next-span mode: train on at most this many spans before the evaluated one (None = all).
    """
    if SPAN_TOKEN not in data:
        return SpanPlan("hash", note="no {SPAN} in --data: one input, hash split" if eval_split != "hash" else "")
    spans = available_spans(data)
    eval_span = span if span is not None else (spans[-1] if spans else None)
    if eval_split == "hash":
        return SpanPlan("hash", eval_span=span)
    earlier = [s for s in spans if eval_span is not None and s < eval_span]
    if train_spans is not None:
        earlier = earlier[-train_spans:]
    if not earlier:
        return SpanPlan("hash", eval_span=span,
                        note=f"no span before span {eval_span}: hash split of span {eval_span}")
    return SpanPlan("next-span", eval_span=eval_span, train_spans=tuple(earlier))


def newest_per_span(artifacts: Sequence) -> List:
    """One artifact per span: the highest (version, id); spans in the order of their first appearance."""
    best: Dict[int, object] = {}
    order: List[int] = []

    def rank(a):
        version = a.get_int_custom_property("version") if a.has_custom_property("version") else 0
        return (version, a.id)

    for a in artifacts:
        span = int(a.get_string_custom_property("span") or a.get_int_custom_property("span"))
        if span not in best:
            order.append(span)
            best[span] = a
        elif rank(a) > rank(best[span]):
            best[span] = a
    return [best[s] for s in order]
