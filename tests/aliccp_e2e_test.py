"""End to end: `msmt run` on the Ali-CCP sample (``../shared/data/aliccp``, read in place) with its spec, and its
pushed model serving real serialized examples."""

import os

import pytest

from pipeline.pipeline import COMPONENT_ORDER
from tests.helpers import SHARED_DATA, component, pipeline_states, run_cli, serve_eval_examples


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "aliccp")),
                    reason="../shared/data/aliccp is absent (third-party samples are read in place, never copied)")
def test_aliccp_sample_pipeline(tmp_path):
    out = tmp_path / "aliccp"
    proc = run_cli(["run", "--data", os.path.join(SHARED_DATA, "aliccp", "ali_ccp_*_sample.csv"), "--spec", "aliccp",
                    "--output", str(out), "--epochs", "3", "--batch-size", "32", "--min-auc", "0.0"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _, runs = pipeline_states(str(out))
    states = {c: component(runs, c).state for c in COMPONENT_ORDER}
    assert all(s == "COMPLETE" for s in states.values()), states
    model_dir = component(runs, "Trainer").outputs["model"][0].uri
    res = serve_eval_examples(tmp_path, os.path.join(model_dir, "Format-Serving"),
                 component(runs, "ExampleGen").outputs["examples"][0].uri)
    assert res["n"] > 0
    for values in res["outputs"].values():
        assert all(0.0 <= v <= 1.0 for v in values)
