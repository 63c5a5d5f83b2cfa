"""How long this process's threads waited for a CPU: the sign that other work shared the host while a case was timed.

Linux keeps, for every thread, the time it was runnable but not running (the second field of
/proc/self/task/<tid>/schedstat, in nanoseconds, exact rather than sampled at the clock tick). A CPU case timed while
another program holds a core waits: multi-threaded BLAS most of all, whose threads wait for one another, so that one
busy-loop process beside a 2-core run made numpy_opt's 0.34 ms conv2d case 14x slower while the single-threaded
host reference moved only 1.6x (benchmarks/NOTES.md, "CPU host reference"). On the 2-core development machine the
share of the wall time spent waiting is ~0.3 % when it is quiet and 55–80 % beside such a process.

The hypervisor's steal time is not seen here (a stolen thread looks like a running one); it slows every call alike,
which the host reference's division (harness.report.compare) removes.
"""

from __future__ import annotations

import glob
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


class WaitShare:
    """The share of the wall time since construction that this process's threads waited for a CPU (`share()`;
    None where unknown). With several threads it can exceed 1."""

    def __init__(self):
        self.t0, self.w0 = time.perf_counter(), waited_s()

    def share(self) -> float | None:
        w, wall = waited_s(), time.perf_counter() - self.t0
        if w is None or self.w0 is None or wall <= 0:
            return None
        return max(0.0, w - self.w0) / wall
