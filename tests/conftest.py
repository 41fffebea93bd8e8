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
    if any(_module_needs_session_run(i.split("::")[0]) for i in {i.split("::")[0] for i in ids}):
        _start_session_run(node.config)


def pytest_collection_modifyitems(session, config, items):
    """One process (no xdist): start the session run if a collected test needs it."""
    if not hasattr(config, "workerinput") and not getattr(config.option, "numprocesses", None) and \
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
