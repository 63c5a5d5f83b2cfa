"""harness.measure.hostwait: this process's threads' wait for a CPU, seen when another program shares their core."""

import os
import subprocess
import sys
import time

import pytest

from harness.measure.hostwait import WaitShare, waited_s

linux_schedstat = pytest.mark.skipif(waited_s() is None, reason="the kernel keeps no per-thread schedstat here")


@linux_schedstat
def test_the_wait_counter_is_seconds_and_never_goes_back():
    first = waited_s()
    time.sleep(0.01)
    assert 0 <= first <= waited_s()


@linux_schedstat
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity control here")
def test_a_busy_program_on_the_same_core_makes_the_thread_wait():
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        os.sched_setaffinity(0, {cpu})
        time.sleep(0.2)  # the hog is running on `cpu`
        waits = WaitShare()
        end = time.perf_counter() + 0.4
        while time.perf_counter() < end:
            pass
        share = waits.share()
    finally:
        os.sched_setaffinity(0, before)
        hog.kill()
        hog.wait()
    assert share > 0.2  # two busy threads on one core: each waits about half the time
