"""Timers: how long one call of an implementation takes, as a median over many repeats with its spread.

Every timed call i of a `InputSets` goes through the same steps; only the part between the bars is measured.

    reset(i)  [GPU: flush L2]  [GPU: hold the stream]  | start, the call, end |  [GPU: release]  wait for end

- reset(i): input set i mod K (one per seed) copied into the call's buffers, outputs poisoned (harness.measure.inputs),
  so a cached or skipped result cannot pass and the same addresses never see the same data twice in a row.
- Cold L2 (the default on the GPU): a memset of twice the L2 size evicts what the previous steps left there.
- Hold (GPU): the blocking kernel of harness.measure.hold keeps the timer's stream waiting until the whole call has been
  enqueued, so the events measure the call's kernels and the gaps the GPU needs between them, not Python's launch
  latency. What the events add around any kernel (the GPU's latency from the start event to the first block and
  from the last block to the end event, measured once per timer on a kernel of known length) is subtracted: the
  time is then the span of the call's kernels as CUPTI records it. A call that synchronises inside (it cannot be
  enqueued behind a held stream) is found by a probe and timed without the hold; its row is flagged, because its
  time then includes the host's gaps.
- Outputs are judged against the oracle after the first K timed calls (one per input set), after the last, and
  after a random VERIFY_SHARE of the others; wrong ones make the row `stale`, a written input `input-mutated`.

Before the timed calls, the GPU timer probes the call once behind a held stream: outputs that change while the
stream is still held, or after the stream has finished, were written by work outside the stream it was given;
the row is then `off-stream` and is not timed (its events would see none of that work).

Besides the median of the held events (`median_ms`, the GPU time), each GPU row gets `host_ms`: the wall time of
one call from its first launch to the end of a device-wide synchronisation, what a Python caller pays.

Timing methods (`--timing`): `events` (the default, above) or `graph`: the call is captured once into a CUDA graph
(with CuPy's allocator refusing allocations, so the graph cannot hold memory that is freed afterwards) and each
timed call replays it, the launch cost triton's do_bench_cudagraph measures. A call that cannot be captured is
timed with events and flagged.

The loop (`_measure`): time calls until `min_reps` are done and the relative IQR is under `target_rel_iqr`, or
`budget_s` of timing is spent (or `max_reps` calls); a sample whose hold ended by timeout is discarded.

CPU rows also get `host_ref_ms`: the median time of a fixed reference workload (`host_reference`, two small
float64 matrix products) timed right after every timed call, outside its interval. A shared host runs fast and slow
for stretches of seconds (other tenants, frequency), and every call timed in such a stretch moves with it: on the
2-core development machine, in a noisy hour, seven back-to-back runs of the same CPU cases spread up to 2.35x
(max/min per case), the reference moved with them (correlation of the log deviations 0.92) and the ratio of the two
spread up to 1.49x (`python benchmarks/host_reference.py`). `harness compare` divides a CPU case's ratio between two
runs by its reference's ratio, so that a run that landed in a slow stretch is not called a regression
(benchmarks/NOTES.md, "CPU host reference"). That division fails when another program holds a core: multi-threaded
BLAS then slows many times more than the single-threaded reference. The CPU timer therefore also records how long its
threads waited for a CPU, plus the CPU time the hypervisor stole meanwhile (`host_wait`, harness.measure.hostwait),
times a case again when that is large, and compare leaves a case that stayed disturbed unjudged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.errors import one_line
from harness.measure.check import changed_inputs
from harness.measure.clocks import open_gpu_clocks, summarize
from harness.measure.hostwait import BUSY_WAIT_SHARE, WaitShare
from harness.measure.inputs import InputSets

TIMING_METHODS = ("events", "graph")
VERIFY_SHARE = 0.1


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


@dataclass
class Timing:
    """What a timer found: the statistics (None when the row failed before it could be timed), the host figure,
    how it was timed, flags, and a failure (status, reason) when the call broke the contract while being timed."""

    stats: TimeStats | None
    host_ms: float = math.nan
    method: str = ""
    flags: list[str] = field(default_factory=list)
    failure: tuple[str, str] | None = None
    columns: dict = field(default_factory=dict)  # e.g. the SM clock seen while timing


class TimerError(RuntimeError):
    """No call could be timed (every sample was discarded)."""


class _Broken(Exception):
    """A timed call broke the contract: carries (status, reason) out of the timing loop."""


class _Verifier:
    """Judges the outputs of timed calls 0..K-1, a random share of the later ones, and (at the end) the last."""

    def __init__(self, work: InputSets):
        self.work, self.rng = work, np.random.default_rng()

    def after(self, i: int) -> None:
        if i < len(self.work.sets) or self.rng.random() < VERIFY_SHARE:
            self.last()

    def last(self) -> None:
        failure = self.work.verify()
        if failure:
            raise _Broken(failure)


def stats(samples_ms: list[float]) -> TimeStats:
    a = np.asarray(samples_ms)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return TimeStats(float(med), float(q3 - q1), float(a.min()), len(a))


def _measure(time_one: Callable[[int], float | None], settings: TimerSettings) -> tuple[TimeStats, int]:
    """Time calls 0, 1, ... (ms each, None for a discarded sample) until the spread is small or the budget is
    spent; returns the statistics and the number of discarded samples."""
    samples: list[float] = []
    discarded = 0
    start = time.perf_counter()
    for i in range(settings.max_reps):
        ms = time_one(i)
        if ms is None:
            discarded += 1
        else:
            samples.append(ms)
        spent = time.perf_counter() - start >= settings.budget_s
        if len(samples) >= settings.min_reps and (spent or stats(samples).rel_iqr <= settings.target_rel_iqr):
            break
        if spent and i + 1 >= settings.min_reps and len(samples) < settings.min_reps // 2:
            break  # most samples are being discarded: stop rather than spend the budget many times over
    if not samples:
        raise TimerError(f"all {discarded} timed calls were discarded")
    return stats(samples), discarded


def _warm_up(work: InputSets, seconds: float, sync: Callable[[], None]) -> float:
    """Call the workload (reset, call, sync) for `seconds`, at least twice; the median wall seconds of a call."""
    walls = []
    start = time.perf_counter()
    while len(walls) < 2 or time.perf_counter() - start < seconds:
        work.reset(len(walls))
        sync()
        t0 = time.perf_counter()
        work.run()
        sync()
        walls.append(time.perf_counter() - t0)
    return float(np.median(walls))


def host_reference() -> Callable[[], float]:
    """A call that times the reference workload (ms): two 96x96 float64 matrix products on fixed data."""
    rng = np.random.default_rng(0)
    a, b = rng.random((96, 96)), rng.random((96, 96))

    def ref() -> float:
        t0 = time.perf_counter()
        np.dot(a, b)
        np.dot(b, a)
        return (time.perf_counter() - t0) * 1e3
    return ref


class CpuTimer:
    """Wall-clock timer for CPU implementations; their host time is their time. Each timed call is followed by one
    call of the host reference, whose median goes into the row as `host_ref_ms`. A case whose threads waited for a
    CPU for BUSY_WAIT_SHARE of its timed loop or more (another program held a core, harness.measure.hostwait) is
    timed again, up to RETIMES times; the attempt that waited least is kept, its share goes into `host_wait`, and
    the row is flagged `host busy` when even that one waited too long."""

    name = "cpu-perf_counter"
    RETIMES = 2

    def __init__(self, settings: TimerSettings | None = None):
        self.settings = settings or TimerSettings()

    def time(self, work: InputSets) -> Timing:
        _warm_up(work, self.settings.warmup_s, lambda: None)
        best: Timing | None = None
        for _ in range(1 + self.RETIMES):
            timing = self._attempt(work)
            wait = timing.columns.get("host_wait")
            if timing.failure or wait is None:
                return timing
            if best is None or wait < best.columns["host_wait"]:
                best = timing
            if wait < BUSY_WAIT_SHARE:
                break
        if best.columns["host_wait"] >= BUSY_WAIT_SHARE:
            best.flags.append("host busy")
        return best

    def _attempt(self, work: InputSets) -> Timing:
        check = _Verifier(work)
        ref, ref_ms = host_reference(), []

        def one(i: int) -> float:
            work.reset(i)
            t0 = time.perf_counter()
            work.run()
            ms = (time.perf_counter() - t0) * 1e3
            ref_ms.append(ref())
            check.after(i)
            return ms

        waits = WaitShare()
        try:
            t, _ = _measure(one, self.settings)
            check.last()
        except _Broken as broken:
            return Timing(None, method="perf_counter", failure=broken.args[0])
        columns = {"host_ref_ms": float(np.median(ref_ms)), "host_wait": waits.share()}
        return Timing(t, host_ms=t.median_ms, method="perf_counter", columns=columns)


class GpuTimer:
    """CUDA events on a held, non-blocking stream, with the L2 flushed before every call unless `warm`."""

    name = "gpu-cuda-events"
    HOLD_MIN_S = 0.05  # the hold's timeout: at least this, and 20x the time the call takes to enqueue
    HOST_SAMPLES = 10

    def __init__(self, settings: TimerSettings | None = None, warm: bool = False, method: str = "events"):
        import cupy

        from harness.measure.hold import StreamHold, event_overhead

        if method not in TIMING_METHODS:
            raise ValueError(f"timing method must be one of {TIMING_METHODS}, not {method!r}")
        self.cp = cupy
        self.settings = settings or TimerSettings()
        self.warm, self.method = warm, method
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.side = cupy.cuda.Stream(non_blocking=True)
        dev = cupy.cuda.Device()
        l2 = cupy.cuda.runtime.getDeviceProperties(dev.id)["l2CacheSize"]
        self.flush_buffer = None if warm else cupy.empty(2 * max(l2, 1 << 20), dtype=cupy.uint8)
        self.start, self.end = cupy.cuda.Event(), cupy.cuda.Event()
        self.hold = StreamHold()
        self.overhead_ms, self.overhead_how = event_overhead(self.stream, self.hold)
        self.clocks, self.clock_note = open_gpu_clocks(dev.id)

    def _sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def flush(self, stream=None) -> None:
        """Evict the L2 (a memset of twice its size) on `stream`, the timer's own by default; nothing when warm.
        Also what benchmarks/cupti_check.py runs before each call it traces."""
        if self.flush_buffer is not None:
            self.cp.cuda.runtime.memsetAsync(self.flush_buffer.data.ptr, 0, self.flush_buffer.nbytes,
                                             (stream or self.stream).ptr)

    def time(self, work: InputSets) -> Timing:
        with self.stream:
            per_call_s = _warm_up(work, self.settings.warmup_s, self._sync)
            failure, enqueue_s, synchronises = self._probe(work, per_call_s)
            if failure:
                return Timing(None, method="probe", failure=failure)
            flags = ["synchronises inside the call: it cannot be enqueued behind a held stream, so its GPU time "
                     "includes the host's gaps"] if synchronises else []
            launch, method = work.run, "held events" if not synchronises else "events (call synchronises)"
            if self.method == "graph":
                graph, why = self._capture(work)
                if graph is not None:
                    launch, method = (lambda: graph.launch(self.stream)), method.replace("events", "graph replay")
                else:
                    flags.append(why)
            hold_s = max(self.HOLD_MIN_S, 20 * enqueue_s)
            check = _Verifier(work)
            clock = [self.clocks.sample()] if self.clocks else []

            def one(i: int) -> float | None:
                work.reset(i)
                self.flush()
                if not synchronises:
                    self.hold.hold(self.stream, hold_s)
                self.start.record(self.stream)
                launch()
                self.end.record(self.stream)
                if not synchronises:
                    self.hold.release()
                self.end.synchronize()
                if not synchronises and self.hold.timed_out:
                    return None
                ms = max(0.0, self.cp.cuda.get_elapsed_time(self.start, self.end) - self.overhead_ms)
                check.after(i)
                return ms

            try:
                t, discarded = _measure(one, self.settings)
                if self.clocks:
                    clock.append(self.clocks.sample())
                check.last()
            except _Broken as broken:
                return Timing(None, method=method, failure=broken.args[0])
            host_ms = self._host_ms(work)
        if discarded:
            flags.append(f"{discarded} of {discarded + t.reps} held calls outlasted the hold ({hold_s * 1e3:.0f} ms "
                         "to enqueue) and were discarded")
        columns = {}
        if clock:
            columns, flag = summarize(clock, self.clocks.max_mhz)
            flags += [flag] if flag else []
        return Timing(t, host_ms, method, flags, None, columns)

    def _probe(self, work: InputSets, per_call_s: float) -> tuple[tuple[str, str] | None, float, bool]:
        """One call behind a held stream: (off-stream failure or None, seconds to enqueue, synchronises inside).

        While the stream is held, nothing the call put on it can run: an output that changes before the release
        (looked at from a side stream, after waiting twice a call's wall time) was written by work elsewhere. After
        the release, a copy of the outputs taken in the stream's order must equal them once the whole device is
        idle: if not, work elsewhere was still writing them when the stream finished."""
        work.reset(0)
        self._sync()
        before = {k: a.copy() for k, a in work.call.outputs.items()}
        wait_s = max(1e-3, 2 * per_call_s)
        self.hold.hold(self.stream, wait_s + 1.0)
        t0 = time.perf_counter()
        work.run()
        enqueue_s = time.perf_counter() - t0
        after = {k: a.copy() for k, a in work.outputs().items()}  # runs in stream order, right after the call
        synchronises = self.hold.timed_out
        early: list[str] = []
        if not synchronises:
            time.sleep(max(0.0, wait_s - (time.perf_counter() - t0)))
            with self.side:
                early = changed_inputs(work.call.outputs, before)
            if self.hold.timed_out:  # released by its timeout while we looked: the look proves nothing
                early = []
        self.hold.release()
        self._sync()
        late = changed_inputs(work.outputs(), after)
        if early:
            return ("off-stream", f"{', '.join(early)} written while the timer's stream was held: the call runs "
                                  "work on a stream other than the one it is given"), enqueue_s, synchronises
        if late:
            return ("off-stream", f"{', '.join(late)} still being written after the timer's stream finished: the "
                                  "call runs work on a stream other than the one it is given"), enqueue_s, synchronises
        return None, enqueue_s, synchronises

    def _capture(self, work: InputSets):
        """(graph, '') of one call captured on the timer's stream, or (None, why it cannot be)."""
        cp = self.cp
        work.reset(0)
        self._sync()

        def refuse(size: int):
            raise RuntimeError(f"allocation of {size} bytes while capturing")

        try:
            with cp.cuda.using_allocator(refuse):
                self.stream.begin_capture(cp.cuda.runtime.streamCaptureModeGlobal)
                try:
                    work.run()
                finally:
                    graph = self.stream.end_capture()
            return graph, ""
        except Exception as exc:
            why = one_line(exc, 160)
            return None, f"not capturable as a CUDA graph ({why}): timed with held events instead"

    def _host_ms(self, work: InputSets) -> float:
        """Median wall time (ms) of one call from its launch to the end of a device-wide synchronisation."""
        walls = []
        for i in range(self.HOST_SAMPLES):
            work.reset(i)
            self.flush()
            self._sync()
            t0 = time.perf_counter()
            work.run()
            self._sync()
            walls.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(walls))
