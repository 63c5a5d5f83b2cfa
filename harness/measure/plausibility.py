"""Flags for figures that cannot be true, or that need a second look, written into a row's `flags` column.

Every timed row is held against the ceilings of its device (measure.ceilings): the physical ones by arithmetic from
the hardware (FP32 FMA peak, TF32 tensor-core peak, HBM bandwidth) and the measured ones (copy bandwidth, vendor
FP32 GEMM). FLOP rates count the op's direct FLOPs (the spec's count): an algorithm that does fewer (Winograd,
FFT) can pass the FMA peak honestly, and its flag says so instead of hiding the row. Bandwidth counts the minimal
bytes (inputs read once, outputs written once); with a warm L2 they may be served from the cache, and the flag
says that. A speedup of more than SUSPECT_SPEEDUP over the op's vendor baseline is flagged too: it is possible
only with a different algorithm, a different precision, or a measurement that was fooled.
"""

from __future__ import annotations

import math
import re

SUSPECT_SPEEDUP = 10.0
BANDWIDTH_SLACK = 1.05  # measured copy bandwidth is a measurement: 5 % over it is noise, not a flag


def flags(row: dict, ceilings: dict, warm: bool) -> list[str]:
    """Why the figures of a timed `row` (gflops, gbps, math, device, speedup, baseline, note) are implausible."""
    out: list[str] = []
    gflops, gbps = _f(row.get("gflops"), 0.0), _f(row.get("gbps"), 0.0)
    # the note says the algorithm ("winograd-f2x2-3x3", "wino_conv_f2_outer"); "no Winograd numerical note" does not
    winograd = re.search(r"(?<!no )wino", str(row.get("note", "")).lower()) is not None
    if row.get("device") == "gpu":
        fma, tf32 = _f(ceilings.get("fp32_fma_gflops")), _f(ceilings.get("tf32_tensor_gflops"))
        if row.get("math") == "fp32" and gflops > fma:
            why = ("Winograd: fewer FLOPs than the direct count" if winograd else
                   "possible only with fewer FLOPs than the direct count (Winograd, FFT) or another math mode")
            out.append(f"above the FP32 FMA peak ({fma / 1e3:,.1f} TFLOP/s by arithmetic): {why}")
        if row.get("math") == "tf32" and gflops > tf32:
            out.append(f"above the TF32 tensor-core peak ({tf32 / 1e3:,.0f} TFLOP/s by arithmetic)")
        hbm, copy = _f(ceilings.get("hbm_gbps")), _f(ceilings.get("copy_gbps"))
        if warm and gbps > hbm:
            out.append(f"above the HBM bandwidth ({hbm:,.0f} GB/s): served from the warm L2")
        elif not warm and gbps > hbm:
            out.append(f"faster than the HBM bandwidth ({hbm:,.0f} GB/s by arithmetic) with a flushed L2")
        elif not warm and gbps > copy * BANDWIDTH_SLACK:
            out.append(f"faster than copy bandwidth ({copy:,.0f} GB/s measured) with a flushed L2")
    elif row.get("device") == "cpu":
        blas = _f(ceilings.get("gemm_fp32_gflops"))
        if row.get("math") == "fp32" and gflops > 1.5 * blas:
            out.append(f"above 1.5x the measured BLAS FP32 GEMM rate ({blas:,.0f} GFLOP/s)")
    speedup = _f(row.get("speedup"), 0.0)
    if speedup > SUSPECT_SPEEDUP and row.get("impl") != row.get("baseline"):
        out.append(f"{speedup:,.1f}x faster than {row.get('baseline')}")
    return out


def _f(v, default: float = math.inf) -> float:
    """v as a float; `default` when it is missing or not a number (so a missing ceiling flags nothing)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if not math.isnan(f) else default
