"""Publish an exported SavedModel to a TF Serving model root and write the server configs (docs/serving.md).

TF Serving polls ``<serving_root>/<model_name>/`` and loads the highest numeric sub-directory. A version is
therefore assembled under a non-numeric name (``.incoming-<version>-<pid>``, which TF Serving ignores),
flushed to disk, and only then renamed to ``<version>``: a half-written numeric version is never visible.
A leftover ``.incoming-*`` directory of a publisher that died is removed by the next publish. The rename is
atomic on a local POSIX file system; the serving root must not be an object store.

``write_server_configs`` writes ``models.config`` (``ModelServerConfig``) and ``monitoring.config``
(``MonitoringConfig``, Prometheus) for ``tensorflow_model_server --model_config_file=...
--monitoring_config_file=...``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from typing import Callable, Optional, Sequence, Tuple

INCOMING_PREFIX = ".incoming-"
MODELS_CONFIG = "models.config"
MONITORING_CONFIG = "monitoring.config"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
SOURCE_FILE = "msmt_source_model.txt"  # where a published version came from (model artifact URI)
_INCOMING_RE = re.compile(r"^\.incoming-(\d+)-(\d+)$")


def numeric_versions(root: str) -> list:
    """The numeric version directories of ``<serving_root>/<model_name>``, ascending."""
    if not os.path.isdir(root):
        return []
    return sorted(int(d) for d in os.listdir(root)
                  if d.isdigit() and os.path.isdir(os.path.join(root, d)))


def next_version(root: str) -> int:
    """``max(now in seconds, highest existing version + 1)``: increasing even when the clock is behind."""
    existing = numeric_versions(root)
    return max(int(time.time()), (existing[-1] + 1) if existing else 0)


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier, failed publish of this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_incoming(root: str) -> list:
    """Remove ``.incoming-*`` directories whose publisher is no longer running; returns their paths."""
    removed = []
    if not os.path.isdir(root):
        return removed
    for name in sorted(os.listdir(root)):
        if not name.startswith(INCOMING_PREFIX):
            continue
        m = _INCOMING_RE.match(name)
        if m and pid_alive(int(m.group(2))):
            continue
        path = os.path.join(root, name)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """Flush every file and directory under ``root`` (and ``root`` itself) to disk."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            _fsync_path(os.path.join(dirpath, name))
        _fsync_path(dirpath)


def _source_path(version_dir: str) -> str:
    return os.path.join(version_dir, "assets.extra", SOURCE_FILE)


def model_root(serving_root: str, model_name: str) -> str:
    """``<serving_root>/<model_name>``; the name must be one plain path component (no separator, no ``..``)."""
    if not model_name or model_name in (".", "..") or "/" in model_name or "\\" in model_name or "\0" in model_name:
        raise ValueError(f"model name {model_name!r} must be a plain name (no '/', '\\', '..' or NUL): it becomes a "
                         f"directory under {serving_root}")
    return os.path.abspath(os.path.join(serving_root, model_name))


def find_published(serving_root: str, model_name: str, source: str) -> Optional[str]:
    """The version directory already published from ``source`` (see ``publish_version``), if any."""
    root = model_root(serving_root, model_name)
    for version in numeric_versions(root):
        path = _source_path(os.path.join(root, str(version)))
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                if fh.read().strip() == source:
                    return os.path.join(root, str(version))
    return None


FAULT_PAUSE_ENV = "MSMT_FAULT_PAUSE_BEFORE_PUBLISH"


def _fault_pause() -> None:
    """Fault injection for crash tests: with ``MSMT_FAULT_PAUSE_BEFORE_PUBLISH=<seconds>`` in the
    environment, wait that long with the copy complete but not yet renamed, so a test can kill the process
    exactly during a push. Unset in normal runs (no effect)."""
    seconds = os.environ.get(FAULT_PAUSE_ENV)
    if seconds:
        import time

        time.sleep(float(seconds))


class UnservableModelError(RuntimeError):
    """The servability check refused the version; the message lists the reasons."""


def publish_version(model_dir: str, serving_root: str, model_name: str, warmup_examples: Sequence[bytes] = (),
                    version: Optional[int] = None, source: Optional[str] = None,
                    check: Optional[Callable[[str], Sequence[str]]] = None,
                    prepare: Optional[Callable[[str, int], None]] = None) -> str:
    """Copy the SavedModel ``model_dir`` to ``<serving_root>/<model_name>/<version>`` atomically.

    ``warmup_examples`` (serialized ``tf.Example``s), when given, are written as the version's TF Serving
    warm-up requests; otherwise a warm-up file already in ``model_dir`` is kept. ``source`` (e.g. the
    pipeline's model artifact URI) is recorded in ``assets.extra/`` so that :func:`find_published` can tell
    that this model is already served. ``prepare(copy_dir, version)``, when given, may add files to the copy
    (e.g. a model card). ``check``, when given, runs on the complete copy before it becomes visible and
    returns its problems; any problem removes the copy and raises :class:`UnservableModelError`.
    Returns the version directory.
    """
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise FileNotFoundError(f"{model_dir}: not a SavedModel directory (no saved_model.pb)")
    root = model_root(serving_root, model_name)
    os.makedirs(root, exist_ok=True)
    remove_stale_incoming(root)
    version = next_version(root) if version is None else int(version)
    final = os.path.join(root, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final}: version {version} of {model_name!r} is already published")
    incoming = os.path.join(root, f"{INCOMING_PREFIX}{version}-{os.getpid()}")
    try:
        shutil.copytree(model_dir, incoming)
        if warmup_examples:
            from serving.warmup import write_warmup_requests
            write_warmup_requests(incoming, list(warmup_examples), model_name=model_name)
        if source:
            os.makedirs(os.path.dirname(_source_path(incoming)), exist_ok=True)
            with open(_source_path(incoming), "w", encoding="utf-8") as fh:
                fh.write(source + "\n")
        if prepare:
            prepare(incoming, version)
        problems = list(check(incoming)) if check else []
        if problems:
            raise UnservableModelError(f"{model_dir} is not servable, not published: " + "; ".join(problems))
        fsync_tree(incoming)
        _fault_pause()
        os.rename(incoming, final)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    _fsync_path(root)
    return final


# ------------------------------------------------------------------------------------------ server configs
def monitoring_config_class():
    """``tensorflow.serving.MonitoringConfig``: from ``tensorflow_serving`` when it ships it, else the same
    message (fields and numbers of ``tensorflow_serving/config/monitoring_config.proto``) built here."""
    try:
        from tensorflow_serving.config import monitoring_config_pb2
        return monitoring_config_pb2.MonitoringConfig
    except ImportError:
        return _built_monitoring_config_class()


def _built_monitoring_config_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="msmt/monitoring_config.proto", package="tensorflow.serving",
                                             syntax="proto3")
    prom = fdp.message_type.add(name="PrometheusConfig")
    prom.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    prom.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    mon = fdp.message_type.add(name="MonitoringConfig")
    mon.field.add(name="prometheus_config", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  type_name=".tensorflow.serving.PrometheusConfig",
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    """``MonitoringConfig`` text enabling the Prometheus endpoint at ``path``."""
    from google.protobuf import text_format

    cfg = monitoring_config_class()()
    cfg.prometheus_config.enable = True
    cfg.prometheus_config.path = path
    return text_format.MessageToString(cfg)


def write_atomic(path: str, text: str, before_rename: Optional[Callable[[], None]] = None) -> None:
    """Write ``text`` to ``path`` through a flushed temporary file renamed over it: readers see the old or
    the new file, never a partial one. ``before_rename`` is a fault-injection hook for crash tests."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if before_rename:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_monitoring_config(serving_root: str) -> str:
    """Write ``<serving_root>/monitoring.config``; returns its path."""
    os.makedirs(serving_root, exist_ok=True)
    path = os.path.abspath(os.path.join(serving_root, MONITORING_CONFIG))
    write_atomic(path, monitoring_config_text())
    return path


def write_server_configs(serving_root: str, model_names: Sequence[str]) -> Tuple[str, str]:
    """Write ``<serving_root>/models.config`` for exactly ``model_names`` and ``monitoring.config``; returns
    their paths. Each model keeps the version labels the config already gives it (``serving.versions``); a
    model without labels serves its newest version."""
    from serving.versions import config_text, read_served

    names = list(model_names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"write_server_configs: need distinct model names, got {names}")
    os.makedirs(serving_root, exist_ok=True)
    models_path = os.path.abspath(os.path.join(serving_root, MODELS_CONFIG))
    write_atomic(models_path, config_text(serving_root, [read_served(serving_root, n) for n in names]))
    return models_path, write_monitoring_config(serving_root)
