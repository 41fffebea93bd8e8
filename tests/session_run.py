"""The suite's session run: ``msmt run`` on 8,000 synthetic impressions, made once per ``make test``.

It lives in the workers' common temporary directory (``SHARED``): ``e2e/`` holds the data and the run,
``e2e-done.json`` marks it complete (with the run's stdout), ``e2e-failed.json`` holds the output of a failed
attempt, and ``e2e.lock`` serialises whoever builds it. ``tests/conftest.py`` starts a build in the background
as soon as the collected tests show it will be needed (``python -m tests.session_run SHARED``), so that it runs
while the workers run the unit tests; the ``synthetic_run`` fixture then waits for it on the lock, or builds it
itself if nothing did.
"""

from __future__ import annotations

import fcntl
import json
import pathlib
import shutil
import sys

from tests.helpers import run_cli, synthetic_data

DONE, FAILED, LOCK = "e2e-done.json", "e2e-failed.json", "e2e.lock"


def build(shared: pathlib.Path) -> None:
    """Make the session run under ``shared`` unless it is already there (waits for another builder)."""
    root, done, failed = shared / "e2e", shared / DONE, shared / FAILED
    with open(shared / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.exists() or failed.exists():
            return
        if root.exists():
            shutil.rmtree(root)  # a half-made run of a builder that crashed
        gen = run_cli(["generate-data", "--rows", "8000", "--users", "400", "--items", "200", "--seed", "5",
                       "--output", str(root / "data")])
        proc = gen if gen.returncode else run_cli(["run", "--data", synthetic_data(root), "--spec", "synthetic",
                                                   "--output", str(root / "run"), "--epochs", "4",
                                                   "--batch-size", "256"])
        if proc.returncode:
            failed.write_text(json.dumps({"args": proc.args, "output": proc.stdout[-4000:] + proc.stderr[-4000:]}))
        else:
            done.write_text(json.dumps({"stdout": proc.stdout}))


def read(shared: pathlib.Path):
    """(data root, run directory, the run's stdout); AssertionError with the output if the build failed."""
    failed = shared / FAILED
    assert not failed.exists(), "the session run failed: " + json.loads(failed.read_text())["output"]
    return shared / "e2e", shared / "e2e" / "run", json.loads((shared / DONE).read_text())["stdout"]


if __name__ == "__main__":
    build(pathlib.Path(sys.argv[1]))
