"""Safety (issue #7 item 7): no pickle or eval of artifacts or request data; the image runs as a non-root user.

1. Every Python file of the project is parsed with ``ast`` and must not import a pickle-family module nor
   call the builtin ``eval`` / ``exec`` / ``compile``, an unsafe YAML loader, ``numpy.load(allow_pickle=True)``,
   ``pandas.read_pickle`` / ``to_pickle`` or Keras ``load_model(safe_mode=False)``. Each finding names
   ``file:line``. The scanner is checked against in-memory snippets of every pattern (and of safe look-alikes),
   so it cannot pass by flagging nothing.
2. The ``Dockerfile``'s final stage switches to a fixed numeric, non-root uid after the last package install,
   with a home directory that is the working directory.

(Paths from configs staying inside the output directory: ``pipeline/paths_test.py``.)
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO_ROOT, "Dockerfile")

# ------------------------------------------------------------------------------------------ source scanner
PICKLE_MODULES = frozenset({"pickle", "cPickle", "_pickle", "pickletools", "dill", "cloudpickle", "marshal",
                            "shelve", "joblib", "copyreg"})
DYNAMIC_CODE = frozenset({"eval", "exec", "compile"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader"})
UNSAFE_YAML_CALLS = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"})
PICKLE_IO_METHODS = frozenset({"read_pickle", "to_pickle"})
SKIP_DIRS = frozenset({"build", "dist", "__pycache__", "node_modules", "site-packages"})


class _Scanner(ast.NodeVisitor):
    def __init__(self, filename: str):
        self.filename = filename
        self.aliases: Dict[str, str] = {}  # local name -> dotted name it was imported as
        self.findings: List[str] = []

    def flag(self, node: ast.AST, message: str) -> None:
        self.findings.append(f"{self.filename}:{getattr(node, 'lineno', 0)}: {message}")

    # -------------------------------------------------------------- names
    def collect_aliases(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def dotted(self, node: ast.AST) -> Optional[str]:
        """``np.load`` -> ``numpy.load`` (through the file's imports); None for anything but names."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    @staticmethod
    def _last(node: ast.AST) -> str:
        return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""

    @staticmethod
    def _keyword(call: ast.Call, name: str) -> Optional[ast.AST]:
        return next((k.value for k in call.keywords if k.arg == name), None)

    @staticmethod
    def _is_const(node: Optional[ast.AST], value) -> bool:
        return isinstance(node, ast.Constant) and node.value is value

    # -------------------------------------------------------------- imports
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name.split(".")[0] in PICKLE_MODULES:
                self.flag(node, f"import of {a.name} (pickle-family deserialization)")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if not node.level and module.split(".")[0] in PICKLE_MODULES:
            self.flag(node, f"import from {module} (pickle-family deserialization)")
        for a in node.names:
            if a.name in PICKLE_MODULES:
                self.flag(node, f"import of {module}.{a.name} (pickle-family deserialization)")
        self.generic_visit(node)

    # -------------------------------------------------------------- calls
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = self.dotted(func)
        last = self._last(func)
        if isinstance(func, ast.Name) and func.id in DYNAMIC_CODE and func.id not in self.aliases:
            self.flag(node, f"call of builtin {func.id}()")
        elif name in {f"builtins.{n}" for n in DYNAMIC_CODE}:
            self.flag(node, f"call of {name}()")
        if name in ("__import__", "importlib.import_module", "builtins.__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value.split(".")[0] in PICKLE_MODULES:
                    self.flag(node, f"dynamic import of {arg.value} (pickle-family deserialization)")
        if name in ("yaml.load", "yaml.load_all"):
            loader = self._keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or self._last(loader) not in SAFE_YAML_LOADERS:
                self.flag(node, f"{name}() without Loader=yaml.SafeLoader (use yaml.safe_load)")
        if name in UNSAFE_YAML_CALLS:
            self.flag(node, f"{name}() constructs arbitrary Python objects (use yaml.safe_load)")
        if name == "numpy.load" or (last == "load" and name and name.split(".")[0] in ("np", "numpy")):
            allow = self._keyword(node, "allow_pickle")
            if allow is not None and not self._is_const(allow, False):
                self.flag(node, "numpy.load(..., allow_pickle=...) may unpickle (keep allow_pickle=False)")
        if last in PICKLE_IO_METHODS:
            self.flag(node, f"{last}() reads or writes a pickle")
        if last.endswith("load_model"):
            safe = self._keyword(node, "safe_mode")
            if safe is not None and not self._is_const(safe, True):
                self.flag(node, f"{last}(..., safe_mode=...) may deserialize arbitrary code (keep safe_mode=True)")
        if last == "enable_unsafe_deserialization":
            self.flag(node, "Keras unsafe deserialization enabled")
        self.generic_visit(node)


def scan_source(source: str, filename: str) -> List[str]:
    """``file:line: problem`` for every unsafe pattern in ``source``."""
    tree = ast.parse(source, filename=filename)
    scanner = _Scanner(filename)
    scanner.collect_aliases(tree)
    scanner.visit(tree)
    return scanner.findings


def project_python_files() -> Iterator[str]:
    """Every ``.py`` file of the repository (top-level scripts, features/, models/, pipeline/, serving/, bench/,
    tests/, tools/ ... and any package added later), without virtualenvs, build output and hidden dirs."""
    for dirpath, dirnames, filenames in os.walk(REPO_ROOT):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")
                             and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg")))
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


# One snippet per pattern: (source, the line the scanner must name).
UNSAFE_SNIPPETS = {
    "import pickle": ("import os\nimport pickle\n", 2),
    "import cPickle as p": ("import cPickle as p\n", 1),
    "from pickle import loads": ("x = 1\nfrom pickle import loads\n", 2),
    "import _pickle": ("import _pickle\n", 1),
    "import dill": ("import dill\n", 1),
    "import cloudpickle": ("import cloudpickle\n", 1),
    "import marshal": ("import marshal\n", 1),
    "import shelve": ("import shelve\n", 1),
    "import joblib": ("import joblib\n", 1),
    "from sklearn.externals import joblib": ("from sklearn.externals import joblib\n", 1),
    "from joblib import load": ("from joblib import load\n", 1),
    "__import__('pickle')": ("m = __import__('pickle')\n", 1),
    "importlib.import_module('dill')": ("import importlib\nm = importlib.import_module('dill')\n", 2),
    "eval": ("def f(request):\n    return eval(request)\n", 2),
    "exec": ("exec(open('x').read())\n", 1),
    "compile": ("code = compile('1', 'f', 'eval')\n", 1),
    "builtins.eval": ("import builtins\nbuiltins.eval('1')\n", 2),
    "yaml.load no Loader": ("import yaml\nyaml.load(open('f'))\n", 2),
    "yaml.load Loader=yaml.Loader": ("import yaml\nyaml.load(open('f'), Loader=yaml.Loader)\n", 2),
    "yaml.load FullLoader positional": ("import yaml\nyaml.load(open('f'), yaml.FullLoader)\n", 2),
    "yaml.load_all UnsafeLoader": ("import yaml\nyaml.load_all(s, Loader=yaml.UnsafeLoader)\n", 2),
    "from yaml import load": ("from yaml import load\nload(s)\n", 2),
    "yaml alias": ("import yaml as y\ny.load(s)\n", 2),
    "yaml.unsafe_load": ("import yaml\nyaml.unsafe_load(s)\n", 2),
    "yaml.full_load": ("import yaml\nyaml.full_load(s)\n", 2),
    "np.load allow_pickle=True": ("import numpy as np\na = np.load('a.npy', allow_pickle=True)\n", 2),
    "numpy.load allow_pickle=flag": ("import numpy\na = numpy.load('a.npy', allow_pickle=flag)\n", 2),
    "pd.read_pickle": ("import pandas as pd\ndf = pd.read_pickle('x.pkl')\n", 2),
    "pandas.read_pickle": ("import pandas\ndf = pandas.read_pickle('x.pkl')\n", 2),
    "df.to_pickle": ("df.to_pickle('x.pkl')\n", 1),
    "tf.keras load_model safe_mode=False": (
        "import tensorflow as tf\nm = tf.keras.models.load_model('m.keras', safe_mode=False)\n", 2),
    "keras.saving.load_model safe_mode=False": (
        "import keras\nm = keras.saving.load_model(p,\n    safe_mode=False)\n", 2),
    "enable_unsafe_deserialization": ("import keras\nkeras.config.enable_unsafe_deserialization()\n", 2),
}

# Look-alikes the project uses and that must stay allowed.
SAFE_SNIPPET = """
import re
import numpy as np
import yaml
import tensorflow as tf
from re import compile as re_compile
pattern = re.compile(r"x")
other = re_compile("y")
model.compile(optimizer="adam")
spec = yaml.safe_load(open("spec.yaml"))
spec = yaml.load(open("spec.yaml"), Loader=yaml.SafeLoader)
spec = yaml.load(open("spec.yaml"), yaml.CSafeLoader)
arr = np.load("a.npy")
arr = np.load("a.npy", allow_pickle=False)
loaded = tf.saved_model.load("model")
m = tf.keras.models.load_model("m.keras", safe_mode=True)
m = tf.keras.models.load_model("m.keras")
evaluate = evaluator.eval()
text = "import pickle; eval(x)"
"""


@pytest.mark.parametrize("pattern", sorted(UNSAFE_SNIPPETS))
def test_scanner_flags_each_unsafe_pattern(pattern):
    source, line = UNSAFE_SNIPPETS[pattern]
    findings = scan_source(source, "snippet.py")
    assert findings, f"the scanner missed {pattern!r}"
    assert any(f.startswith(f"snippet.py:{line}: ") for f in findings), (pattern, findings)


def test_scanner_allows_safe_look_alikes():
    assert scan_source(SAFE_SNIPPET, "safe.py") == []


def test_scanner_walks_the_whole_project():
    files = {os.path.relpath(p, REPO_ROOT) for p in project_python_files()}
    for expected in ("setup.py", "conftest.py", "pipeline/config.py", "pipeline/paths.py", "serving/scoring.py",
                     "models/trainer.py", "features/spec.py", "tests/safety_test.py"):
        assert expected in files, f"{expected} is not scanned"
    for top in ("features", "models", "pipeline", "serving", "bench", "tests"):
        assert any(f.startswith(top + "/") for f in files), f"no file of {top}/ is scanned"
    assert not any(f.startswith((".venv/", "build/")) or "/site-packages/" in f for f in files)


def test_no_pickle_or_eval_in_project_sources():
    findings: List[str] = []
    for path in project_python_files():
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        try:
            findings += scan_source(source, os.path.relpath(path, REPO_ROOT))
        except SyntaxError as e:
            findings.append(f"{os.path.relpath(path, REPO_ROOT)}:{e.lineno}: cannot be parsed, so cannot be checked")
    assert not findings, "unsafe deserialization or dynamic code:\n  " + "\n  ".join(findings)


# ------------------------------------------------------------------------------------------ Dockerfile
INSTALL_RE = re.compile(r"\b(apt-get|apt|apk|yum|dnf|microdnf|zypper)\b[^&;|]*\b(install|add)\b"
                        r"|\bpip3?\b[^&;|]*\binstall\b|\bconda\b[^&;|]*\binstall\b|\bnpm\b[^&;|]*\binstall\b")
ROOT_IDS = frozenset({"root", "0", ""})


def dockerfile_instructions(text: str) -> List[Tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: List[Tuple[int, str, str]] = []
    start, parts = 0, []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not parts:
            start = n
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        joined = " ".join(p for p in parts if p)
        keyword, _, args = joined.partition(" ")
        out.append((start, keyword.upper(), args.strip()))
        parts = []
    if parts:
        joined = " ".join(p for p in parts if p)
        keyword, _, args = joined.partition(" ")
        out.append((start, keyword.upper(), args.strip()))
    return out


def env_values(instructions) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for _, kw, args in instructions:
        if kw != "ENV":
            continue
        tokens = shlex.split(args)
        if tokens and "=" not in tokens[0]:
            env[tokens[0]] = " ".join(tokens[1:])
        else:
            env.update(t.split("=", 1) for t in tokens if "=" in t)
    return env


def user_problems(text: str) -> List[str]:
    """Why the final stage of this Dockerfile would not run as a fixed non-root user (empty: it does)."""
    ins = dockerfile_instructions(text)
    froms = [i for i, (_, kw, _) in enumerate(ins) if kw == "FROM"]
    if not froms:
        return ["no FROM instruction"]
    final = ins[froms[-1]:]
    users = [(n, args) for n, kw, args in final if kw == "USER"]
    if not users:
        return ["the final stage has no USER instruction: the container runs as root"]
    problems = []
    user_line, user = users[-1]
    uid, _, gid = user.partition(":")
    if "$" in user:
        problems.append(f"line {user_line}: USER {user} uses a variable; its value cannot be checked")
    if uid.strip() in ROOT_IDS or (gid and gid.strip() in ROOT_IDS):
        problems.append(f"line {user_line}: USER {user} is root")
    if not uid.isdigit():
        problems.append(f"line {user_line}: USER {user}: use a numeric uid (Kubernetes runAsNonRoot, as used by "
                        f"Kubeflow, can only verify a numeric user)")
    if gid and not gid.isdigit():
        problems.append(f"line {user_line}: USER {user}: use a numeric gid")
    installs = [n for n, kw, args in final if kw == "RUN" and INSTALL_RE.search(args)]
    if installs and installs[-1] > user_line:
        problems.append(f"line {user_line}: the last USER comes before the package install at line {installs[-1]} "
                        f"(installs run as root, then switch user)")
    created = [(n, args) for n, kw, args in final if kw == "RUN" and re.search(r"\b(useradd|adduser)\b", args)]
    if uid.isdigit() and not any(re.search(rf"(--uid|-u)[ =]{uid}\b", args) and n < user_line
                                 for n, args in created):
        problems.append(f"line {user_line}: no RUN useradd --uid {uid} before USER: the user has no passwd entry "
                        f"and no home directory")
    if not any(re.search(r"(--create-home|(^|\s)-m(\s|$))", args) for _, args in created):
        problems.append("useradd without --create-home: the user has no writable home")
    home = env_values(final).get("HOME", "")
    if not home.startswith("/") or home == "/":
        problems.append("no ENV HOME=/home/<user> in the final stage (HOME must not depend on a passwd lookup of "
                        "whatever uid the orchestrator runs the image with)")
    workdirs = [(n, args) for n, kw, args in final if kw == "WORKDIR"]
    if not workdirs or workdirs[-1][0] < user_line:
        problems.append("no WORKDIR after USER")
    elif home and not (workdirs[-1][1] == home or workdirs[-1][1].startswith(home.rstrip("/") + "/")):
        problems.append(f"WORKDIR {workdirs[-1][1]} is not under HOME {home}: it may not be writable by the user")
    return problems


def test_dockerfile_runs_as_a_fixed_non_root_user():
    with open(DOCKERFILE, encoding="utf-8") as fh:
        problems = user_problems(fh.read())
    assert not problems, "Dockerfile:\n  " + "\n  ".join(problems)


GOOD_DOCKERFILE = """FROM debian:trixie-slim
RUN apt-get update \\
 && apt-get install -y python3
RUN useradd --uid 1000 --create-home msmt
ENV HOME=/home/msmt
USER 1000:1000
WORKDIR /home/msmt
"""


@pytest.mark.parametrize("bad,expected", [
    (GOOD_DOCKERFILE.replace("USER 1000:1000\n", ""), "no USER"),
    (GOOD_DOCKERFILE.replace("USER 1000:1000", "USER root"), "is root"),
    (GOOD_DOCKERFILE.replace("USER 1000:1000", "USER 0"), "is root"),
    (GOOD_DOCKERFILE.replace("USER 1000:1000", "USER 1000:0"), "is root"),
    (GOOD_DOCKERFILE.replace("USER 1000:1000", "USER msmt"), "numeric uid"),
    (GOOD_DOCKERFILE.replace("USER 1000:1000", "USER $UID"), "variable"),
    (GOOD_DOCKERFILE + "USER root\n", "is root"),
    (GOOD_DOCKERFILE + "RUN pip install \\\n    requests\n", "before the package install"),
    (GOOD_DOCKERFILE.replace("--uid 1000", "--uid 1001"), "no RUN useradd --uid 1000"),
    (GOOD_DOCKERFILE.replace(" --create-home", ""), "--create-home"),
    (GOOD_DOCKERFILE.replace("ENV HOME=/home/msmt\n", ""), "ENV HOME"),
    (GOOD_DOCKERFILE.replace("WORKDIR /home/msmt", "WORKDIR /opt"), "not under HOME"),
    (GOOD_DOCKERFILE + "FROM debian:trixie-slim\nRUN true\n", "final stage has no USER"),
])
def test_dockerfile_check_catches(bad, expected):
    assert user_problems(GOOD_DOCKERFILE) == []
    problems = user_problems(bad)
    assert any(expected in p for p in problems), problems
