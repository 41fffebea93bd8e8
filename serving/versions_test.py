"""Version labels in models.config: publish, promote, rollback, retain, their CLI, and crashes mid-rewrite."""

import json
import os
import subprocess
import sys

import pytest
from google.protobuf import text_format

from serving import versions
from serving.versions import CANARY, STABLE, ServingStateError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _versions(root, *numbers, name="msmt"):
    for v in numbers:
        d = os.path.join(root, name, str(v))
        os.makedirs(os.path.join(d, "variables"))
        open(os.path.join(d, "saved_model.pb"), "wb").close()


def _config(root):
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(root, "models.config")) as fh:
        return text_format.Parse(fh.read(), model_server_config_pb2.ModelServerConfig())


def _served(root, name="msmt"):
    entry = [m for m in _config(root).model_config_list.config if m.name == name][0]
    return list(entry.model_version_policy.specific.versions), dict(entry.version_labels)


def _on_disk(root, name="msmt"):
    return sorted(d for d in os.listdir(os.path.join(root, name)) if d != versions.LABEL_HISTORY)


def test_a_new_version_is_stable_without_canary_mode(tmp_path):
    root = str(tmp_path)
    _versions(root, 100)
    versions.label_new_version(root, "msmt", 100, canary=False)
    _versions(root, 200)
    versions.label_new_version(root, "msmt", 200, canary=False)
    assert _served(root) == ([200], {STABLE: 200})
    entry = _config(root).model_config_list.config[0]
    assert entry.base_path == str(tmp_path / "msmt") and entry.model_platform == "tensorflow"


def test_canary_is_served_beside_stable_then_promoted_or_rolled_back(tmp_path):
    root = str(tmp_path)
    _versions(root, 100)
    versions.label_new_version(root, "msmt", 100, canary=True)  # nothing stable yet: the first is stable
    assert _served(root) == ([100], {STABLE: 100})
    _versions(root, 200)
    versions.label_new_version(root, "msmt", 200, canary=True)
    assert _served(root) == ([100, 200], {STABLE: 100, CANARY: 200})

    versions.rollback(root, "msmt")  # a canary: dropped, stable untouched
    assert _served(root) == ([100], {STABLE: 100})
    with pytest.raises(ServingStateError, match="no canary to promote"):
        versions.promote(root, "msmt")

    _versions(root, 300)
    versions.label_new_version(root, "msmt", 300, canary=True)
    versions.promote(root, "msmt")
    assert _served(root) == ([300], {STABLE: 300})
    versions.rollback(root, "msmt")  # no canary: stable goes back to the newest older version on disk
    assert _served(root) == ([200], {STABLE: 200})
    versions.rollback(root, "msmt", version=300)
    assert _served(root) == ([300], {STABLE: 300})


def test_rollback_refuses_what_is_not_there(tmp_path):
    root = str(tmp_path)
    _versions(root, 100)
    versions.label_new_version(root, "msmt", 100, canary=False)
    with pytest.raises(ServingStateError, match=r"no version older than stable 100 .*on disk: \[100\]"):
        versions.rollback(root, "msmt")
    with pytest.raises(ServingStateError, match=r"version 7 is not on disk"):
        versions.rollback(root, "msmt", version=7)
    assert _served(root) == ([100], {STABLE: 100})


def test_retain_keeps_the_newest_the_labelled_and_the_newest_blessed(tmp_path):
    root = str(tmp_path)
    _versions(root, 1, 2, 3, 4, 5, 6, 7)
    versions.label_new_version(root, "msmt", 2, canary=False)
    versions.label_new_version(root, "msmt", 7, canary=True)  # stable 2 (rolled back to), canary 7
    assert versions.retain(root, "msmt", 3) == [1, 3, 4]
    assert _on_disk(root) == ["2", "5", "6", "7"]
    versions.promote(root, "msmt")
    assert versions.retain(root, "msmt", 1) == [2, 5, 6]
    assert _on_disk(root) == ["7"] and _served(root) == ([7], {STABLE: 7})
    with pytest.raises(ServingStateError, match="at least 1"):
        versions.retain(root, "msmt", 0)


def test_a_config_without_labels_and_other_models_are_kept(tmp_path):
    from serving.publish import write_server_configs

    root = str(tmp_path)
    _versions(root, 10, 20)
    _versions(root, 5, name="other")
    write_server_configs(root, ["msmt", "other"])  # no labels yet: each serves its newest version
    assert versions.read_served(root, "msmt").labels == {STABLE: 20}
    _versions(root, 30)
    versions.label_new_version(root, "msmt", 30, canary=True)
    assert _served(root) == ([20, 30], {STABLE: 20, CANARY: 30})
    other = [m for m in _config(root).model_config_list.config if m.name == "other"][0]
    assert other.model_version_policy.latest.num_versions == 1 and other.base_path == str(tmp_path / "other")


def _crash(root, code, point):
    env = dict(os.environ, PYTHONPATH=REPO, **{versions.FAULT_CRASH_ENV: point})
    proc = subprocess.run([sys.executable, "-c", f"from serving import versions\n{code}"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 70, proc.stderr  # exited at the fault point


@pytest.mark.parametrize("action", ["label", "promote", "rollback", "retain"])
def test_a_crash_before_the_config_rename_leaves_the_old_config_and_the_retry_finishes(tmp_path, action):
    root = str(tmp_path)
    _versions(root, 1, 2, 3)
    versions.label_new_version(root, "msmt", 2, canary=False)
    versions.label_new_version(root, "msmt", 3, canary=True)
    before = open(os.path.join(root, "models.config")).read()
    function, args = {"label": ("label_new_version", (1, False)), "promote": ("promote", ()),
                      "rollback": ("rollback", ()), "retain": ("retain", (1,))}[action]
    _crash(root, f"versions.{function}({root!r}, 'msmt', *{args!r})", "config-written")
    assert open(os.path.join(root, "models.config")).read() == before  # TF Serving reads the old config
    assert _on_disk(root) == ["1", "2", "3"]
    getattr(versions, function)(root, "msmt", *args)  # the same command again
    served, labels = _served(root)
    assert all(str(v) in _on_disk(root) for v in served)
    expected = {"label": {STABLE: 1}, "promote": {STABLE: 3}, "rollback": {STABLE: 2},
                "retain": {STABLE: 2, CANARY: 3}}[action]
    assert labels == expected


def test_a_crash_while_deleting_a_version_leaves_only_a_hidden_directory(tmp_path):
    root = str(tmp_path)
    _versions(root, 1, 2, 3)
    versions.label_new_version(root, "msmt", 3, canary=False)
    _crash(root, f"versions.retain({root!r}, 'msmt', 1)", "version-retired")
    left = _on_disk(root)
    assert [d for d in left if d.isdigit()] == ["2", "3"] and any(d.startswith(".retired-1-") for d in left), left
    assert _served(root) == ([3], {STABLE: 3})
    assert versions.retain(root, "msmt", 1) == [2]
    assert _on_disk(root) == ["3"]


def test_serving_cli(tmp_path, capsys):
    from pipeline.cli import main

    root = str(tmp_path)
    _versions(root, 100, 200)
    versions.label_new_version(root, "msmt", 100, canary=False)
    versions.label_new_version(root, "msmt", 200, canary=True)
    assert main(["serving", "list", root]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["msmt: 2 version(s) on disk, serving canary=200, stable=100", "  200  canary", "  100  stable"]
    assert main(["serving", "promote", root]) == 0
    assert "stable is now 200" in capsys.readouterr().out
    assert main(["serving", "promote", root]) == 1
    assert "msmt serving promote: error: msmt: no canary to promote" in capsys.readouterr().err
    assert main(["serving", "retain", root, "1"]) == 0
    assert "deleted 1 version(s): 100" in capsys.readouterr().out
    assert main(["serving", "rollback", root, "--version", "100"]) == 1
    assert "version 100 is not on disk" in capsys.readouterr().err


def test_the_label_history_tells_a_rolled_back_version_from_one_never_labelled(tmp_path):
    """The Pusher's rerun after a crash between the rename and the label finishes the push, but must not undo
    a rollback: a version that was ever labelled keeps its (lack of) label."""
    root = str(tmp_path)
    _versions(root, 1, 2)
    versions.label_new_version(root, "msmt", 1, canary=False)
    versions.label_new_version(root, "msmt", 2, canary=False)
    versions.rollback(root, "msmt")
    _versions(root, 3)  # published, then the publisher died before labelling it
    assert versions.ever_labelled(root, "msmt", 2) and versions.ever_labelled(root, "msmt", 1)
    assert not versions.ever_labelled(root, "msmt", 3)
    history = (tmp_path / "msmt" / versions.LABEL_HISTORY).read_text().splitlines()
    assert [json.loads(line)["labels"] for line in history] == [{"stable": 1}, {"stable": 2}, {"stable": 1}]
