"""bin/msmt binds the directories of its path arguments into the runtime (tools/runtime.sh binds)."""

import os
import subprocess

from tests.helpers import REPO_ROOT


def _binds(*args, cwd=None):
    proc = subprocess.run(["bash", os.path.join(REPO_ROOT, "tools", "runtime.sh"), "binds", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_path_arguments_bind_their_nearest_existing_directories(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sample = logs / "day1.csv"
    sample.write_text("x\n1\n")
    assert _binds("run", "--data", str(logs / "span-{SPAN}" / "*.csv"), f"--output={tmp_path}/new/run",
                  str(sample), "--spec", "synthetic", "--rows", "5") == [str(logs), str(tmp_path)]


def test_uris_words_and_the_root_are_not_bound(tmp_path):
    assert _binds("score", "--input", "gs://bucket/logs/*.csv", "--model", "msmt", "/no-such-top-dir/x") == []
    (tmp_path / "spec.yaml").write_text("name: x\n")
    assert _binds("--spec", "spec.yaml", "./out/run", cwd=tmp_path) == [str(tmp_path)]  # relative to the cwd
