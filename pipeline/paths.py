"""Config values that become file-system paths stay inside the run's output directory (issue #7, safety).

A name from a config (``pipeline_name``, ``serving_model_name``, a feature spec's ``name``) must be a plain
name: one path component, never ``..``, a separator or an absolute path. Every directory or file a
``PipelineConfig`` derives from its ``output`` must lie under ``output``. The check is lexical (``..`` and
separators are resolved, symbolic links are not): a config value cannot climb out of the output directory,
while a symbolic link that the operator put inside it on purpose is left alone.

``PipelineConfig.validate()`` calls :func:`check_config_paths`; the errors are
:class:`pipeline.config.PipelineConfigError` (a ``ValueError``) naming the key and the value.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
from typing import Any, List, Tuple

from pipeline.config import PipelineConfigError

# PipelineConfig properties with one of these suffixes are paths derived from ``output``.
DERIVED_PATH_SUFFIXES = ("_dir", "_path", "_root")
NAME_KEYS = ("pipeline_name", "serving_model_name")


def safe_name(value: Any, key: str) -> str:
    """``value`` if it is a plain name usable as one path component, else :class:`PipelineConfigError`.

    Rejected: a non-string, the empty string, ``.`` and ``..``, ``/`` or ``\\`` anywhere, a Windows drive
    (``C:``), NUL or any other control character.
    """
    if not isinstance(value, str):
        raise PipelineConfigError(f"{key}: {value!r} must be a string (a plain name such as 'msmt')")
    problem = None
    if not value:
        problem = "is empty"
    elif value in (".", ".."):
        problem = "is a relative directory reference"
    elif "/" in value or "\\" in value:
        problem = "contains a path separator ('/' or '\\')" + (" (an absolute path)" if value[:1] in "/\\" else "")
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problem = "contains NUL or another control character"
    elif ntpath.splitdrive(value)[0]:
        problem = "starts with a drive letter"
    if problem:
        raise PipelineConfigError(f"{key}: {value!r} {problem}; it becomes part of a path, so it must be a plain "
                                  f"name without '/', '\\', '..', NUL or an absolute path, e.g. 'msmt'")
    return value


def _is_uri(path: str) -> bool:
    return "://" in path


def _normalized(path: str) -> Tuple[str, str]:
    """(scheme prefix, normalized path); local paths are made absolute first."""
    if _is_uri(path):
        scheme, rest = path.split("://", 1)
        return scheme + "://", posixpath.normpath("/" + rest)
    return "", os.path.normpath(os.path.abspath(path))


def inside(root: str, path: str, key: str) -> str:
    """The normalized ``path`` if it is ``root`` or lies under it, else :class:`PipelineConfigError`.

    Works for local paths and for URIs (``gs://bucket/run``): a URI is only inside a URI of the same scheme.
    """
    for v, what in ((root, "root"), (path, "path")):
        if not isinstance(v, str) or not v or "\x00" in v:
            raise PipelineConfigError(f"{key}: {what} {v!r} is not a usable path")
    r_scheme, r = _normalized(root)
    p_scheme, p = _normalized(path)
    sep = "/" if r_scheme else os.sep
    if r_scheme != p_scheme or not (p == r or p.startswith(r.rstrip(sep) + sep)):
        raise PipelineConfigError(f"{key}: {path!r} is outside the output directory {root!r}; paths derived "
                                  f"from the config must stay inside it")
    return p_scheme + p.lstrip("/") if p_scheme else p


def derived_path_keys(config) -> List[str]:
    """Names of the path properties of ``config``'s class (``pipeline_root``, ``serving_dir``, ...)."""
    return sorted(name for cls in type(config).__mro__ for name, attr in vars(cls).items()
                  if isinstance(attr, property) and name.endswith(DERIVED_PATH_SUFFIXES))


def check_config_paths(config) -> None:
    """Names of ``config`` are plain names and every path it derives lies inside ``config.output``.

    Needs no input data and no file system access, so orchestrator compilers may call it too.
    """
    for key in NAME_KEYS:
        safe_name(getattr(config, key), key)
    for key in derived_path_keys(config):
        path = getattr(config, key)
        if isinstance(path, str):
            inside(config.output, path, key)
