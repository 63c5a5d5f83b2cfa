"""Where cupy_opt's conv2d time goes on small layers, and what each candidate launch costs (a tuning sweep, not the
harness's figures: those come from `python -m harness run`).

    python benchmarks/conv_probe.py [--set thesis] [--passes fprop,dgrad,wgrad] [--reps 40] [--csv FILE]
        [--layers "C16 6x6,C3 12x12"] [--only conv_fprop_128x32_s/1] [--warm] [--plain]

For every layer of the set (depthwise layers excluded) and pass, every candidate launch: the BK = 8 choice of
_launch_config(small=False) (narrow for dgrad with C ≤ 4) and the small kernel conv_<pass>_<BM>x<BN>_s at each
split-K count of its ladder, for fprop conv_fprop_direct and conv_fprop_direct_split, for dgrad
conv_dgrad_direct_split, forced through cupy_opt's own wrapper (wgrad: the dw GEMM, not db). Each call is timed like
the harness times it: L2 flushed (a memset of twice its size), the stream held until the call is enqueued, CUDA
events around it (minus what the events add, harness.measure.hold.event_overhead), a third event between the GEMM
and splitk_reduce; inputs rotate over three random sets; the median of --reps calls. Columns: blocks (grid), slices
per block (direct: gather round trips), split-K workspace bytes, the model's time (small_seconds), GEMM and
reduction microseconds, total, and the largest difference from the first launch's output relative to its largest
element (a quick sanity check; the oracle checks are the tests and the harness run).

Diagnosis options: --warm skips the L2 flush (cold minus warm time = what the chain of dependent HBM round
trips costs); --layers and --only (FUNC or FUNC/SPLITS, comma-separated) restrict the sweep; --plain drops the
stream hold, the warm-up calls and the event-overhead calibration (whose torch.profiler would compete with Nsight
Compute for CUPTI), for running a few launches under `ncu`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import impls.cuda.conv2d as conv
from harness.ops.conv2d import SPEC, Conv2dShape

SETS = 3  # input sets rotated between calls


def candidates(s: Conv2dShape, pass_: str) -> list[conv.Launch]:
    """The BK = 8 (or narrow) launch, then the small kernel at each split-K of its ladder where the shape allows, then
    (fprop) the direct kernel and its split form, (dgrad) conv_dgrad_direct_split, where they apply (chosen or
    not: the probe measures them on every layer)."""
    base = conv._launch_config(s, pass_, small=False)
    rows, cols, red, zdim = conv.gemm_dims(s, pass_)
    fprop = pass_ == "fprop" and conv.direct_eligible(s)
    direct = [conv.direct_launch(s), conv.direct_split_launch(s)] if fprop else []
    if pass_ == "dgrad" and conv.dgrad_split_eligible(s):
        direct = [conv.direct_split_launch(conv.dgrad_as_fprop(s), "conv_dgrad_direct_split")]
    if not conv._small_eligible(pass_, rows, cols, red):
        return [base, *direct]
    return [base, *conv.small_launches(pass_, rows, cols, red, zdim), *direct]


def make_inputs(cp, s: Conv2dShape, pass_: str, seed: int) -> tuple[tuple, object, object]:
    """(operands, output, bias) for one input set."""
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return cp.asarray(rng.uniform(-1, 1, shape).astype(np.float32))

    w = rand(s.K, s.Cg, s.R, s.S)
    if pass_ == "fprop":
        return (rand(s.N, s.C, s.H, s.W), w), cp.empty((s.N, s.K, s.P, s.Q), dtype=cp.float32), rand(s.K)
    if pass_ == "wgrad":  # the dw GEMM only (db's conv_bias_grad is not part of the sweep)
        return (rand(s.N, s.C, s.H, s.W), rand(s.N, s.K, s.P, s.Q)), cp.empty(w.shape, dtype=cp.float32), None
    return (rand(s.N, s.K, s.P, s.Q), w), cp.empty((s.N, s.C, s.H, s.W), dtype=cp.float32), None


def wanted(launch: conv.Launch, only: str | None) -> bool:
    """Whether the launch matches --only: a comma-separated list of kernel names, each optionally /splits."""
    if not only:
        return True
    for item in only.split(","):
        func, _, splits = item.strip().partition("/")
        if launch.func == func and (not splits or launch.splits == int(splits)):
            return True
    return False


def time_launch(cp, hold, overhead_ms: float, flush, stream, s, pass_, launch, sets, reps: int):
    """(median GEMM µs, median reduction µs, median total µs, output of set 0). hold None (--plain): no stream
    hold and no warm-up calls (under ncu every launch is profiled)."""
    warmup = 2 if hold is not None else 0
    e0, em, e1 = cp.cuda.Event(), cp.cuda.Event(), cp.cuda.Event()
    gemm, red, total = [], [], []
    with stream:
        for i in range(reps + warmup):
            ops, out, bias = sets[i % len(sets)]
            flush()
            if hold is not None:
                hold.hold(stream, 0.05)
            e0.record(stream)
            called = []
            conv._run_tiled(s, pass_, ops, out, bias, launch=launch,
                            between=lambda c=called: (em.record(stream), c.append(True)))
            if not called:  # a one-kernel launch (narrow dgrad, direct fprop): no `between` call
                em.record(stream)
            e1.record(stream)
            if hold is not None:
                hold.release()
            e1.synchronize()
            if i < warmup or (hold is not None and hold.timed_out):
                continue  # warm-up (compilation, table upload)
            g = cp.cuda.get_elapsed_time(e0, em)
            t = cp.cuda.get_elapsed_time(e0, e1)
            gemm.append(max(0.0, g - overhead_ms) * 1e3)
            red.append(max(0.0, t - g) * 1e3)
            total.append(max(0.0, t - overhead_ms) * 1e3)
        ops, out, bias = sets[0]
        conv._run_tiled(s, pass_, ops, out, bias, launch=launch)
        stream.synchronize()
    return statistics.median(gemm), statistics.median(red), statistics.median(total), out.copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="thesis")
    ap.add_argument("--passes", default="fprop,dgrad,wgrad")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--layers", default=None, help="comma-separated layer labels, e.g. 'C16 6x6,C3 12x12'")
    ap.add_argument("--only", default=None, help="candidates: FUNC or FUNC/SPLITS, comma-separated")
    ap.add_argument("--warm", action="store_true", help="no L2 flush between calls")
    ap.add_argument("--plain", action="store_true", help="no stream hold, no overhead calibration (under ncu)")
    a = ap.parse_args()
    layers = a.layers.split(",") if a.layers else None

    import cupy as cp

    from harness.measure.hold import StreamHold, event_overhead

    stream = cp.cuda.Stream(non_blocking=True)
    hold = None if a.plain else StreamHold()
    overhead_ms, how = (0.0, "not subtracted: --plain") if a.plain else event_overhead(stream, hold)
    l2 = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["l2CacheSize"]
    buf = cp.empty(2 * l2, dtype=cp.uint8)

    def flush():
        if not a.warm:
            cp.cuda.runtime.memsetAsync(buf.data.ptr, 0, buf.nbytes, stream.ptr)

    print(f"event overhead {overhead_ms * 1e3:.2f} us ({how}); SMs {conv._sm_count()}; "
          f"L2 {'warm (no flush)' if a.warm else 'flushed before each call'}")
    head = (f"{'pass':5} {'layer':22} {'kernel':21} {'blocks':>6} {'kt':>3} {'spl':>3} {'ws_KB':>6} {'model':>6} "
            f"{'gemm':>6} {'red':>5} {'total':>6} {'reldiff':>8} pick")
    print(head)
    rows = []
    for pass_ in a.passes.split(","):
        for s in SPEC.shape_sets[a.set]:
            layer = f"C{s.C} {s.H}x{s.W} K{s.K} R{s.R}"
            if conv._depthwise(s) or (layers and not any(layer.startswith(x.strip()) for x in layers)):
                continue
            launches = [x for x in candidates(s, pass_) if wanted(x, a.only)]
            if not launches:
                continue
            sets = [make_inputs(cp, s, pass_, seed) for seed in range(SETS)]
            chosen = conv._launch_config(s, pass_)
            nrows, ncols, _, _ = conv.gemm_dims(s, pass_)
            ref = None
            for launch in launches:
                g, r, t, out = time_launch(cp, hold, overhead_ms, flush, stream, s, pass_, launch, sets, a.reps)
                ref = out if ref is None else ref
                diff = float(cp.abs(out - ref).max() / max(float(cp.abs(ref).max()), 1e-30))
                blocks = launch.tiles * launch.splits * launch.phases
                ws = 0 if launch.splits == 1 else launch.splits * out.size * 4
                model = conv.small_seconds(launch, s, nrows, ncols, launch.phases, conv._sm_count()) * 1e6
                pick = "<-" if launch == chosen else ""
                print(f"{pass_:5} {layer:22} {launch.func[5:]:21} {blocks:6d} {launch.kt_per:3d} {launch.splits:3d} "
                      f"{ws / 1024:6.0f} {model:6.1f} {g:6.1f} {r:5.1f} {t:6.1f} {diff:8.1e} {pick}")
                rows.append(dict(pass_=pass_, layer=layer, shape=str(s), func=launch.func, blocks=blocks,
                                 kt_per=launch.kt_per, splits=launch.splits, ws_bytes=ws, model_us=model, gemm_us=g,
                                 reduce_us=r, total_us=t, reldiff=diff, chosen=bool(pick)))
            if a.csv:  # after every layer, so that a run cut short by its time limit keeps what it measured
                import pandas as pd

                pd.DataFrame(rows).to_csv(a.csv, index=False)


if __name__ == "__main__":
    main()
