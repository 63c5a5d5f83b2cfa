"""How long this process's threads waited for a CPU, or had their CPUs taken by the hypervisor: the sign that other
work shared the host while a case was timed.

Linux keeps, for every thread, the time it was runnable but not running (the second field of
/proc/self/task/<tid>/schedstat, in nanoseconds, exact rather than sampled at the clock tick). A CPU case timed while
another program holds a core waits: multi-threaded BLAS most of all, whose threads wait for one another, so that one
busy-loop process beside a 2-core run made numpy_opt's 0.34 ms conv2d case 14x slower while the single-threaded
host reference moved only 1.6x (benchmarks/NOTES.md, "CPU host reference"). On the 2-core development machine the
share of the wall time spent waiting is ~0.3 % when it is quiet and 55–80 % beside such a process.

A virtual machine's CPUs can also be taken by the hypervisor for another guest ("steal", /proc/stat), which the
run delay does not see (a stolen thread looks like a running one): `stolen_s` adds it, summed over the machine's
CPUs (in clock ticks of 10 ms: coarse, but it only counts when steal happens). On the 2-core CI machine a whole run
once timed ~1.5x slower on the host reference with no thread waiting, and a threaded-BLAS case in it 3.8x; steal is
what fits (this machine's counter grew by 80 CPU-seconds in 90 minutes, in bursts), though that run did not record
it.
"""

from __future__ import annotations

import glob
import os
import time

BUSY_WAIT_SHARE = 0.10  # waiting this share of the wall time or more: the host was shared


def waited_s() -> float | None:
    """Seconds this process's threads have waited for a CPU so far; None where the kernel does not say (not Linux,
    no schedstat)."""
    total, found = 0, False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
            found = True
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return total * 1e-9 if found else None


def stolen_s() -> float | None:
    """CPU-seconds the hypervisor has given other guests so far, summed over this machine's CPUs (steal, the eighth
    field of /proc/stat's first line); None where the kernel does not say."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class WaitShare:
    """The share of the wall time since construction that this process's threads waited for a CPU, plus the CPU
    time stolen from the machine meanwhile (`share()`; None where neither is known). With several threads or
    CPUs it can exceed 1."""

    def __init__(self):
        self.t0, self.w0, self.s0 = time.perf_counter(), waited_s(), stolen_s()

    def share(self) -> float | None:
        w, s, wall = waited_s(), stolen_s(), time.perf_counter() - self.t0
        lost = [b - a for a, b in ((self.w0, w), (self.s0, s)) if a is not None and b is not None]
        if not lost or wall <= 0:
            return None
        return max(0.0, sum(lost)) / wall
