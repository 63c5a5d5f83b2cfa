"""From-scratch GPU implementations of gemm (the dense layer), fwd and bwd: cupy_naive and cupy_opt.

- cupy_naive (gemm_naive.cu): one thread per output element; the backward products reuse the kernel through
  strides (dX reads Wᵀ, dW reads Xᵀ), db is a one-thread-per-column sum.
- cupy_opt (gemm_tiled.cu): 128×128×8 shared-memory tiles, 8×8 outputs per thread, float4 loads where alignment
  allows, double-buffered shared memory, bias and ReLU fused in the epilogue; dX and dW are the same kernel with
  transpose flags, db a two-stage deterministic column sum.
"""

from __future__ import annotations

import numpy as np

from harness.ops.gemm import GemmShape
from harness.registry import register
from impls.cuda import common as _cuda

NAIVE, TILED = "gemm_naive.cu", "gemm_tiled.cu"
TILE = 128  # gemm_tiled.cu's BM = BN


def _i32(v: int) -> np.int32:
    return np.int32(v)


def _i64(v: int) -> np.int64:
    return np.int64(v)


def _aligned(a, *extents: int) -> bool:
    """True when `a` starts on a 16-byte boundary and every extent (leading dimension, contiguous length) is a
    multiple of 4 floats, so the kernel may use float4 accesses."""
    return a.data.ptr % 16 == 0 and all(e % 4 == 0 for e in extents)


# ---------------------------------------------------------------- cupy_naive
def _naive_gemm(a, b, c, bias, m: int, n: int, k: int, sam: int, sak: int, sbk: int, sbn: int, relu: bool):
    """C (m×n, row-major) = A·B (+ bias, ReLU) with A(i, l) = a[i·sam + l·sak], B(l, j) = b[l·sbk + j·sbn]."""
    grid = (_cuda.blocks(n, 32), min(_cuda.blocks(m, 8), 65535))
    _cuda.kernel(NAIVE, "gemm_naive")(grid, (32, 8), (a, b, c, _cuda.NULL if bias is None else bias, _i32(m), _i32(n),
                                                      _i32(k), _i64(sam), _i64(sak), _i64(sbk), _i64(sbn), _i64(n),
                                                      _i32(relu)))


def _naive_details(funcs):
    return lambda s: _cuda.attributes(NAIVE, funcs)


@register("gemm", "fwd", name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=2,
          details=_naive_details(["gemm_naive"]))
def gemm_fwd_naive(s: GemmShape, x, w, b=None, *, y):
    """Y = X·W (+ b, ReLU), one thread per output element."""
    _naive_gemm(x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, 1, s.N, 1, s.relu)


@register("gemm", "bwd", name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=2,
          details=_naive_details(["gemm_naive", "colsum_naive"]))
def gemm_bwd_naive(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ and dW = Xᵀ·dY with the naive kernel through strides; db one thread per column."""
    _naive_gemm(dy, w, dx, None, s.M, s.K, s.N, s.N, 1, 1, s.N, False)  # Wᵀ(l, j) = w[j·N + l]
    _naive_gemm(x, dy, dw, None, s.K, s.N, s.M, 1, s.K, s.N, 1, False)  # Xᵀ(i, l) = x[l·K + i]
    _cuda.kernel(NAIVE, "colsum_naive")((_cuda.blocks(s.N, 256),), (256,), (dy, db, _i32(s.M), _i32(s.N)))


# ---------------------------------------------------------------- cupy_opt
def _tiled_gemm(func: str, a, b, c, bias, m: int, n: int, k: int, lda: int, ldb: int, relu: bool,
                vec_a: bool, vec_b: bool):
    """Launch sgemm_tiled_{nn,nt,tn}: C (m×n, ldc = n) = A·B, one 256-thread block per 128×128 tile."""
    tiles = _cuda.blocks(m, TILE) * _cuda.blocks(n, TILE)
    bias = _cuda.NULL if bias is None else bias
    _cuda.kernel(TILED, func)((tiles,), (256,), (a, b, c, bias, _i32(m), _i32(n), _i32(k),
                                                 _i64(lda), _i64(ldb), _i64(n), _i32(relu), _i32(vec_a),
                                                 _i32(vec_b), _i32(_aligned(c, n))))


def column_sums(y, out, m: int, n: int) -> None:
    """out[j] = Σ_i y[i, j] with colsum_tiled: one launch for short columns, else slices then their sums."""
    import cupy

    kern = _cuda.kernel(TILED, "colsum_tiled")
    cols = _cuda.blocks(n, 32)
    slices = min(128, _cuda.blocks(m, 256))
    if slices == 1:
        kern((cols, 1), (32, 8), (y, out, _i32(m), _i32(n), _i32(m)))
        return
    rows_per = _cuda.blocks(m, slices)
    slices = _cuda.blocks(m, rows_per)
    part = cupy.empty((slices, n), dtype=cupy.float32)
    kern((cols, slices), (32, 8), (y, part, _i32(m), _i32(n), _i32(rows_per)))
    kern((cols, 1), (32, 8), (part, out, _i32(slices), _i32(n), _i32(slices)))


def _tiled_details(funcs):
    return lambda s: _cuda.attributes(TILED, funcs)


@register("gemm", "fwd", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1,
          details=_tiled_details(["sgemm_tiled_nn"]))
def gemm_fwd_tiled(s: GemmShape, x, w, b=None, *, y):
    """Y = X·W (+ b, ReLU fused): 128×128×8 tiles, 8×8 per thread, double-buffered shared memory."""
    _tiled_gemm("sgemm_tiled_nn", x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, s.N, s.relu,
                _aligned(x, s.K), _aligned(w, s.N))


@register("gemm", "bwd", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1,
          details=_tiled_details(["sgemm_tiled_nt", "sgemm_tiled_tn", "colsum_tiled"]))
def gemm_bwd_tiled(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ and dW = Xᵀ·dY with the tiled kernel's transpose flags; db = column sums of dY."""
    _tiled_gemm("sgemm_tiled_nt", dy, w, dx, None, s.M, s.K, s.N, s.N, s.N, False,
                _aligned(dy, s.N), _aligned(w, s.N))
    _tiled_gemm("sgemm_tiled_tn", x, dy, dw, None, s.K, s.N, s.M, s.K, s.N, False,
                _aligned(x, s.K), _aligned(dy, s.N))
    column_sums(dy, db, s.M, s.N)
