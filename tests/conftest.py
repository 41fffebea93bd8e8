"""Shared fixtures of the end-to-end tests: one synthetic pipeline run per session (``tests/session_run.py``).

``make test`` runs the suite on two pytest-xdist workers, a whole test module at a time (``--dist loadscope``).
The session run is made once for both workers, in their common temporary directory. As soon as the collected
tests show that some test needs it, the controlling process starts it in the background, so that it runs while
the workers run the unit tests; the first worker that needs it waits for it on a file lock (or builds it, if
nothing started it). No test writes into that directory; a test that runs the pipeline again works on a copy
(:func:`session_run_copy`), so that tests on the two workers never see each other's runs.
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests import session_run
from tests.helpers import REPO_ROOT, child_env

FIXTURES = ("synthetic_run", "session_run_copy")
# The order in which the workers take the modules (``make test`` keeps it: --no-loadscope-reorder). First the
# two longest modules, one per worker, whose first tests (the Ali-CCP sample, the four daily runs) do not need
# the session run being made in the background; then the unit tests; then the other end-to-end modules,
# longest first, so that the last module to finish is a short one. Measured durations:
# docs/benchmarks.md#test-suite-make-test.
FIRST = ("tests/pipeline_e2e_test.py", "tests/daily_e2e_test.py")
LAST = ("tests/distributed_training_test.py", "tests/trainer_zoo_test.py", "tests/crash_resume_e2e_test.py",
        "tests/determinism_e2e_test.py", "tests/schema_drift_e2e_test.py", "tests/tasks_e2e_test.py",
        "tests/single_task_e2e_test.py",
        "tests/scoring_e2e_test.py", "tests/serving_export_e2e_test.py", "tests/serving_robustness_e2e_test.py",
        "tests/evaluator_e2e_test.py", "tests/bad_rows_e2e_test.py")
_background = []


def _start_session_run(config) -> None:
    """Build the session run in a background process (once), in the controller's temporary directory."""
    if _background:
        return
    shared = config._tmp_path_factory.getbasetemp()  # noqa: SLF001 - the workers' common parent
    log = open(shared / "e2e-background.log", "w")
    _background.append(subprocess.Popen([sys.executable, "-m", "tests.session_run", str(shared)], cwd=REPO_ROOT,
                                        env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))


def _module_needs_session_run(path: str) -> bool:
    try:
        with open(os.path.join(str(REPO_ROOT), path)) as fh:
            text = fh.read()
    except OSError:
        return False
    return any(name in text for name in FIXTURES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist's controller: a worker collected ``ids``; start the session run if one of them needs it."""
    if not node.config.option.collectonly and any(_module_needs_session_run(path)
                                                  for path in {i.split("::")[0] for i in ids}):
        _start_session_run(node.config)


def _module_rank(item) -> int:
    path = item.nodeid.split("::")[0]
    if path in FIRST:
        return -len(FIRST) + FIRST.index(path)
    return 1 + LAST.index(path) if path in LAST else 0


def pytest_collection_modifyitems(session, config, items):
    """Order the modules (:data:`FIRST`, the rest, :data:`LAST`; a stable sort keeps each module's own order);
    in one process (no xdist), start the session run if a collected test needs it."""
    items.sort(key=_module_rank)
    if not hasattr(config, "workerinput") and not getattr(config.option, "numprocesses", None) and \
            not config.option.collectonly and \
            any(set(FIXTURES) & set(getattr(item, "fixturenames", ())) for item in items):
        _start_session_run(config)


def pytest_unconfigure(config):
    for proc in _background:
        if proc.poll() is None:  # the session ended first (interrupted, or no test needed it after all)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, request):
    """(data root, run directory, the run's stdout) of ``msmt run`` on 8,000 synthetic impressions."""
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its base is <common>/popen-gwN
        shared = shared.parent
    session_run.build(shared)  # waits for the background build, or makes it
    return session_run.read(shared)


@pytest.fixture
def session_run_copy(synthetic_run, tmp_path):
    """A private copy of the session's run directory, for a test that runs the pipeline again into it."""
    out = tmp_path / "session-run"
    shutil.copytree(synthetic_run[1], out)
    return out
