"""Kernel durations as CUPTI records them, through torch.profiler (the independent measurement the GPU timer is
calibrated and tested against). Optional: without torch, `available()` says why and nothing here is used."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

AGREE_REL, AGREE_ABS_MS = 0.05, 1e-3  # agrees(): 5 % + 1 µs


def available() -> str | None:
    """None when torch.profiler can record CUDA kernels here, else why not."""
    try:
        import torch
        from torch.profiler import ProfilerActivity  # noqa: F401
    except Exception as exc:
        return f"torch.profiler not importable ({type(exc).__name__})"
    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def kernels(fn: Callable[[int], None], calls: int) -> list[dict]:
    """Run fn(0) .. fn(calls - 1) under torch.profiler; every kernel CUPTI saw, in start order, as
    {"name", "ts", "dur"} with times in microseconds (memcpy and memset activities are not kernels)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(calls):
            fn(i)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    found = [{"name": e["name"], "ts": float(e["ts"]), "dur": float(e["dur"])} for e in events
             if e.get("cat") == "kernel"]
    return sorted(found, key=lambda e: e["ts"])


def call_kernels(work, flush: Callable[[], None], calls: int) -> list[list[dict]]:
    """The kernels of each of `calls` calls as CUPTI records them (kernels()' records, one list per call). `work` is
    a harness.measure.inputs.InputSets; flush() runs before every call (the L2 flush of a cold timing: a memset,
    which CUPTI does not count as a kernel); every call runs alone between device synchronisations, after 3
    warm-up calls."""
    import cupy

    dev = cupy.cuda.Device()
    for i in range(3):  # warm: compiled, planned, allocated
        work.reset(i)
        work.run()
    dev.synchronize()

    def one(i: int) -> None:
        work.reset(i)
        flush()
        dev.synchronize()
        work.run()
        dev.synchronize()

    found = kernels(one, calls)
    per_call, rest = divmod(len(found), calls)
    if per_call < 1 or rest:
        raise RuntimeError(f"{len(found)} kernels for {calls} calls: not the same kernels every call")
    return [found[k * per_call:(k + 1) * per_call] for k in range(calls)]


def call_spans_ms(work, flush: Callable[[], None], calls: int) -> tuple[float, float, int]:
    """Medians over `calls` (call_kernels) of one call's span, from its first kernel's start to its last kernel's
    end, and of its kernels' summed durations (below the span by the gaps between launches, above it where kernels
    overlap), and the number of kernels per call."""
    groups = call_kernels(work, flush, calls)
    return (*span_and_busy_ms(groups), len(groups[0]))


def span_and_busy_ms(groups: list[list[dict]]) -> tuple[float, float]:
    """Medians over calls (call_kernels' lists) of the span first start → last end and of the summed durations."""
    import numpy as np

    spans = [(g[-1]["ts"] + g[-1]["dur"] - g[0]["ts"]) / 1e3 for g in groups]
    return float(np.median(spans)), float(np.median([sum(e["dur"] for e in g) / 1e3 for g in groups]))


def agrees(harness_ms: float, busy_ms: float, span_ms: float) -> bool:
    """Whether a harness time is confirmed by CUPTI's record of the same call: between min(kernel sum, span) and the
    span, each widened by AGREE_REL + AGREE_ABS_MS. The span includes the host's launch gaps, which the timer's held
    stream removes; the sum leaves out the gaps between kernels, and exceeds the span where kernels overlap."""
    low = min(busy_ms, span_ms) * (1 - AGREE_REL) - AGREE_ABS_MS
    return low <= harness_ms <= span_ms * (1 + AGREE_REL) + AGREE_ABS_MS
