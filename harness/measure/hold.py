"""Holding a CUDA stream while a call is enqueued, so that a timer measures GPU time, not Python's launch time;
and what CUDA events themselves add around a kernel.

`StreamHold.hold(stream, timeout_s)` launches the blocking kernel of hold_stream.cu on `stream`; the stream does
nothing else until `release()` (or the timeout) lets it go. The flags it polls live in host-mapped pinned memory:
with unified addressing (every 64-bit CUDA platform) the host pointer of such memory is also its device pointer.

`event_overhead()`: even on a held stream, the interval between two events around one kernel is longer than the
kernel by a constant, the GPU's own latency from the start event to the kernel's first block and from its last
block to the end event (2.2 us on an H200, whatever the kernel's length: benchmarks/event_overhead.py). It is
measured once per timer on a kernel of known length and subtracted from every timed call.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from harness import cuda
from harness.measure import cupti
from harness.measure.events import event_times_ms

SOURCE = Path(__file__).with_name("hold_stream.cu")
KERNEL = "hold_stream"


class StreamHold:
    """One pair of flags (release, timed_out) and the kernel that waits on them; one hold at a time."""

    def __init__(self):
        import cupy

        self._cp = cupy
        self._kernel = cuda.kernel(SOURCE, KERNEL)  # harness.cuda: strict options, cached cubin
        self._mem = cupy.cuda.PinnedMemory(8, cupy.cuda.runtime.hostAllocMapped)
        self._flags = np.ctypeslib.as_array((ctypes.c_int32 * 2).from_address(self._mem.ptr))

    def hold(self, stream, timeout_s: float) -> None:
        """Enqueue the blocking kernel on `stream`; it lets the stream go at release() or after timeout_s."""
        self._flags[:] = 0
        ptr = self._mem.ptr
        with stream:
            self._kernel((1,), (1,), (np.uint64(ptr), np.uint64(ptr + 4), np.uint64(int(timeout_s * 1e9))))

    def release(self) -> None:
        self._flags[0] = 1

    @property
    def timed_out(self) -> bool:
        """True when the last hold ended by its timeout instead of release() (read it after the stream synced)."""
        return bool(self._flags[1])


def event_overhead(stream, hold: StreamHold, spin_us: int = 20, reps: int = 100) -> tuple[float, str]:
    """(milliseconds that held events add around one kernel, how that was measured).

    The kernel spins for `spin_us` of %globaltimer. Its duration is CUPTI's where torch.profiler is available;
    otherwise the span it measured itself, which leaves out the time its block takes to start and retire (CUPTI
    counts that), so that times are then a fraction of a microsecond below CUPTI's."""
    import cupy

    spin = cuda.kernel(SOURCE, "spin_for")
    span = cupy.zeros(1, dtype=cupy.uint64)

    def launch(_: int = 0) -> None:
        with stream:
            spin((1,), (1,), (np.uint64(spin_us * 1000), span))

    events_ms = float(np.median(event_times_ms(launch, reps, stream, hold)))
    if cupti.available() is None:
        def one(i: int) -> None:
            launch()
            stream.synchronize()
        found = [k["dur"] for k in cupti.kernels(one, reps) if k["name"] == "spin_for"]
        if len(found) == reps:
            return events_ms - float(np.median(found)) / 1e3, (
                f"held events minus CUPTI's duration (torch.profiler) of a {spin_us} us kernel, median of {reps}")
    own_ms = int(span[0]) / 1e6
    return events_ms - own_ms, (f"held events minus the span a {spin_us} us kernel measured itself (%globaltimer), "
                                f"median of {reps}; without CUPTI, so a kernel's block start and retire are left out")
