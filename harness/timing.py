"""Timers: how long one call of an implementation takes, as a median over many repeats with its spread.

Both timers share one loop (`_measure`): warm up for `warmup_s` (at least one call), then time calls one by one
until `min_reps` are done and the relative IQR is under `target_rel_iqr`, or `budget_s` of measuring is spent
(or `max_reps` reached). They differ only in how one call is timed:

- CpuTimer: time.perf_counter around the call.
- GpuTimer: CUDA events recorded on a non-default stream around the call; before each timed call the L2 cache is
  flushed by writing a buffer of twice the L2 size (cold-cache numbers, the default), unless `warm=True`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class TimeStats:
    median_ms: float
    iqr_ms: float
    min_ms: float
    reps: int

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else math.inf

    def as_dict(self) -> dict:
        return {**asdict(self), "rel_iqr": self.rel_iqr}


@dataclass
class TimerSettings:
    warmup_s: float = 0.05
    budget_s: float = 1.0
    min_reps: int = 10
    max_reps: int = 10_000
    target_rel_iqr: float = 0.05


def stats(samples_ms: list[float]) -> TimeStats:
    a = np.asarray(samples_ms)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return TimeStats(float(med), float(q3 - q1), float(a.min()), len(a))


def _measure(time_one: Callable[[], float], settings: TimerSettings) -> TimeStats:
    """Warm up by time, then collect per-call times (ms) until the spread is small or the budget is spent."""
    start = time.perf_counter()
    while True:
        time_one()
        if time.perf_counter() - start >= settings.warmup_s:
            break
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < settings.max_reps:
        samples.append(time_one())
        done = stats(samples).rel_iqr <= settings.target_rel_iqr or time.perf_counter() - start >= settings.budget_s
        if len(samples) >= settings.min_reps and done:
            break
    return stats(samples)


class CpuTimer:
    """Wall-clock timer for CPU implementations."""

    name = "cpu-perf_counter"

    def __init__(self, settings: TimerSettings | None = None):
        self.settings = settings or TimerSettings()

    def time(self, fn: Callable[[], object]) -> TimeStats:
        def one() -> float:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3

        return _measure(one, self.settings)


class GpuTimer:
    """CUDA-event timer on a non-default stream, with an L2 flush before every timed call unless `warm`.

    The flush writes (memset) a buffer of twice the device's L2 size, which evicts every line the previous call
    left in L2, so each call reads its inputs from HBM as it would inside a network. The flush runs before the
    start event, so it is not part of the measured time.
    """

    name = "gpu-cuda-events"

    def __init__(self, settings: TimerSettings | None = None, warm: bool = False):
        import cupy

        self.cp = cupy
        self.settings = settings or TimerSettings()
        self.warm = warm
        self.stream = cupy.cuda.Stream(non_blocking=True)
        l2 = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["l2CacheSize"]
        self.flush_buffer = None if warm else cupy.empty(2 * max(l2, 1 << 20), dtype=cupy.uint8)
        self.start, self.end = cupy.cuda.Event(), cupy.cuda.Event()

    def time(self, fn: Callable[[], object]) -> TimeStats:
        with self.stream:
            def one() -> float:
                if self.flush_buffer is not None:
                    self.flush_buffer.fill(1)
                self.start.record(self.stream)
                fn()
                self.end.record(self.stream)
                self.end.synchronize()
                return self.cp.cuda.get_elapsed_time(self.start, self.end)

            return _measure(one, self.settings)
