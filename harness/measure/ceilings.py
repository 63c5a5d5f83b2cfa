"""Ceilings of this machine: the denominators of "% of peak" and the limits no honest figure can pass.

Measured at the start of a run:
- bandwidth: a large device-to-device (or host memory) copy, counting bytes read + bytes written;
- compute: a large strict-FP32 matrix product through the vendor BLAS (cuBLAS via cupy.matmul; NumPy's BLAS).
Compute-bound ops (op spec `bound="compute"`) are reported against the FP32 GEMM rate, memory-bound ones against
the copy bandwidth. An implementation can only approach these.

From the hardware, by arithmetic (`gpu_hardware`), the physical limits that measure.plausibility flags rows against:
- FP32 FMA peak = SMs x FP32 lanes per SM x 2 FLOP x maximum SM clock;
- TF32 tensor-core peak = SMs x dense TF32 FLOP per SM per clock x maximum SM clock (where the table knows the chip);
- HBM bandwidth = memory clock x 2 (double data rate) x bus width.
"""

from __future__ import annotations

import time

import numpy as np

from harness.measure.events import event_times_ms


def _best_of(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_ceilings(copy_mib: int = 256, gemm_n: int = 2048) -> dict:
    """Host copy bandwidth (GB/s) and float32 NumPy matmul rate (GFLOP/s), best of a few repeats."""
    a = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    b = np.empty_like(a)
    t = _best_of(lambda: np.copyto(b, a), 3)
    x = np.random.default_rng(0).standard_normal((gemm_n, gemm_n), dtype=np.float32)
    tg = _best_of(lambda: x @ x, 3)
    return {"copy_gbps": 2 * a.nbytes / t / 1e9, "gemm_fp32_gflops": 2 * gemm_n**3 / tg / 1e9,
            "how": f"np.copyto of {copy_mib} MiB; float32 matmul {gemm_n}^3; best of 3"}


def gpu_ceilings(copy_mib: int = 1024, gemm_n: int = 8192) -> dict:
    """Device-to-device copy bandwidth (GB/s) and cuBLAS strict-FP32 SGEMM rate (GFLOP/s), median of repeats."""
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)

    def median_ms(fn, reps: int) -> float:
        return float(np.median(event_times_ms(fn, reps, stream)))

    with stream:
        a = cupy.random.random(copy_mib * 2**20 // 4, dtype=cupy.float32)
        b = cupy.empty_like(a)
        x = cupy.random.random((gemm_n, gemm_n), dtype=cupy.float32) - 0.5
        y = cupy.empty_like(x)
    copy_ms = median_ms(lambda: cupy.copyto(b, a), 20)
    gemm_ms = median_ms(lambda: cupy.matmul(x, x, out=y), 10)
    return {"copy_gbps": 2 * a.nbytes / copy_ms / 1e6, "gemm_fp32_gflops": 2 * gemm_n**3 / gemm_ms / 1e6,
            "how": f"cupy.copyto of {copy_mib} MiB (read + write); cupy.matmul float32 {gemm_n}^3 (cuBLAS, "
                   "strict FP32 unless CUPY_TF32=1); median of events"}


def gpu_meta() -> dict:
    """GPU name, driver, CUDA runtime and CuPy version for meta.json."""
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def version(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    return {"gpu": name, "gpu_sms": props["multiProcessorCount"], "gpu_l2_mib": props["l2CacheSize"] / 2**20,
            "gpu_mem_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "cuda_driver": version(cupy.cuda.runtime.driverGetVersion()),
            "cuda_runtime": version(cupy.cuda.runtime.runtimeGetVersion()), "cupy": cupy.__version__}


# FP32 lanes (CUDA cores) per SM, and dense TF32 tensor-core FLOP per SM per clock, by compute capability.
FP32_LANES = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128,
              (10, 0): 128, (10, 3): 128, (12, 0): 128, (12, 1): 128}
TF32_FLOP_PER_CLOCK = {(8, 0): 1024, (9, 0): 2048}


def hardware_ceilings(sms: int, cc: tuple[int, int], sm_khz: int, mem_khz: int, bus_bits: int) -> dict:
    """FP32 FMA peak, TF32 tensor-core peak (where known) and HBM bandwidth from the device's attributes."""
    lanes = FP32_LANES.get(cc, 128)
    out = {"fp32_fma_gflops": sms * lanes * 2 * sm_khz / 1e6, "hbm_gbps": mem_khz * 2 * bus_bits / 8 / 1e6,
           "sm_clock_max_mhz": sm_khz / 1e3}
    parts = [f"FP32 FMA: {sms} SMs x {lanes} lanes{'' if cc in FP32_LANES else ' (assumed)'} x 2 x "
             f"{sm_khz / 1e6:.2f} GHz"]
    if cc in TF32_FLOP_PER_CLOCK:
        out["tf32_tensor_gflops"] = sms * TF32_FLOP_PER_CLOCK[cc] * sm_khz / 1e6
        parts.append(f"TF32: {sms} SMs x {TF32_FLOP_PER_CLOCK[cc]} FLOP/clock x {sm_khz / 1e6:.2f} GHz")
    parts.append(f"HBM: {mem_khz / 1e3:.0f} MHz x 2 x {bus_bits} bits")
    out["hardware_how"] = "; ".join(parts)
    return out


def gpu_hardware() -> dict:
    """hardware_ceilings of the current CUDA device, read from its attributes."""
    import cupy

    rt, dev = cupy.cuda.runtime, cupy.cuda.Device()
    codes = {"cudaDevAttrMultiProcessorCount": 16, "cudaDevAttrClockRate": 13, "cudaDevAttrMemoryClockRate": 36,
             "cudaDevAttrGlobalMemoryBusWidth": 37}  # CUDA's enum values, where CuPy does not name them

    def attr(name: str) -> int:
        return int(rt.deviceGetAttribute(getattr(rt, name, codes[name]), dev.id))

    cc = divmod(int(dev.compute_capability), 10)
    return hardware_ceilings(attr("cudaDevAttrMultiProcessorCount"), cc, attr("cudaDevAttrClockRate"),
                             attr("cudaDevAttrMemoryClockRate"), attr("cudaDevAttrGlobalMemoryBusWidth"))
