"""cupy_naive and cupy_opt for softmax_xent (fwd, bwd) and sigmoid_bce (fwd, bwd): kernels in losses.cu, and
eltwise.cu for the BCE gradient (an elementwise map).

Mean losses use a deterministic two-stage reduction: the first kernel writes one partial sum per block (naive:
one value per row or element), then `reduce_mean`, one block, sums them in a fixed order and scales by 1/N. No
atomics: the same inputs give the same bits on every run. See the header of losses.cu for each kernel.
"""

from __future__ import annotations

import numpy as np

from harness.registry import register
from impls.cuda import common as _cuda
from impls.cuda.bandwidth import (
    FALLBACK,
    IMPL_NAMES,
    THREADS,
    launch_map,
    launch_naive,
    persistent_blocks,
    require_contiguous,
    vector_split,
)

FILE = "losses.cu"
ELTWISE = "eltwise.cu"
REDUCE_THREADS = 1024
XENT_CACHED_K = 8 * 32 * 4  # xent_bwd_vec_c8 keeps rows of up to 8 float4 per lane in registers


def _reg(op: str, pass_: str, variant: str, funcs: list[tuple[str, str]]):
    """Register a GPU fp32 implementation IMPL_NAMES[variant]; `funcs` are its (file, kernel) pairs."""

    def details(s) -> dict:
        kernels: dict = {}
        for file, func in funcs:
            kernels.update(_cuda.attributes(file, [func])["kernels"])
        return {"kernels": kernels}

    return register(op, pass_, name=IMPL_NAMES[variant], device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=FALLBACK[variant],
                    details=details)


def _mean(values, count: int, n: int, loss) -> None:
    """loss[()] = (Σ values[:count]) / n, one block (the second stage of every mean)."""
    _cuda.kernel(FILE, "reduce_mean")((1,), (REDUCE_THREADS,),
                                      (values, np.int64(count), np.float32(1.0 / n), loss))


def _xent_rows_kernel(kind: str, K: int) -> str:
    """losses.cu's warp-per-row kernel of `kind` (bwd, or fused: gradient and loss): xent_<kind>_vec_c8 for rows
    it keeps in registers (K ≤ XENT_CACHED_K), else _c0 (the row re-read)."""
    return f"xent_{kind}_vec_{'c8' if K <= XENT_CACHED_K else 'c0'}"


# ---------------------------------------------------------------- softmax_xent
@_reg("softmax_xent", "fwd", "naive", [(FILE, "xent_fwd_naive"), (FILE, "reduce_mean")])
def xent_fwd_naive(s, logits, labels, *, loss):
    """One thread per row (max, Σ exp, label term) into a buffer of N row losses, then a one-block mean."""
    import cupy

    require_contiguous(logits, labels)
    row_loss = cupy.empty(s.N, dtype=cupy.float32)
    _cuda.kernel(FILE, "xent_fwd_naive")((_cuda.blocks(s.N, THREADS),), (THREADS,),
                                         (logits, labels, np.int64(s.N), np.int32(s.K), row_loss))
    _mean(row_loss, s.N, s.N, loss)


@_reg("softmax_xent", "bwd", "naive", [(FILE, "xent_bwd_naive")])
def xent_bwd_naive(s, logits, labels, *, dlogits):
    """One thread per row: max, Σ exp, then the K gradients (softmax − onehot) / N."""
    require_contiguous(logits, labels, dlogits)
    _cuda.kernel(FILE, "xent_bwd_naive")((_cuda.blocks(s.N, THREADS),), (THREADS,),
                                         (logits, labels, np.int64(s.N), np.int32(s.K), np.float32(1.0 / s.N),
                                          dlogits))


@_reg("softmax_xent", "fwd", "vec", [(FILE, "xent_fwd_vec"), (FILE, "reduce_mean")])
def xent_fwd_vec(s, logits, labels, *, loss):
    """One warp per row, online max/sum in one float4 pass, per-block partial sums, then a one-block mean."""
    import cupy

    require_contiguous(logits, labels)
    grid = persistent_blocks(FILE, "xent_fwd_vec", 32 * s.N)
    partials = cupy.empty(grid, dtype=cupy.float32)
    _cuda.kernel(FILE, "xent_fwd_vec")((grid,), (THREADS,),
                                         (logits, labels, np.int64(s.N), np.int32(s.K), partials))
    _mean(partials, grid, s.N, loss)


def _xent_rows_launch(s, logits, labels, dlogits, loss=None) -> None:
    """The warp-per-row gradient kernel on a persistent grid (float4 where logits and dlogits share an alignment);
    with `loss`, the fused kernel, whose blocks also write partial loss sums that the last block to finish averages
    into loss."""
    import cupy

    require_contiguous(logits, labels, dlogits)
    func = _xent_rows_kernel("bwd" if loss is None else "fused", s.K)
    vec = np.int32(logits.data.ptr % 16 == dlogits.data.ptr % 16)
    grid = persistent_blocks(FILE, func, 32 * s.N)
    args = (logits, labels, np.int64(s.N), np.int32(s.K), np.float32(1.0 / s.N), vec, dlogits)
    if loss is not None:
        args += (cupy.empty(grid, dtype=cupy.float32), _cuda.tickets(1), loss)
    _cuda.kernel(FILE, func)((grid,), (THREADS,), args)


@register("softmax_xent", "bwd", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1,
          details=lambda s: _cuda.attributes(FILE, [_xent_rows_kernel("bwd", s.K)]))
def xent_bwd_vec(s, logits, labels, *, dlogits):
    """One warp per row: the row in registers (K ≤ 1024) or re-read, online max/sum, float4 gradient stores."""
    _xent_rows_launch(s, logits, labels, dlogits)


@register("softmax_xent", "fused", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1,
          details=lambda s: _cuda.attributes(FILE, [_xent_rows_kernel("fused", s.K)]))
def xent_fused_vec(s, logits, labels, *, loss, dlogits):
    """One launch: the gradient kernel's warp per row also sums the row losses; the last block to finish takes the
    mean of the blocks' partial sums (losses.cu)."""
    _xent_rows_launch(s, logits, labels, dlogits, loss)


# ---------------------------------------------------------------- sigmoid_bce
@_reg("sigmoid_bce", "fwd", "naive", [(FILE, "bce_fwd_naive"), (FILE, "reduce_mean")])
def bce_fwd_naive(s, logits, targets, *, loss):
    """One thread per element into a buffer of N terms, then a one-block mean."""
    import cupy

    require_contiguous(logits, targets)
    terms = cupy.empty(s.N, dtype=cupy.float32)
    _cuda.kernel(FILE, "bce_fwd_naive")((_cuda.blocks(s.N, THREADS),), (THREADS,),
                                        (logits, targets, np.int64(s.N), terms))
    _mean(terms, s.N, s.N, loss)


@_reg("sigmoid_bce", "fwd", "vec", [(FILE, "bce_fwd_vec"), (FILE, "reduce_mean")])
def bce_fwd_vec(s, logits, targets, *, loss):
    """Grid-stride float4 map-reduce into per-block partial sums, then a one-block mean."""
    import cupy

    require_contiguous(logits, targets)
    head, nvec = vector_split(s.N, logits, targets)
    grid = persistent_blocks(FILE, "bce_fwd_vec", max(nvec, s.N - 4 * nvec))
    partials = cupy.empty(grid, dtype=cupy.float32)
    _cuda.kernel(FILE, "bce_fwd_vec")((grid,), (THREADS,),
                                        (logits, targets, np.int64(s.N), np.int64(head), np.int64(nvec), partials))
    _mean(partials, grid, s.N, loss)


@_reg("sigmoid_bce", "bwd", "naive", [(ELTWISE, "bce_bwd_naive")])
def bce_bwd_naive(s, logits, targets, *, dlogits):
    """(σ(z) − t) / N, one thread per element."""
    launch_naive(ELTWISE, "bce_bwd_naive", s.N, (logits, targets, dlogits), (np.float32(1.0 / s.N),))


@_reg("sigmoid_bce", "bwd", "vec", [(ELTWISE, "bce_bwd_vec")])
def bce_bwd_vec(s, logits, targets, *, dlogits):
    """(σ(z) − t) / N: grid-stride float4 map."""
    launch_map(ELTWISE, "bce_bwd_vec", s.N, (logits, targets, dlogits), (np.float32(1.0 / s.N),))
