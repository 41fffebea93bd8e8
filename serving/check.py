"""``export-check``: prove that an exported SavedModel version is servable (docs/serving.md).

:func:`export_check` runs, on one version directory:

1. every signature's inputs and outputs (dtype, shape, tensor name) as ``saved_model_cli show --all`` lists
   them, read from the MetaGraphDef; ``serving_default`` must take exactly one ``DT_STRING`` input;
2. ``serving_default`` through a TF1 session (``tf.compat.v1.saved_model.loader.load``) fed by tensor names;
3. every signature through ``tf.saved_model.load`` (TF2);
4. every warm-up request of ``assets.extra/tf_serving_warmup_requests`` replayed (the file must exist);
5. outputs: the heads of ``assets.extra/msmt_export.json``, finite and in [0, 1]; TF1 and TF2 agree; and
   ``predict_raw`` gives the same numbers as ``serving_default`` on the warm-up rows decoded to raw tensors.

The warm-up requests of ``serving_default`` supply the examples. TensorFlow is imported only when a check
runs, so registering the CLI subcommand (:func:`add_export_check_parser`) stays cheap.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, Dict, List, Optional

from serving.interface import PREDICT_RAW_SIGNATURE, SERVING_SIGNATURE

TOLERANCE = 1e-5
SERVE_TAG = "serve"


@dataclasses.dataclass
class CheckResult:
    """``ok`` when ``problems`` is empty; ``lines`` is the human-readable report."""

    ok: bool
    problems: List[str]
    lines: List[str]


class _Report:
    """Collects report lines and problems; runs each check step, turning its exception into a problem."""

    def __init__(self):
        self.lines: List[str] = []
        self.problems: List[str] = []

    def problem(self, msg: str) -> None:
        self.problems.append(msg)
        self.lines.append(f"[FAIL] {msg}")

    def step(self, title: str, fn: Callable[[], Optional[str]]):
        """Run ``fn``; a returned string is a detail for the ``[ok]`` line. Returns True when it passed."""
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure of a step is reported, not raised
            self.problem(f"{title}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            return False
        self.lines.append(f"[ok] {title}" + (f": {detail}" if detail else ""))
        return True

    def result(self) -> CheckResult:
        return CheckResult(ok=not self.problems, problems=list(self.problems), lines=list(self.lines))


# ------------------------------------------------------------------------------------- (a) signatures
def _shape_text(shape) -> str:
    if shape.unknown_rank:
        return "unknown_rank"
    return "(" + ", ".join(str(d.size) for d in shape.dim) + ")"


def _tensor_lines(kind: str, tensors) -> List[str]:
    from tensorflow.core.framework import types_pb2

    lines = [f"  The given SavedModel SignatureDef contains the following {kind}(s):"]
    for key in sorted(tensors):
        info = tensors[key]
        lines += [f"    {kind}s['{key}'] tensor_info:", f"        dtype: {types_pb2.DataType.Name(info.dtype)}",
                  f"        shape: {_shape_text(info.tensor_shape)}", f"        name: {info.name}"]
    return lines


def describe_signatures(meta_graph) -> List[str]:
    """Every signature's inputs/outputs, laid out like ``saved_model_cli show --all``."""
    lines = []
    for name in sorted(meta_graph.signature_def):
        sig = meta_graph.signature_def[name]
        lines.append(f"signature_def['{name}']:")
        lines += _tensor_lines("input", sig.inputs) + _tensor_lines("output", sig.outputs)
        lines.append(f"  Method name is: {sig.method_name}")
    return lines


def serving_input_key(meta_graph) -> str:
    """The single ``DT_STRING`` input of ``serving_default``; ``ValueError`` otherwise."""
    from tensorflow.core.framework import types_pb2


    if SERVING_SIGNATURE not in meta_graph.signature_def:
        raise ValueError(f"no {SERVING_SIGNATURE} signature (has {sorted(meta_graph.signature_def)})")
    inputs = meta_graph.signature_def[SERVING_SIGNATURE].inputs
    kinds = {k: types_pb2.DataType.Name(v.dtype) for k, v in inputs.items()}
    if list(kinds.values()) != ["DT_STRING"]:
        raise ValueError(f"{SERVING_SIGNATURE} must take exactly one DT_STRING input, has {kinds}")
    return next(iter(kinds))


# --------------------------------------------------------------------------------------- running
def run_tf1(model_dir: str, input_key: str, examples: List[bytes]) -> Dict[str, "object"]:
    """``serving_default`` through a TF1 session in a fresh graph, fed and fetched by tensor names."""
    import tensorflow as tf


    logger, level = tf.get_logger(), tf.get_logger().level
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        logger.setLevel("ERROR")  # the TF1 loader is deprecated; exercising it is the point here
        try:
            meta = tf.compat.v1.saved_model.loader.load(sess, [SERVE_TAG], model_dir)
        finally:
            logger.setLevel(level)
        sig = meta.signature_def[SERVING_SIGNATURE]
        fetches = {k: v.name for k, v in sig.outputs.items()}
        return sess.run(fetches, feed_dict={sig.inputs[input_key].name: examples})


def call_signature(fn, inputs: Dict[str, object]) -> Dict[str, "object"]:
    """Call a TF2 signature with numpy/list inputs; returns numpy outputs."""
    import tensorflow as tf

    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def output_problems(outputs: Dict[str, object], heads: List[str], rows: int) -> List[str]:
    """Missing heads, wrong lengths, non-finite or out-of-[0, 1] values."""
    import numpy as np

    problems = [f"missing head {h!r} (outputs: {sorted(outputs)})" for h in heads if h not in outputs]
    for head in heads:
        if head not in outputs:
            continue
        v = np.asarray(outputs[head], dtype=np.float64).reshape(-1)
        if v.size != rows:
            problems.append(f"head {head!r}: {v.size} values for {rows} examples")
        elif not np.all(np.isfinite(v)):
            problems.append(f"head {head!r}: non-finite values")
        elif v.min() < 0.0 or v.max() > 1.0:
            problems.append(f"head {head!r}: values outside [0, 1] (min {v.min():.4g}, max {v.max():.4g})")
    return problems


def max_difference(a: Dict[str, object], b: Dict[str, object], heads: List[str]) -> float:
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(a[h], np.float64) - np.asarray(b[h], np.float64)), initial=0.0))
               for h in heads)


def _require(problems: List[str]) -> None:
    if problems:
        raise AssertionError("; ".join(problems))


def _agree(a, b, heads, what: str) -> str:
    diff = max_difference(a, b, heads)
    if not diff <= TOLERANCE:
        raise AssertionError(f"{what} differ by {diff:.3g} (tolerance {TOLERANCE})")
    return f"max |difference| {diff:.2g}"


# ---------------------------------------------------------------------------------- the check
class _ExportCheck:
    """State shared by the steps of one :func:`export_check`."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.report = _Report()
        self.meta = None
        self.input_key = None
        self.metadata: Dict = {}
        self.heads: List[str] = []
        self.requests: List = []
        self.examples: List[bytes] = []
        self.loaded = None
        self.tf1: Dict = {}
        self.tf2: Dict = {}

    # ----- steps (each returns a detail string or raises)
    def read_meta_graph(self) -> str:
        from tensorflow.python.tools import saved_model_utils

        self.meta = saved_model_utils.get_meta_graph_def(self.model_dir, SERVE_TAG)
        self.report.lines += describe_signatures(self.meta)
        return f"{len(self.meta.signature_def)} signatures"

    def serving_input(self) -> str:
        self.input_key = serving_input_key(self.meta)
        return f"one DT_STRING input {self.input_key!r}"

    def read_metadata(self) -> str:
        from serving.signatures import read_export_metadata

        self.metadata = read_export_metadata(self.model_dir)
        self.heads = list(self.metadata["heads"])
        return "heads " + ", ".join(self.heads)

    def read_warmup(self) -> str:
        from serving.warmup import read_warmup_requests

        self.requests = read_warmup_requests(self.model_dir)
        serving = [r.predict_log.request for r in self.requests
                   if r.predict_log.request.model_spec.signature_name in ("", SERVING_SIGNATURE)]
        if not serving:
            raise ValueError(f"none of the {len(self.requests)} warm-up records calls {SERVING_SIGNATURE}")
        self.examples = max((self._request_examples(r) for r in serving), key=len)
        return f"{len(self.requests)} records; using {len(self.examples)} examples"

    def _request_examples(self, request) -> List[bytes]:
        import tensorflow as tf

        if self.input_key not in request.inputs:
            raise ValueError(f"warm-up request has inputs {sorted(request.inputs)}, not {self.input_key!r}")
        return [bytes(x) for x in tf.make_ndarray(request.inputs[self.input_key]).reshape(-1)]

    def tf1_session(self) -> str:
        self.tf1 = run_tf1(self.model_dir, self.input_key, self.examples)
        _require(output_problems(self.tf1, self.heads, len(self.examples)))
        return f"{len(self.examples)} examples"

    def tf2_load(self) -> str:
        import tensorflow as tf

        self.loaded = tf.saved_model.load(self.model_dir)
        return "signatures " + ", ".join(sorted(self.loaded.signatures))

    def tf2_serving(self) -> str:

        fn = self.loaded.signatures[SERVING_SIGNATURE]
        self.tf2 = call_signature(fn, {self.input_key: self.examples})
        _require(output_problems(self.tf2, self.heads, len(self.examples)))
        return f"{len(self.examples)} examples"

    def tf1_vs_tf2(self) -> str:
        return _agree(self.tf1, self.tf2, self.heads, "TF1 and TF2 outputs")

    def predict_raw(self) -> str:
        from serving.signatures import RAW_DTYPES, predict_raw_inputs, raw_inputs_from_examples

        fn = self.loaded.signatures[PREDICT_RAW_SIGNATURE]
        dtypes = {k: RAW_DTYPES[d] for k, d in predict_raw_inputs(fn, self.metadata).items()}
        raw = call_signature(fn, raw_inputs_from_examples(self.examples, dtypes))
        _require(output_problems(raw, self.heads, len(self.examples)))
        return f"{len(dtypes)} raw inputs; " + _agree(raw, self.tf2, self.heads, "predict_raw and serving_default")

    def example_signature(self, name: str) -> Callable[[], str]:
        def run() -> str:
            fn = self.loaded.signatures[name]
            (key,) = fn.structured_input_signature[1]
            out = call_signature(fn, {key: self.examples})
            return f"{len(out)} outputs"
        return run

    def replay(self, record) -> Callable[[], str]:
        def run() -> str:
            import tensorflow as tf


            request = record.predict_log.request
            name = request.model_spec.signature_name or SERVING_SIGNATURE
            if name not in self.loaded.signatures:
                raise ValueError(f"signature {name!r} does not exist (has {sorted(self.loaded.signatures)})")
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            out = call_signature(self.loaded.signatures[name], inputs)
            rows = len(next(iter(inputs.values()))) if inputs else 0
            if name == SERVING_SIGNATURE:
                _require(output_problems(out, self.heads, rows))
            return f"{name}, {rows} examples"
        return run

    # ----- orchestration
    def run(self) -> CheckResult:
        r = self.report
        r.lines.append(f"SavedModel: {os.path.abspath(self.model_dir)}")
        if not r.step("read MetaGraphDef (tag 'serve')", self.read_meta_graph):
            return r.result()
        ok_input = r.step("serving_default input", self.serving_input)
        if not r.step("export metadata (assets.extra/msmt_export.json)", self.read_metadata):
            self.heads = self._signature_heads()
        ok_examples = ok_input and r.step("warm-up requests (assets.extra/tf_serving_warmup_requests)",
                                          self.read_warmup)
        ok_tf1 = ok_examples and r.step("TF1 session loader: serving_default", self.tf1_session)
        if not r.step("tf.saved_model.load", self.tf2_load):
            return r.result()
        self._require_signatures()
        if ok_examples:
            self._run_signatures(ok_tf1)
        else:
            r.lines.append("[skip] TF2 signatures: no serving_default examples to run them on")
        for i, record in enumerate(self.requests):
            r.step(f"warm-up request {i + 1}/{len(self.requests)}", self.replay(record))
        return r.result()

    def _signature_heads(self) -> List[str]:

        sigs = self.meta.signature_def
        return sorted(sigs[SERVING_SIGNATURE].outputs) if SERVING_SIGNATURE in sigs else []

    def _require_signatures(self) -> None:

        for name in (SERVING_SIGNATURE, PREDICT_RAW_SIGNATURE):
            if name not in self.loaded.signatures:
                self.report.problem(f"no {name} signature (has {sorted(self.loaded.signatures)})")

    def _run_signatures(self, ok_tf1: bool) -> None:

        r = self.report
        ok_tf2 = SERVING_SIGNATURE in self.loaded.signatures and r.step(
            "TF2 signature serving_default", self.tf2_serving)
        if ok_tf1 and ok_tf2:
            r.step("TF1 and TF2 agree", self.tf1_vs_tf2)
        labels = [c for c in ((self.metadata.get("spec") or {}).get("labels", {}).values()) if isinstance(c, str)]
        has_labels = self._examples_have(labels)
        for name in sorted(set(self.loaded.signatures) - {SERVING_SIGNATURE}):
            if name == PREDICT_RAW_SIGNATURE:
                if ok_tf2:
                    r.step("TF2 signature predict_raw == serving_default", self.predict_raw)
            elif has_labels:
                r.step(f"TF2 signature {name}", self.example_signature(name))
            else:
                r.lines.append(f"[skip] TF2 signature {name}: the warm-up examples carry no label columns "
                               f"({', '.join(labels) or 'unknown'})")

    def _examples_have(self, columns: List[str]) -> bool:
        import tensorflow as tf

        if not columns:
            return False
        first = tf.train.Example.FromString(self.examples[0])
        return all(c in first.features.feature for c in columns)


def export_check(model_dir: str) -> CheckResult:
    """Run every check on the SavedModel version directory ``model_dir`` (``FileNotFoundError`` if missing)."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        versions = sorted(d for d in os.listdir(model_dir) if d.isdigit())
        hint = f"; it holds versions {', '.join(versions)}: pass one of them" if versions else ""
        raise FileNotFoundError(f"{model_dir}: not a SavedModel directory (no saved_model.pb){hint}")
    return _ExportCheck(model_dir).run()


def servability_problems(model_dir: str) -> List[str]:
    """The problems :func:`export_check` finds in ``model_dir`` (empty when servable): the Pusher's check
    before it publishes a version, in the spirit of TFX's InfraValidator without a model server."""
    try:
        return export_check(model_dir).problems
    except FileNotFoundError as e:
        return [str(e)]


# ------------------------------------------------------------------------------------------ CLI
EXPORT_CHECK_HELP = """Prove that an exported SavedModel version directory is servable:
  * list every signature's inputs and outputs (dtype, shape, tensor name), like `saved_model_cli show --all`;
    serving_default must take exactly one DT_STRING input (serialized tf.Example);
  * run serving_default through a TF1 session loader and every signature through tf.saved_model.load;
  * replay every request of assets.extra/tf_serving_warmup_requests (the file must exist);
  * check the outputs: the heads of assets.extra/msmt_export.json, finite and in [0, 1], TF1 == TF2, and
    predict_raw == serving_default on the warm-up rows.

Exit code 0 when servable, 1 when a check failed ("export-check: FAILED: <reason>" on stderr), 2 when
MODEL_DIR is missing or is not a SavedModel.

Example:
  msmt export-check /tmp/run/serving/msmt/1767225600
"""


def cmd_export_check(args) -> int:
    """Handler of ``msmt export-check``: prints the report; returns the exit code."""
    try:
        result = export_check(args.model_dir)
    except FileNotFoundError as e:
        print(f"export-check: error: {e}", file=sys.stderr)
        return 2
    for line in result.lines:
        print(line)
    if result.ok:
        print("export-check: OK")
        return 0
    for problem in result.problems:
        print(f"export-check: FAILED: {problem}", file=sys.stderr)
    return 1


def add_export_check_parser(subparsers):
    """Register ``export-check MODEL_DIR`` on an ``argparse`` subparsers object; returns the parser."""
    import argparse

    p = subparsers.add_parser("export-check", help="prove that an exported SavedModel version is servable",
                              description=EXPORT_CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="a SavedModel version directory, e.g. <output>/serving/msmt/<version>")
    p.set_defaults(func=cmd_export_check)
    return p
