"""Shared fixtures of the end-to-end tests: one synthetic pipeline run per session."""

import pytest

from tests.helpers import run_cli, synthetic_data


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    gen = run_cli(["generate-data", "--rows", "8000", "--users", "400", "--items", "200", "--seed", "5",
                   "--output", str(data)])
    assert gen.returncode == 0, gen.stderr[-3000:]
    out = root / "run"
    proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic",
                    "--output", str(out), "--epochs", "4", "--batch-size", "256"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root, out, proc.stdout
