"""GPU implementations of conv2d, fprop, dgrad and wgrad (+ db): cupy_naive, cupy_opt and cupy_im2col_cublas.

- cupy_naive (conv2d_naive.cu): direct convolution, one thread per output element.
- cupy_opt (conv2d_implicit_gemm.cu): implicit GEMM for all three passes, no im2col buffer: fprop
  (N·P·Q)×K×(C·R·S), dgrad (N·H·W)×C×(K·R·S), wgrad K×(C·R·S)×(N·P·Q). `_plan` picks the tile configuration from
  the GEMM's column count and splits the reduction (split-K, deterministic) when the tiles alone cannot fill
  the GPU; the host precomputes the reduction index table that spares the kernel its integer divisions.
- cupy_im2col_cublas (im2col.cu + cupy.matmul, strict FP32): fprop = batched W·col_n, dgrad = Wᵀ·dy_n then col2im,
  wgrad = one GEMM dy_(K × N·P·Q) · colᵀ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.ops.conv2d import Conv2dShape
from harness.registry import register
from impls.cuda import common as _cuda
from impls.nvidia.cublas import cublas_math

NAIVE, IGEMM, IM2COL = "conv2d_naive.cu", "conv2d_implicit_gemm.cu", "im2col.cu"
BK = 8  # conv2d_implicit_gemm.cu's reduction slice
KCH = 32  # conv_dgrad_narrow's output channels per shared-memory stage
NARROW_C = 4  # dgrad with at most this many input channels runs conv_dgrad_narrow
INT_LIMIT = 2**31 - 2**16  # GEMM rows, columns and per-image offsets must stay inside int32 (with a tile's margin)


def _args(s: Conv2dShape) -> tuple:
    """The kernels' common int arguments: N, C, H, W, K, R, S, P, Q, stride, pad."""
    return tuple(np.int32(v) for v in (s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.stride, s.pad))


def _launch_1d(file: str, func: str, total: int, args: tuple) -> None:
    """One thread per element (the kernels also grid-stride, so any total fits)."""
    _cuda.kernel(file, func)((min(_cuda.blocks(total, 256), 2**31 - 1),), (256,), args)


# ---------------------------------------------------------------- cupy_naive
def _naive_details(funcs):
    return lambda s: _cuda.attributes(NAIVE, funcs)


def _reg_naive(pass_: str, funcs: list[str]):
    return register("conv2d", pass_, name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=2,
                    details=_naive_details(funcs))


@_reg_naive("fprop", ["conv_fprop_naive"])
def conv2d_fprop_naive(s: Conv2dShape, x, w, b, *, y):
    """y = b + Σ x·w, one thread per output element."""
    _launch_1d(NAIVE, "conv_fprop_naive", y.size, (x, w, b, y, *_args(s)))


@_reg_naive("dgrad", ["conv_dgrad_naive"])
def conv2d_dgrad_naive(s: Conv2dShape, dy, w, *, dx):
    """dx gathered from the dy entries it fed, one thread per input element."""
    _launch_1d(NAIVE, "conv_dgrad_naive", dx.size, (dy, w, dx, *_args(s)))


@_reg_naive("wgrad", ["conv_wgrad_naive", "conv_db_naive"])
def conv2d_wgrad_naive(s: Conv2dShape, x, dy, *, dw, db):
    """dw = Σ_{n,p,q} dy·x, one thread per weight; db one thread per output channel."""
    _launch_1d(NAIVE, "conv_wgrad_naive", dw.size, (x, dy, dw, *_args(s)))
    _launch_1d(NAIVE, "conv_db_naive", s.K, (dy, db, np.int32(s.N), np.int32(s.K), np.int32(s.P * s.Q)))


# ---------------------------------------------------------------- cupy_opt: implicit GEMM
@dataclass(frozen=True)
class Launch:
    """One implicit-GEMM launch: kernel, tile, grid and split-K."""

    func: str
    bm: int
    bn: int
    tiles: int
    splits: int
    kt_per: int  # reduction slices (of BK) per split
    phases: int  # dgrad: stride² phases (grid.z)


@functools.cache
def _sm_count() -> int:
    import cupy

    return cupy.cuda.Device().attributes["MultiProcessorCount"]


def _launch_config(s: Conv2dShape, pass_: str) -> Launch:
    """Tile configuration and split-K for one pass.

    The GEMM's column count picks the tile (dgrad with C ≤ 4: the narrow kernel; ≤ 16 columns: 256×16, ≤ 64:
    128×64, else 128×128; wgrad with ≤ 64 rows: 64×128) so that little of a tile is padding; dgrad runs one GEMM
    per stride phase (grid.z), planned for the largest. When the tiles fill the GPU badly, the reduction is cut
    into splits: the count with the least modelled time (whole waves of blocks, two per SM, plus the traffic of
    the partial sums), each split at least 8 slices (64 reduction terms) long.
    """
    phases = 1
    if pass_ == "wgrad":
        rows, cols, red = s.K, s.C * s.R * s.S, s.N * s.P * s.Q
        name, (bm, bn) = ("64x128", (64, 128)) if s.K <= 64 else ("128x128", (128, 128))
    else:
        if pass_ == "fprop":
            rows, cols, red = s.N * s.P * s.Q, s.K, s.C * s.R * s.S
        else:  # the largest stride phase (see _dgrad_tables): every phase gets the grid of the largest
            geo = _dgrad_phases(s)
            phases = len(geo)
            rows, cols, red = max(g[5] for g in geo), s.C, max(g[4] for g in geo)
            if s.C <= NARROW_C and _narrow_smem(s) <= 48 * 1024:
                return Launch("conv_dgrad_narrow", 256, NARROW_C, _cuda.blocks(rows, 256), 1, 0, phases)
        name, (bm, bn) = (("256x16", (256, 16)) if cols <= 16 else ("128x64", (128, 64)) if cols <= 64
                          else ("128x128", (128, 128)))
    func = f"conv_{pass_}_{name}"
    tiles = _cuda.blocks(rows, bm) * _cuda.blocks(cols, bn)
    ktiles = _cuda.blocks(red, BK)
    slots = 2 * _sm_count()  # two 256-thread blocks of ≤ 128 registers fit on an SM

    def seconds(splits: int) -> float:
        """Modelled time: full waves of blocks at ~35 TFLOP/s per GPU, plus the partial sums' traffic."""
        kt = _cuda.blocks(ktiles, splits)
        gemm = -(-tiles * phases * splits // slots) * 2 * bm * bn * BK * kt / (35e12 / slots)
        return gemm + (0.0 if splits == 1 else (splits + 1) * rows * phases * cols * 4 / 2.5e12 + 5e-6)

    splits = min(range(1, max(1, min(ktiles // 8, 512)) + 1), key=seconds)
    kt_per = _cuda.blocks(ktiles, splits)
    return Launch(func, bm, bn, tiles, _cuda.blocks(ktiles, kt_per), kt_per, phases)


@functools.cache
def _table(s: Conv2dShape):
    """fprop's and wgrad's (c, r, s) table, entry {c·H·W + r·W + s, r, s, 0}, int4 per entry, on the GPU."""
    import cupy

    c, r, q = np.meshgrid(np.arange(s.C), np.arange(s.R), np.arange(s.S), indexing="ij")
    cols = (c * s.H * s.W + r * s.W + q, r, q, np.zeros_like(c))
    return cupy.asarray(np.stack([a.ravel() for a in cols], axis=1).astype(np.int32))


def _narrow_smem(s: Conv2dShape) -> int:
    """conv_dgrad_narrow's dynamic shared memory: KCH channels × the largest phase's taps × one float4."""
    return KCH * len(range(0, s.R, s.stride)) * len(range(0, s.S, s.stride)) * 16


@functools.cache
def _dgrad_phases(s: Conv2dShape) -> tuple[tuple[int, ...], ...]:
    """Per stride phase (a, b) (row-major): (hq0, Hph, wq0, Wph, reduction K·taps, rows N·Hph·Wph).

    Phase (a, b) holds the pixels h = u·hq + a − pad, w = u·wq + b − pad inside the image, reached only by the taps
    r = a + u·i, s = b + u·j (see Dgrad in conv2d_implicit_gemm.cu).
    """
    u, out = s.stride, []
    for a in range(u):
        for b in range(u):
            hq0, wq0 = -((a - s.pad) // u), -((b - s.pad) // u)  # ceil((pad − a) / u)
            hph = max(0, (s.H - 1 + s.pad - a) // u - hq0 + 1)
            wph = max(0, (s.W - 1 + s.pad - b) // u - wq0 + 1)
            taps = len(range(a, s.R, u)) * len(range(b, s.S, u))
            out.append((hq0, hph, wq0, wph, s.K * taps, s.N * hph * wph))
    return tuple(out)


@functools.cache
def _dgrad_tables(s: Conv2dShape):
    """dgrad's tables on the GPU: every phase's (k, i, j) entries {k·P·Q, i, j, k·C·R·S + r·S + s} back to back,
    and per phase two int4: {hq0, Hph, wq0, Wph}, {table offset, reduction length, rows, row taps}."""
    import cupy

    u, entries, info, offset = s.stride, [], [], 0
    for z, (hq0, hph, wq0, wph, red, rows) in enumerate(_dgrad_phases(s)):
        a, b = divmod(z, u)
        k, i, j = np.meshgrid(np.arange(s.K), np.arange(len(range(a, s.R, u))), np.arange(len(range(b, s.S, u))),
                              indexing="ij")
        r, q = a + u * i, b + u * j
        cols = (k * s.P * s.Q, i, j, k * s.C * s.R * s.S + r * s.S + q)
        entries.append(np.stack([col.ravel() for col in cols], axis=1))
        info.append((hq0, hph, wq0, wph, offset, red, rows, len(range(a, s.R, u))))
        offset += red
    tab = np.concatenate(entries).astype(np.int32)  # phase (0, 0) always has the tap (0, 0): never empty
    return cupy.asarray(tab), cupy.asarray(np.array(info, dtype=np.int32))


def _tiled_supports(s: Conv2dShape) -> str | None:
    """The implicit-GEMM kernels index GEMM rows/columns and per-image offsets in int32 (tensors in int64)."""
    sizes = {"N·P·Q": s.N * s.P * s.Q, "N·H·W": s.N * s.H * s.W, "C·H·W": s.C * s.H * s.W,
             "K·P·Q": s.K * s.P * s.Q, "K·C·R·S": s.K * s.C * s.R * s.S}
    big = [k for k, v in sizes.items() if v >= INT_LIMIT]
    return f"{', '.join(big)} ≥ 2^31: past the implicit-GEMM kernels' int32 GEMM indices" if big else None


def _run_tiled(s: Conv2dShape, pass_: str, operands: tuple, out, bias=None) -> None:
    """Launch the configured kernel; with split-K, into a workspace that splitk_reduce sums (+ bias) into out."""
    import cupy

    launch = _launch_config(s, pass_)
    total = out.size
    if launch.func == "conv_dgrad_narrow":
        _cuda.kernel(IGEMM, launch.func)((launch.tiles, 1, launch.phases), (256,), (*operands, out, _dgrad_tables(s)[1],
                                                                             *_args(s)), shared_mem=_narrow_smem(s))
        return
    target = out if launch.splits == 1 else cupy.empty(launch.splits * total, dtype=cupy.float32)
    if pass_ == "fprop":
        lead, tables = (*operands, bias if bias is not None and launch.splits == 1 else _cuda.NULL), (_table(s),)
    else:
        lead, tables = operands, (_dgrad_tables(s) if pass_ == "dgrad" else (_table(s),))
    args = (*lead, target, *tables, *_args(s), np.int32(launch.kt_per), np.int64(total))
    _cuda.kernel(IGEMM, launch.func)((launch.tiles, launch.splits, launch.phases), (256,), args)
    if launch.splits > 1:
        plane, nbias = (s.P * s.Q, s.K) if bias is not None else (1, 1)
        blocks = min(_cuda.blocks(total, 256), 8 * _sm_count())
        _cuda.kernel(IGEMM, "splitk_reduce")((blocks,), (256,), (target, out, np.int64(total), np.int32(launch.splits),
                                                                 _cuda.NULL if bias is None else bias, np.int64(plane),
                                                                 np.int32(nbias)))


def _tiled_details(pass_: str, extra: tuple[str, ...] = ()):
    def details(s: Conv2dShape) -> dict:
        launch = _launch_config(s, pass_)
        funcs = [launch.func, *extra, *(["splitk_reduce"] if launch.splits > 1 else [])]
        split = f", split-K {launch.splits}" if launch.splits > 1 else ""
        note = f"tile {launch.bm}x{launch.bn}, {launch.tiles} tiles{split}"
        return {**_cuda.attributes(IGEMM, funcs), "note": note}
    return details


def _reg_tiled(pass_: str, extra: tuple[str, ...] = ()):
    return register("conv2d", pass_, name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=1,
                    supports=_tiled_supports, details=_tiled_details(pass_, extra))


@_reg_tiled("fprop")
def conv2d_fprop_tiled(s: Conv2dShape, x, w, b, *, y):
    """Implicit GEMM (N·P·Q)×K×(C·R·S), bias fused (or added by the split-K reduction)."""
    _run_tiled(s, "fprop", (x, w), y, b)


@_reg_tiled("dgrad")
def conv2d_dgrad_tiled(s: Conv2dShape, dy, w, *, dx):
    """Implicit GEMM (N·H·W)×C×(K·R·S), gathering dy through the stride and padding."""
    _run_tiled(s, "dgrad", (dy, w), dx)


@_reg_tiled("wgrad", ("conv_bias_grad",))
def conv2d_wgrad_tiled(s: Conv2dShape, x, dy, *, dw, db):
    """Implicit GEMM K×(C·R·S)×(N·P·Q) (split-K), db by a one-block-per-channel shuffle reduction."""
    _run_tiled(s, "wgrad", (x, dy), dw)
    _cuda.kernel(IGEMM, "conv_bias_grad")((s.K,), (256,), (dy, db, np.int32(s.N), np.int32(s.K),
                                                           np.int32(s.P * s.Q)))


# ---------------------------------------------------------------- cupy_im2col_cublas
def _im2col(s: Conv2dShape, x, col, ld_n: int, ld_crs: int) -> None:
    total = s.N * s.C * s.R * s.S * s.P * s.Q
    _launch_1d(IM2COL, "im2col", total, (x, col, *_args(s)[:4], *_args(s)[5:], np.int64(ld_n), np.int64(ld_crs)))


def _reg_im2col(pass_: str, funcs: list[str]):
    return register("conv2d", pass_, name="cupy_im2col_cublas", device="gpu", math="fp32", family="own",
                    available=_cuda.available, details=lambda s: _cuda.attributes(IM2COL, funcs))


@_reg_im2col("fprop", ["im2col"])
def conv2d_fprop_im2col(s: Conv2dShape, x, w, b, *, y):
    """col_n = im2col(x_n) (C·R·S × P·Q), y_n = W·col_n for every n (batched cuBLAS, strict FP32), += b."""
    import cupy

    crs, pq = s.C * s.R * s.S, s.P * s.Q
    col = cupy.empty((s.N, crs, pq), dtype=cupy.float32)
    _im2col(s, x, col, crs * pq, pq)
    with cublas_math("fp32"):
        cupy.matmul(w.reshape(s.K, crs), col, out=y.reshape(s.N, s.K, pq))
    y += b.reshape(1, s.K, 1, 1)


@_reg_im2col("dgrad", ["col2im"])
def conv2d_dgrad_im2col(s: Conv2dShape, dy, w, *, dx):
    """col_n = Wᵀ·dy_n (batched cuBLAS, strict FP32), then dx = col2im(col)."""
    import cupy

    crs, pq = s.C * s.R * s.S, s.P * s.Q
    with cublas_math("fp32"):
        col = cupy.matmul(w.reshape(s.K, crs).T, dy.reshape(s.N, s.K, pq))
    args = _args(s)
    _launch_1d(IM2COL, "col2im", dx.size, (col, dx, *args[:4], *args[5:]))


@_reg_im2col("wgrad", ["im2col"])
def conv2d_wgrad_im2col(s: Conv2dShape, x, dy, *, dw, db):
    """col = im2col(x) as (C·R·S) × (N·P·Q); dw = dy_(K × N·P·Q) · colᵀ (one cuBLAS GEMM); db = row sums of dy."""
    import cupy

    crs, pq = s.C * s.R * s.S, s.P * s.Q
    col = cupy.empty((crs, s.N, pq), dtype=cupy.float32)
    _im2col(s, x, col, pq, s.N * pq)
    dyk = cupy.ascontiguousarray(dy.reshape(s.N, s.K, pq).transpose(1, 0, 2)).reshape(s.K, s.N * pq)
    with cublas_math("fp32"):
        cupy.matmul(dyk, col.reshape(crs, s.N * pq).T, out=dw.reshape(s.K, crs))
    cupy.sum(dyk, axis=1, out=db)
