"""Peak resident memory per pipeline component, sampled from outside the pipeline process.

The local runner executes the components one after another in one child process (plus Beam worker
processes when the DirectRunner runs ``multi_processing``). :class:`PeakRss` samples the resident set size of
that process and all its descendants every ``interval`` seconds in a daemon thread; ``begin(name)`` and
``end(name)`` (called on the runner's "Component X is running / finished" log lines) delimit a component, and
``peaks`` holds the largest sample seen while it ran. What is measured is what the operating system would
count against a memory limit: the whole process tree's RSS, the imported libraries included.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional

import psutil


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and its descendants (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRss:
    """Samples the RSS of a process tree; tracks the peak of each component between begin() and end()."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid = pid
        self.interval = interval
        self.peaks: Dict[str, int] = {}
        self.overall = 0
        self._current: Optional[str] = None
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval + 1)

    def _sample(self) -> None:
        rss = tree_rss(self.pid)
        with self._lock:
            self._peak = max(self._peak, rss)
            self.overall = max(self.overall, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def begin(self, name: str) -> None:
        with self._lock:
            self._current = name
            self._peak = 0
        self._sample()

    def end(self, name: str) -> int:
        """The peak RSS (bytes) of ``name`` since its begin()."""
        self._sample()
        with self._lock:
            self.peaks[name] = max(self.peaks.get(name, 0), self._peak)
            self._current = None
            return self.peaks[name]


def gib(n_bytes: int) -> str:
    return f"{n_bytes / 2 ** 30:.2f} GiB"
