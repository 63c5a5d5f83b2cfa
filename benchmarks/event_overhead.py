"""What CUDA events add around a kernel on this GPU, and what the harness's held-event time is against CUPTI.

    python benchmarks/event_overhead.py        (needs CuPy and torch, for torch.profiler's CUPTI trace)

Prints: the held event interval with nothing in it; spin_for kernels of known length (%globaltimer) timed with held
events and by CUPTI; one maxpool kernel, and two back to back on separate buffers, timed with held events and by
CUPTI; the same kernel replayed from a CUDA graph; and the overhead the GPU timer subtracts (harness.measure.hold.
event_overhead), measured both ways. Each figure is the median of REPS calls.
"""

from __future__ import annotations

import cupy
import numpy as np

from harness.measure import cupti
from harness.measure.check import ReferenceCache
from harness.measure.hold import SOURCE, StreamHold, event_overhead
from harness.measure.inputs import InputSets
from harness.ops import get_op
from harness.registry import get

REPS = 200


def held_ms(stream, hold, launch) -> float:
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(REPS):
        hold.hold(stream, 0.05)
        start.record(stream)
        launch()
        end.record(stream)
        hold.release()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return float(np.median(times))


def cupti_ms(launch, sync) -> float:
    """Median duration (ms) of the kernels CUPTI saw in REPS launches."""
    def one(_: int) -> None:
        launch()
        sync()
    return float(np.median([k["dur"] for k in cupti.kernels(one, REPS)])) / 1e3


def main() -> None:
    stream = cupy.cuda.Stream(non_blocking=True)
    hold = StreamHold()
    spin = cupy.RawKernel(SOURCE.read_text(), "spin_for", options=("-std=c++17",))
    span = cupy.zeros(1, dtype=cupy.uint64)

    def sync():
        cupy.cuda.Device().synchronize()

    with stream:
        print(f"held events, empty interval: {held_ms(stream, hold, lambda: None) * 1e3:.2f} us")
        for us in (2, 5, 20, 100):
            def launch(us=us):
                spin((1,), (1,), (np.uint64(us * 1000), span))
            ev = held_ms(stream, hold, launch)
            dur = cupti_ms(launch, sync)
            print(f"spin_for {us:>3} us: held events {ev * 1e3:7.2f} us, CUPTI {dur * 1e3:7.2f} us, own span "
                  f"{int(span[0]) / 1e3:7.2f} us, events - CUPTI {(ev - dur) * 1e3:5.2f} us")
        spec = get_op("maxpool2d")
        shape = spec.shapes("thesis")[0]
        impl = get("maxpool2d", "fwd", "cupy_opt")
        a, b = (InputSets(impl, ReferenceCache(spec, shape, "fwd"), (0, 1, 2)) for _ in range(2))
        a.run()
        one = held_ms(stream, hold, a.run)
        two = held_ms(stream, hold, lambda: (a.run(), b.run()))
        dur = cupti_ms(a.run, sync)
        print(f"maxpool2d fwd {shape}: held events one {one * 1e3:.2f} us, two back to back {two * 1e3:.2f} us "
              f"(difference {(two - one) * 1e3:.2f} us); CUPTI {dur * 1e3:.2f} us")
        stream.begin_capture()
        a.run()
        graph = stream.end_capture()
        g = held_ms(stream, hold, lambda: graph.launch(stream))
        print(f"same kernel as a CUDA graph: held events {g * 1e3:.2f} us")
    ms, how = event_overhead(stream, hold)
    print(f"GPU timer's event overhead: {ms * 1e3:.2f} us ({how})")


if __name__ == "__main__":
    main()
