"""PeakRss on a child process that holds a known amount of memory for a moment."""

import subprocess
import sys
import time

from pipeline.memory import PeakRss, tree_rss

CHILD = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5); del b; " \
        "time.sleep(30)"


def test_peak_of_a_component_sees_the_allocation_and_the_next_one_does_not():
    proc = subprocess.Popen([sys.executable, "-c", CHILD])
    try:
        with PeakRss(proc.pid, interval=0.05) as memory:
            memory.begin("allocating")
            time.sleep(1.2)
            peak = memory.end("allocating")
            time.sleep(1.0)  # the child has freed the buffer
            memory.begin("after")
            time.sleep(0.3)
            after = memory.end("after")
        assert peak >= 300 * 2 ** 20
        assert after < peak - 200 * 2 ** 20
        assert memory.overall == max(memory.peaks.values()) == peak
    finally:
        proc.kill()
        proc.wait()
    assert tree_rss(proc.pid) == 0
