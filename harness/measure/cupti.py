"""Kernel durations as CUPTI records them, through torch.profiler (the independent measurement the GPU timer is
calibrated and tested against). Optional: without torch, `available()` says why and nothing here is used."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path


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
