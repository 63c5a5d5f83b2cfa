"""Sweep cupy_opt's tile configurations (impls/cuda/gemm_warptile.cu) against cuBLAS, strict FP32.

    python benchmarks/gemm_tune.py [--out DIR] [--shapes 4096,8192,...] [--layouts nn,nt] [--reps N]
        [--configs NAME,...] [--plain]

For each shape and layout (nn: Y = X·W, the forward product; nt: dX = dY·Wᵀ, W stored n×k): every configuration
that applies (gemm_tune.candidates, split-K included; --configs keeps only those named) and
cuBLAS on the same product (cupy.matmul, fp32 compute), each timed with CUDA events (2 warm-up launches, then --reps
launches rotating over 3 input sets, median), as TFLOP/s and % of cuBLAS; the fastest configuration is marked.
Also prints every kernel's resources (registers, shared memory static + dynamic, spill bytes, blocks per SM), the
ptxas -v of the tuning table. Writes DIR/sweep.csv and DIR/resources.csv. --plain: one launch of each, no
cuBLAS and no resources, for running under `ncu`. An ad-hoc tuning sweep: the figures the
notes quote come from the harness's own timer (`python -m harness run`), this only ranks configurations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from impls.cuda import common as _cuda
from impls.cuda import gemm, gemm_tune

SHAPES = {"4096": (4096, 4096, 4096), "8192": (8192, 8192, 8192), "1024": (1024, 1024, 1024),
          "2048": (2048, 2048, 2048), "512": (512, 512, 512), "tall": (16384, 64, 1024),
          "wide": (64, 16384, 1024), "thesis": (32, 100, 3200), "thesis256": (256, 100, 3200)}


def time_ms(fn, sets: list[tuple], reps: int) -> float:
    """Median ms of fn(*set) over `reps` launches rotating over the input sets, after 2 warm-up launches."""
    import cupy

    for i in range(2):
        fn(*sets[i % len(sets)])
    stream = cupy.cuda.get_current_stream()
    events = [(cupy.cuda.Event(), cupy.cuda.Event()) for _ in range(reps)]
    for i, (start, end) in enumerate(events):
        start.record(stream)
        fn(*sets[i % len(sets)])
        end.record(stream)
    events[-1][1].synchronize()
    return statistics.median(cupy.cuda.get_elapsed_time(s, e) for s, e in events)


def sweep(label: str, layout: str, m: int, n: int, k: int, reps: int, configs: set[str] | None,
          plain: bool) -> list[dict]:
    """Every applicable configuration (and cuBLAS unless `plain`) on C (m×n) = A (m×k) · B (k×n, stored n×k for
    nt)."""
    import cupy

    dev, _, sms, smem_limit = gemm.device()
    rng = cupy.random.RandomState(0)  # drawn on the device: 8192² host draws would take seconds
    sets = []
    for _ in range(3):
        a = rng.uniform(-1, 1, (m, k), dtype=cupy.float32)
        b = rng.uniform(-1, 1, (n, k) if layout == "nt" else (k, n), dtype=cupy.float32)
        sets.append((a, b, cupy.empty((m, n), dtype=cupy.float32)))
    ldb = k if layout == "nt" else n
    flops = 2.0 * m * n * k
    vec = (gemm._aligned(sets[0][0], k), gemm._aligned(sets[0][1], ldb))
    rows, ref_ms = [], float("nan")
    base = {"shape": label, "layout": layout, "mnk": f"{m}x{n}x{k}"}
    if not plain:
        def ref(a, b, c):
            cupy.matmul(a, b.T if layout == "nt" else b, out=c)
        ref_ms = time_ms(ref, sets, reps)
        rows.append({**base, "impl": "cublas", "config": "", "ms": ref_ms, "tflops": flops / ref_ms / 1e9,
                     "pct_cublas": 100.0})
    for cfg in gemm_tune.candidates(m, n, k, sms, smem_limit):
        if configs and cfg.name not in configs:
            continue

        def run(a, b, c, cfg=cfg):
            gemm._wt_launch(cfg, layout, dev, a, b, c, None, m, n, k, k, ldb, False, *vec)
        if plain:  # one launch, for a profiler to see
            run(*sets[0])
            ms = float("nan")
        else:
            ms = time_ms(run, sets, reps)
        rows.append({**base, "impl": "cupy_opt", "config": cfg.name, "ms": ms, "tflops": flops / ms / 1e9,
                     "pct_cublas": 100 * ref_ms / ms})
    return rows


def resources() -> list[dict]:
    """registers, shared memory (static + dynamic), spill bytes and blocks/SM of every kernel of the table."""
    rows = []
    for t in gemm_tune.TILES.values():
        for layout in ("nn", "nt", "tn"):
            func = f"sgemm_wt_{t.name}_{layout}"
            a = _cuda.attributes(gemm.WARPTILE, [func], launch={func: (t.threads, t.smem)})["kernels"][func]
            rows.append({"kernel": func, "threads": t.threads, **a})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="")
    ap.add_argument("--shapes", default="4096,8192,1024,2048,512,tall,wide,thesis,thesis256")
    ap.add_argument("--layouts", default="nn")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--configs", default="", help="comma-separated configuration names to keep (default all)")
    ap.add_argument("--plain", action="store_true", help="one launch each, no cuBLAS, no resources (for ncu)")
    args = ap.parse_args()
    import pandas as pd

    configs = set(args.configs.split(",")) if args.configs else None
    res = pd.DataFrame() if args.plain else pd.DataFrame(resources())
    print(res.to_string(index=False))
    rows = []
    for layout in args.layouts.split(","):
        for label in args.shapes.split(","):
            rows += sweep(label, layout, *SHAPES[label], reps=args.reps if label != "8192" else max(3, args.reps // 2),
                          configs=configs, plain=args.plain)
    df = pd.DataFrame(rows)
    if args.plain:
        return 0
    best = df[df.impl == "cupy_opt"].groupby(["shape", "layout"]).tflops.idxmax()
    df["best"] = ""
    df.loc[best.values, "best"] = "*"
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "sweep.csv", index=False)
        res.to_csv(out / "resources.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
