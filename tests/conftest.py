"""Shared fixtures of the end-to-end tests: one synthetic pipeline run per session.

``make test`` runs the suite on two pytest-xdist workers, a whole test module at a time (``--dist loadscope``).
The session run is made once for both workers: the first that needs it runs it under a file lock in the
workers' common temporary directory, the other waits and reads it. No test writes into that directory; a test
that runs the pipeline again works on a copy (:func:`session_run_copy`), so that tests on the two workers
never see each other's runs.
"""

import fcntl
import json
import shutil

import pytest

from tests.helpers import run_cli, synthetic_data


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, request):
    """(data root, run directory, the run's stdout) of ``msmt run`` on 8,000 synthetic impressions."""
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its base is <common>/popen-gwN
        shared = shared.parent
    root = shared / "e2e"
    out, done = root / "run", shared / "e2e-done.json"
    with open(shared / "e2e.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            if root.exists():
                shutil.rmtree(root)  # a half-made run of a worker that crashed
            gen = run_cli(["generate-data", "--rows", "8000", "--users", "400", "--items", "200", "--seed", "5",
                           "--output", str(root / "data")])
            assert gen.returncode == 0, gen.stderr[-3000:]
            proc = run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic",
                            "--output", str(out), "--epochs", "4", "--batch-size", "256"])
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            done.write_text(json.dumps({"stdout": proc.stdout}))
    return root, out, json.loads(done.read_text())["stdout"]


@pytest.fixture
def session_run_copy(synthetic_run, tmp_path):
    """A private copy of the session's run directory, for a test that runs the pipeline again into it."""
    out = tmp_path / "session-run"
    shutil.copytree(synthetic_run[1], out)
    return out
