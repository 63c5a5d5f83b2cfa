"""harness.measure.hostwait: this process's threads' wait for a CPU, seen when another program shares their core."""

import os
import subprocess
import sys
import time

import pytest

import harness.measure.hostwait as hostwait
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


def test_cpu_time_stolen_by_the_hypervisor_counts_as_waiting(monkeypatch):
    # no thread waited, but 0.3 CPU-seconds of the machine went to another guest during the 1-second window
    clock, steal = iter([10.0, 11.0]), iter([5.0, 5.3])
    monkeypatch.setattr(hostwait.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(hostwait, "stolen_s", lambda: next(steal))
    monkeypatch.setattr(hostwait, "waited_s", lambda: 2.0)
    assert WaitShare().share() == pytest.approx(0.3)


def test_unknown_counters_give_no_share(monkeypatch):
    monkeypatch.setattr(hostwait, "stolen_s", lambda: None)
    monkeypatch.setattr(hostwait, "waited_s", lambda: None)
    assert WaitShare().share() is None


def test_the_steal_counter_reads_proc_stat():
    stolen = hostwait.stolen_s()
    assert stolen is None or stolen >= 0
