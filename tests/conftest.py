"""Shared fixtures of the end-to-end tests: one synthetic pipeline run per session.

``make test`` runs the suite on two pytest-xdist workers, a whole test module at a time
(``--dist loadscope --no-loadscope-reorder``), and the modules in :data:`LONGEST_FIRST` go first: the workers
take modules from the front of one queue, so the long end-to-end modules overlap each other and the many short
unit-test modules fill in at the end (the default order, most tests first, left the longest module for last).

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

# Module order of the suite: longest first (seconds measured on 2 cores), except that the Ali-CCP run, which
# does not need the session run, comes second so that one worker runs it while the other makes the session run.
LONGEST_FIRST = (
    "tests/crash_resume_e2e_test.py",  # ~300 s: three pipeline runs
    "tests/aliccp_e2e_test.py",  # ~130 s
    "tests/pipeline_e2e_test.py",  # ~200 s
    "tests/head_gate_e2e_test.py",  # ~190 s
    "tests/distributed_training_test.py",  # ~180 s
    "tests/determinism_e2e_test.py",  # ~110 s
    "tests/trainer_zoo_test.py",  # ~100 s
    "tests/evaluator_e2e_test.py",  # ~60 s
    "tests/schema_drift_e2e_test.py",  # ~50 s
    "models/blocks/calibration_test.py",  # ~60 s
    "models/zoo_test.py",  # ~60 s
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order


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
