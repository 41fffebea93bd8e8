"""The model card every pushed version carries: ``assets.extra/model_card.md`` and ``model_card.json``.

What a team needs before it lets a version take traffic, in one place beside the SavedModel:

* the model and where it came from (zoo model, its config, the train config, the Trainer artifact);
* the data: the spans it was trained on and the span it was evaluated on, the spec's features and labels;
* the evaluation on that span per head and slice (AUC, calibration, positives) and the blessing verdict,
  with the slices too thin to gate;
* the drift of the evaluated span against the last accepted one (the ExampleValidator's ``drift.json``);
* known limits: heads the model does not serve for this spec, slices not gated, shifts above warning level.

Model Card Toolkit would be the ecosystem's format, but its newest release (2.0.0) pins ``absl-py<1.1`` and
``jsonschema<4``; beside TFX 1.21 on Python 3.13 pip backtracks into source builds of old numpy and TFMA
releases and does not install it (docs/serving.md). So the card is written here, as Markdown for people and
JSON (the same content) for tools.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

CARD_MARKDOWN = "model_card.md"
CARD_JSON = "model_card.json"
CARD_METRICS = ("auc", "calibration", "example_count")


def build_card(*, model_uri: str, version: str, train_summary: Optional[Dict[str, Any]],
               export_metadata: Optional[Dict[str, Any]], spans: Optional[Dict[str, Any]],
               metrics: Dict[Any, Dict[str, float]], gating: Optional[Dict[str, Any]],
               drift: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The card's content as a JSON-ready dict (every argument may be partly missing: a card says so). Only
    blessed models are published, so the verdict is always blessed."""
    train_summary, export_metadata, gating = train_summary or {}, export_metadata or {}, gating or {}
    spec = export_metadata.get("spec") or {}
    served = list(export_metadata.get("heads") or train_summary.get("outputs") or [])
    evaluation = [{"head": head, "slice": where, **{k: values.get(k) for k in CARD_METRICS if k in values}}
                  for (head, where), values in sorted(metrics.items())]
    shifts = (drift or {}).get("features") or []
    limits = []
    for item in gating.get("not_gated") or []:
        limits.append(f"{item['head']} on {item['slice']}: {item['positives']} positives, under the "
                      f"{gating.get('min_positives')} needed to gate its {item['metric']}")
    for row in shifts:
        if row["level"] != "ok":
            limits.append(f"{row['feature']} shifted by {row['value']:.4f} ({row['measure']}) against the last "
                          f"accepted span, above its warning level {row['warn']:g}")
    missing = [h for h in _spec_heads(spec) if h not in served] if served else []
    if missing:
        limits.append(f"serves no {', '.join(missing)}, which this spec's labels support (the model cannot "
                      f"compose them)")
    return {
        "model": {"name": train_summary.get("model"), "version": version, "source_artifact": model_uri,
                  "served_heads": served, "model_config": train_summary.get("model_config"),
                  "train_config": train_summary.get("train_config"), "seed": train_summary.get("seed"),
                  "train_seconds": train_summary.get("train_seconds"),
                  "calibration": bool((train_summary.get("train_config") or {}).get("calibrate"))},
        "data": {"spans": spans, "spec": spec.get("name"),
                 "features": [f"{f['name']} ({f['role']})" for f in spec.get("features", [])],
                 "labels": {k: v for k, v in (spec.get("labels") or {}).items() if isinstance(v, str)}},
        "evaluation": evaluation,
        "blessing": {"blessed": True, "min_positives": gating.get("min_positives")},
        "drift": {"baseline": (drift or {}).get("baseline"),
                  "above_warning": [r for r in shifts if r["level"] != "ok"],
                  "largest": shifts[:5]},
        "known_limits": limits,
    }


def _spec_heads(spec: Dict[str, Any]) -> List[str]:
    """The impression heads the spec's labels support (``features.labels``); none without a spec."""
    if not spec:
        return []
    from features.labels import head_label_columns
    from features.spec import spec_from_dict

    return list(head_label_columns(spec_from_dict(spec)))


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_markdown(card: Dict[str, Any]) -> str:
    """The card as Markdown."""
    m, d, b = card["model"], card["data"], card["blessing"]
    spans = d.get("spans") or {}
    lines = [f"# Model card: {m['name']} version {m['version']}", "",
             "## Model", "",
             f"* zoo model `{m['name']}`, serving heads {', '.join(m['served_heads']) or '-'}",
             f"* source: `{m['source_artifact']}`",
             f"* model config: `{json.dumps(m['model_config'], sort_keys=True)}`",
             f"* train config: `{json.dumps(m['train_config'], sort_keys=True)}`",
             f"* seed {m['seed']}, trained in {_f(m['train_seconds'], '.0f')} s, calibrated per scenario: "
             f"{'yes' if m['calibration'] else 'no'}", "",
             "## Data", "",
             f"* evaluation: {spans.get('mode', '?')}; trained on span(s) "
             f"{', '.join(map(str, spans.get('train_spans') or [])) or 'the same span (hash split)'}, evaluated "
             f"on span {spans.get('eval_span', '?')}",
             f"* spec `{d['spec']}`: {', '.join(d['features'])}",
             f"* labels: {', '.join(f'{k} = `{v}`' for k, v in d['labels'].items())}", "",
             "## Evaluation on the evaluated span", "",
             "| head | slice | AUC | calibration | examples |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['head']} | {r['slice']} | {_f(r.get('auc'), '.4f')} | {_f(r.get('calibration'), '.3f')} | "
              f"{_f(r.get('example_count'), '.0f')} |" for r in card["evaluation"]]
    lines += ["", "## Blessing", "", f"Verdict: BLESSED (every served head passed the gate; slices with fewer "
              f"than {b['min_positives']} positives are listed under known limits)"]
    drift = card["drift"]
    lines += ["", "## Drift against the last accepted span", ""]
    if not drift["largest"]:
        lines.append("No accepted span to compare with (a first run)." if not drift["baseline"]
                     else "No drift measurement.")
    else:
        lines += ["| feature | measure | shift | warn | block |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['feature']} | {r['measure']} | {r['value']:.4f} | {r['warn']:g} | {r['block']:g} |"
                  for r in drift["largest"]]
    lines += ["", "## Known limits", ""]
    lines += [f"* {x}" for x in card["known_limits"]] or ["* none recorded"]
    return "\n".join(lines) + "\n"


def write_card(directory: str, card: Dict[str, Any]) -> List[str]:
    """Write ``model_card.md`` and ``model_card.json`` into ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    md, js = os.path.join(directory, CARD_MARKDOWN), os.path.join(directory, CARD_JSON)
    with open(md, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(card))
    with open(js, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=1, sort_keys=True, default=str)
    return [md, js]
