"""Tests of serving.publish: atomic version publishing and the TF Serving config files (no TensorFlow needed)."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
from google.protobuf import text_format

from serving import publish
from serving.testing import fake_saved_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def model_dir(tmp_path):
    return fake_saved_model(tmp_path / "export")


CRASH_CHILD = """
import os, sys
from serving import publish
def crash(src, dst):  # the process dies after copying and flushing, before the version becomes visible
    os._exit(3)
publish.os.rename = crash
publish.publish_version(sys.argv[1], sys.argv[2], "msmt", version=int(sys.argv[3]))
"""


def _publish_and_crash(model_dir, root, version):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH_CHILD), model_dir, root, str(version)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]


def test_crash_before_rename_leaves_no_numeric_version_and_next_publish_cleans_up(model_dir, tmp_path):
    root = str(tmp_path / "serving")
    _publish_and_crash(model_dir, root, 7)
    left = os.listdir(os.path.join(root, "msmt"))
    assert len(left) == 1 and left[0].startswith(".incoming-7-"), left
    assert publish.numeric_versions(os.path.join(root, "msmt")) == []
    assert os.path.exists(os.path.join(root, "msmt", left[0], "variables", "variables.index"))

    final = publish.publish_version(model_dir, root, "msmt", version=8)
    assert final == os.path.join(os.path.abspath(root), "msmt", "8")
    assert sorted(os.listdir(os.path.join(root, "msmt"))) == ["8"]
    with open(os.path.join(final, "variables", "variables.data-00000-of-00001"), "rb") as fh:
        assert fh.read() == b"data"


def test_failure_inside_publish_removes_its_incoming_dir(model_dir, tmp_path, monkeypatch):
    def broken_fsync(root):
        raise OSError("disk full")

    monkeypatch.setattr(publish, "fsync_tree", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        publish.publish_version(model_dir, str(tmp_path), "msmt", version=3)
    assert os.listdir(tmp_path / "msmt") == []


def test_incoming_dir_of_a_running_publisher_is_kept(tmp_path):
    live = tmp_path / "msmt" / f".incoming-5-{os.getppid()}"
    dead = tmp_path / "msmt" / ".incoming-5-notapid"
    live.mkdir(parents=True)
    dead.mkdir()
    assert publish.remove_stale_incoming(str(tmp_path / "msmt")) == [str(dead)]
    assert live.exists()


def test_default_version_is_time_based_and_always_increasing(model_dir, tmp_path):
    root = str(tmp_path)
    before = int(time.time())
    first = int(os.path.basename(publish.publish_version(model_dir, root, "msmt")))
    assert before <= first <= int(time.time())
    second = int(os.path.basename(publish.publish_version(model_dir, root, "msmt")))
    assert second > first
    future = 10 * before
    os.makedirs(os.path.join(root, "msmt", str(future)))
    os.makedirs(os.path.join(root, "msmt", "not-a-version"))
    assert os.path.basename(publish.publish_version(model_dir, root, "msmt")) == str(future + 1)
    assert publish.numeric_versions(os.path.join(root, "msmt")) == [first, second, future, future + 1]


def test_explicit_version_never_overwrites(model_dir, tmp_path):
    publish.publish_version(model_dir, str(tmp_path), "msmt", version=1)
    with pytest.raises(FileExistsError, match="version 1 of 'msmt' is already published"):
        publish.publish_version(model_dir, str(tmp_path), "msmt", version=1)


def test_publishing_a_non_savedmodel_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        publish.publish_version(str(tmp_path), str(tmp_path / "serving"), "msmt")


def test_server_configs_parse_back_with_the_tf_serving_protos(tmp_path, monkeypatch):
    from tensorflow_serving.config import model_server_config_pb2

    monkeypatch.chdir(tmp_path)
    models_path, monitoring_path = publish.write_server_configs("serving", ["msmt", "msmt_shadow"])
    assert models_path == str(tmp_path / "serving" / "models.config")
    with open(models_path) as fh:
        cfg = text_format.Parse(fh.read(), model_server_config_pb2.ModelServerConfig())
    configs = cfg.model_config_list.config
    assert [c.name for c in configs] == ["msmt", "msmt_shadow"]
    assert [c.base_path for c in configs] == [str(tmp_path / "serving" / n) for n in ("msmt", "msmt_shadow")]
    assert all(c.model_platform == "tensorflow" for c in configs)
    assert all(c.model_version_policy.latest.num_versions == 1 for c in configs)

    with open(monitoring_path) as fh:
        mon = text_format.Parse(fh.read(), publish.monitoring_config_class()())
    assert mon.prometheus_config.enable is True
    assert mon.prometheus_config.path == "/monitoring/prometheus/metrics"
    assert sorted(os.listdir(tmp_path / "serving")) == ["models.config", "monitoring.config"]


def test_server_configs_are_replaced_in_place(tmp_path):
    publish.write_server_configs(str(tmp_path), ["a"])
    models_path, _ = publish.write_server_configs(str(tmp_path), ["b"])
    with open(models_path) as fh:
        assert 'name: "b"' in fh.read()
    assert sorted(os.listdir(tmp_path)) == ["models.config", "monitoring.config"]
    with pytest.raises(ValueError, match="distinct model names"):
        publish.write_server_configs(str(tmp_path), ["a", "a"])


def test_find_published_recognises_the_source_model(model_dir, tmp_path):
    root = str(tmp_path / "serving")
    assert publish.find_published(root, "m", "/pipeline/Trainer/model/7") is None
    first = publish.publish_version(model_dir, root, "m", source="/pipeline/Trainer/model/7")
    other = publish.publish_version(model_dir, root, "m", source="/pipeline/Trainer/model/8")
    assert publish.find_published(root, "m", "/pipeline/Trainer/model/7") == first
    assert publish.find_published(root, "m", "/pipeline/Trainer/model/8") == other
    assert publish.find_published(root, "m", "/pipeline/Trainer/model/9") is None


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", "x\0y"])
def test_model_names_that_would_leave_the_serving_root_are_refused(model_dir, tmp_path, name):
    with pytest.raises(ValueError, match="must be a plain name"):
        publish.publish_version(model_dir, str(tmp_path / "serving"), name)
    assert not (tmp_path / "evil").exists()
