"""Run folders shaped like a GPU run, for the report and compare tests, written with the harness's own
ResultWriter and write_meta.

`gpu_like_run` has conv2d (fprop, dgrad, wgrad) and maxpool2d (fwd, bwd) on three thesis shapes each, with the
oracle, a CPU implementation, naive and tiled GPU kernels (with kernel attributes, one spilling), cudnn as the
baseline and cudnn_tf32; one failing case, one error, one skipped implementation and one noisy timing. The times
follow a simple throughput model so that every derived column (GFLOP/s, GB/s, % of peak, speedup) is consistent.
"""

from __future__ import annotations

from pathlib import Path

from harness.ops import get_op
from harness.results import ResultWriter, write_meta
from harness.spec import shape_str

CEILINGS = {"gpu": {"copy_gbps": 2900.0, "gemm_fp32_gflops": 51000.0, "how": "fixture"},
            "cpu": {"copy_gbps": 19.0, "gemm_fp32_gflops": 99.0, "how": "fixture"}}
# impl -> (device, math, GFLOP/s it reaches on conv, GB/s it reaches on pooling)
IMPLS = {
    "numpy_ref": ("cpu", "fp64", 0.5, 2.0),
    "numpy_opt": ("cpu", "fp32", 40.0, 6.0),
    "cupy_naive": ("gpu", "fp32", 2000.0, 600.0),
    "cupy_opt": ("gpu", "fp32", 9000.0, 1800.0),
    "cudnn": ("gpu", "fp32", 20000.0, 2000.0),
    "cudnn_tf32": ("gpu", "tf32", 45000.0, 2000.0),
}
KERNELS = {"cupy_naive": (32, 0, 0), "cupy_opt": (96, 8192, 16)}


def gpu_like_rows(n_shapes: int = 3) -> list[dict]:
    """Rows of conv2d and maxpool2d on the first `n_shapes` thesis shapes, speedups against cudnn of the same math."""
    rows = []
    for op in ("conv2d", "maxpool2d"):
        spec = get_op(op)
        for pass_ in spec.passes:
            for k, shape in enumerate(spec.shapes("thesis")[:n_shapes]):
                case = [_row(spec, pass_, shape, impl, *params, k) for impl, params in IMPLS.items()]
                base_ms = {r["math"]: r["median_ms"] for r in case
                           if r["impl"].startswith("cudnn") and "median_ms" in r}
                for r in case:
                    if "median_ms" in r and r["math"] in base_ms:
                        r.update(baseline="cudnn_tf32" if r["math"] == "tf32" else "cudnn",
                                 speedup=base_ms[r["math"]] / r["median_ms"])
                rows += case
    return rows


def _row(spec, pass_, shape, impl, device, math_, conv_rate, pool_rate, k) -> dict:
    nbytes = spec.bytes(shape, pass_, float_bytes=8 if math_ == "fp64" else 4)
    flops = spec.flops(shape, pass_)
    row = {"op": spec.name, "pass": pass_, "impl": impl, "device": device, "math": math_, "shape_set": "thesis",
           "shape": shape_str(shape), "flops": flops, "bytes": nbytes, "seeds": 3}
    if impl == "cudnn_tf32" and spec.name == "maxpool2d":
        return {**row, "status": "skipped", "reason": "no TF32 pooling in cuDNN"}
    if impl == "numpy_ref":
        row.update(status="oracle", reason="float64 reference", err=0.0, viol=0.0, rtol=0.0)
    elif impl == "cupy_opt" and pass_ == "dgrad" and k == 1:
        return {**row, "status": "fail", "err": 3e-3, "viol": 40.0, "rtol": 2.4e-6,
                "reason": "rel err 3.00e-03 (rtol 2.4e-06), worst element at 40.0x its bound"}
    elif impl == "cupy_naive" and pass_ == "bwd" and k == 2:
        return {**row, "status": "error", "reason": "CUDARuntimeError: cudaErrorLaunchFailure"}
    else:
        rtol = 2.4e-6 if math_ == "fp32" else 1.2e-3
        row.update(status="pass", err=rtol * 0.05, viol=0.2, rtol=rtol)
    seconds = flops / (conv_rate * 1e9) if spec.bound == "compute" else nbytes / (pool_rate * 1e9)
    seconds += 5e-6 if device == "gpu" else 2e-5  # launch / call overhead
    med = seconds * 1e3
    rel = 0.25 if (impl == "numpy_opt" and k == 0) else 0.02
    ceil = CEILINGS[device]
    row.update(median_ms=med, iqr_ms=med * rel, min_ms=med * 0.97, reps=200, rel_iqr=rel,
               gflops=flops / seconds / 1e9, gbps=nbytes / seconds / 1e9)
    if device == "cpu":
        row["host_ref_ms"] = 0.08  # the CPU timer's host reference (harness.measure.timing)
        row["host_wait"] = 0.003  # its threads' wait for a CPU on a quiet host (harness.measure.hostwait)
    if spec.bound == "compute":
        row["peak_kind"] = f"{device} fp32 gemm"
        if math_ == "fp32":
            row["pct_peak"] = 100 * row["gflops"] / ceil["gemm_fp32_gflops"]
    else:
        row.update(peak_kind=f"{device} copy", pct_peak=100 * row["gbps"] / ceil["copy_gbps"])
    if impl in KERNELS:
        regs, smem, spill = KERNELS[impl]
        row.update(kernel_regs=regs, kernel_smem=smem, kernel_spill=spill,
                   note=f"{impl}_{spec.name}_{pass_}: {regs} regs, {smem} B smem, {spill} B spill")
    return row


def write_run(run_dir: Path, rows: list[dict], meta: dict | None = None) -> Path:
    """A run folder (results.csv + meta.json) holding `rows`, through the harness's own writer."""
    writer = ResultWriter(run_dir)
    for r in rows:
        writer.write(r)
    writer.close()
    write_meta(run_dir, meta if meta is not None else gpu_meta())
    return run_dir


def gpu_meta() -> dict:
    return {"date_utc": "2026-11-22T18:00:00+00:00", "command": "python -m harness run --op conv2d,maxpool2d "
            "--shapes thesis", "host": "gpu-box", "cpu": "Fixture CPU", "python": "3.12.3", "numpy": "2.4",
            "gpu": "NVIDIA H100 80GB HBM3", "gpu_sms": 132, "cuda_driver": "13.0", "cuda_runtime": "13.2",
            "cupy": "14.2.0", "shape_set": "thesis", "seeds": [0, 1, 2], "check_only": False, "l2": "flushed",
            "ceilings": CEILINGS, "timers": {"cpu": "cpu-perf_counter", "gpu": "gpu-cuda-events"}}
