"""CUDA-event times of a callable: the one loop that the ceilings, the event-overhead probe and cuDNN's plan
autotuning share (the GPU timer's own loop, with its resets, verification and L2 flush, is in timing.py).

Imports cupy lazily: this module is imported on machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable


def event_times_ms(fn: Callable[[], object], reps: int, stream=None, hold=None, warmup: int = 1) -> list[float]:
    """Milliseconds between a start and an end event around each of `reps` calls of fn() on `stream` (CuPy's
    current stream when None), after `warmup` untimed calls. With `hold` (a harness.measure.hold.StreamHold) each
    call is enqueued behind the held stream and released after the end event, so the host's launch time is not in
    the interval."""
    import cupy

    stream = stream or cupy.cuda.get_current_stream()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    with stream:
        for _ in range(warmup):
            fn()
        for _ in range(reps):
            if hold is not None:
                hold.hold(stream, 0.05)
            start.record(stream)
            fn()
            end.record(stream)
            if hold is not None:
                hold.release()
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end))
    return times
