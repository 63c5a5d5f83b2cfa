"""Check and time the gemm and conv2d GPU kernels on the sizes of issue 3's targets; print a short table.

Run on the GPU machine from the repository root:

    PYTHONPATH=. python benchmarks/gpu_kernels.py [--out DIR] [--seeds 1] [--quick]

Every case is first checked against the float64 oracle (harness.measure.check, `--seeds` seeds, oracle on the GPU), then
timed with harness.measure.timing.GpuTimer (CUDA events on a non-default stream, L2 flushed before each call, median).
Cases: gemm fwd/bwd at 4096³ and 8192³ (cupy_naive, cupy_opt, cublas, cublas_tf32) and conv2d fprop/dgrad/wgrad
on the `resnet50` set (cupy_naive, cupy_opt, cupy_im2col_cublas). The table gives TFLOP/s and the ratios the
targets are stated in: tiled / cuBLAS (gemm) and tiled / im2col_cublas and tiled / naive speed-ups (conv2d),
per shape and for the whole set (sum of times). Full rows go to DIR/gpu_kernels.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.measure.check import ReferenceCache, check
from harness.measure.execute import prepare
from harness.measure.timing import GpuTimer, TimerSettings
from harness.ops import get_op
from harness.registry import get
from harness.spec import shape_str

GEMM_IMPLS = ("cupy_naive", "cupy_opt", "cublas", "cublas_tf32")
CONV_IMPLS = ("cupy_naive", "cupy_opt", "cupy_im2col_cublas")


def run_case(op: str, pass_: str, shape, names, timer: GpuTimer, seeds) -> list[dict]:
    """Check then time every implementation on one (op, pass, shape)."""
    spec = get_op(op)
    refs = ReferenceCache(spec, shape, pass_)
    rows = []
    for name in names:
        impl = get(op, pass_, name)
        res = check(impl, refs, seeds)
        row = {"op": op, "pass": pass_, "shape": shape_str(shape), "impl": name, "status": res.status,
               "reason": res.reason, "err": res.err}
        if res.status == "pass":
            call = prepare(impl, spec, shape, pass_, refs.inputs(seeds[0]))
            t = timer.time(call.run)
            row.update(ms=t.median_ms, rel_iqr=t.rel_iqr, reps=t.reps,
                       tflops=spec.flops(shape, pass_) / t.median_ms / 1e9)
        if impl.details:
            row["details"] = impl.details(shape)
        rows.append(row)
        ms = row.get("ms", float("nan"))
        print(f"{op} {pass_} {row['shape']} {name}: {res.status} err={res.err:.1e} {ms:.3f} ms", flush=True)
    return rows


def table(rows: list[dict], base: str, others: tuple[str, ...]) -> list[str]:
    """One line per (op, pass, shape): each implementation's ms and TFLOP/s, and tiled's ratios to `others`."""
    lines = []
    keys = sorted({(r["op"], r["pass"], r["shape"]) for r in rows}, key=lambda k: (k[1], k[2]))
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for key in keys:
        by = {r["impl"]: r for r in rows if (r["op"], r["pass"], r["shape"]) == key}
        cells = [f"{n}={by[n]['ms']:.3f}ms/{by[n]['tflops']:.1f}T" if "ms" in by[n] else f"{n}={by[n]['status']}"
                 for n in by]
        t = by.get(base, {}).get("ms")
        ratios = [f"{base}/{o}={by[o]['ms'] / t:.2f}x" for o in others if t and "ms" in by.get(o, {})]
        lines.append(f"{key[1]:6s} {key[2]:48s} " + " ".join(cells + ratios))
        for n, r in by.items():
            if "ms" in r:
                acc = totals.setdefault((key[0], key[1]), {})
                acc[n] = acc.get(n, 0.0) + r["ms"]
    for (op, p), acc in totals.items():
        t = acc.get(base)
        ratios = [f"{base}/{o}={acc[o] / t:.2f}x" for o in others if t and o in acc]
        lines.append(f"TOTAL {op} {p}: " + " ".join(f"{n}={v:.2f}ms" for n, v in acc.items()) + " " + " ".join(ratios))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for gpu_kernels.json")
    ap.add_argument("--seeds", type=int, default=1, help="seeds checked per case")
    ap.add_argument("--quick", action="store_true", help="gemm 4096 and the first 4 resnet50 layers only")
    ap.add_argument("--only", choices=("gemm", "conv2d"), help="one op only")
    args = ap.parse_args()
    seeds = tuple(range(args.seeds))
    timer = GpuTimer(TimerSettings(warmup_s=0.05, budget_s=0.5, min_reps=10))
    start = time.perf_counter()
    rows: list[dict] = []
    gemm = [s for s in get_op("gemm").shapes("gemm-square") if s.M >= 4096][: 1 if args.quick else None]
    conv = get_op("conv2d").shapes("resnet50")[: 4 if args.quick else None]
    if args.only != "conv2d":
        for p in ("fwd", "bwd"):
            for s in gemm:
                rows += run_case("gemm", p, s, GEMM_IMPLS, timer, seeds)
    if args.only != "gemm":
        for p in ("fprop", "dgrad", "wgrad"):
            for s in conv:
                rows += run_case("conv2d", p, s, CONV_IMPLS, timer, seeds)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_kernels.json").write_text(json.dumps(rows, indent=1, default=str))
    for r in rows:
        if r["impl"] == "cupy_opt" and r.get("details"):
            k = {f: (v["regs"], v["spill"]) for f, v in r["details"]["kernels"].items()}
            print(f"{r['pass']:6s} {r['shape']:48s} {r['details'].get('note', '')} (regs, spill) {k}")
    print(f"\n# {len(rows)} rows in {time.perf_counter() - start:.0f} s; failures: "
          f"{[(r['pass'], r['shape'], r['impl'], r['reason']) for r in rows if r['status'] != 'pass']}")
    print("\n".join(table([r for r in rows if r["op"] == "gemm"], "cupy_opt", ("cublas",))))
    print("\n".join(table([r for r in rows if r["op"] == "conv2d"], "cupy_opt",
                          ("cupy_im2col_cublas", "cupy_naive"))))

if __name__ == "__main__":
    main()
