"""GPU implementations of conv2d, fprop, dgrad and wgrad (+ db): cupy_naive, cupy_opt and cupy_im2col_cublas.

- cupy_naive (conv2d_naive.cu): direct convolution, one thread per output element.
- cupy_opt (conv2d_implicit_gemm.cu): implicit GEMM for all three passes, no im2col buffer, per group (grid.z):
  fprop (N·P·Q)×K/G×(C/G·R·S), dgrad (N·H·W)×C/G×(K/G·R·S) one GEMM per stride phase, wgrad
  K/G×(C/G·R·S)×(N·P·Q). `_launch_config` picks the tile configuration from the GEMM's column count and splits the
  reduction (split-K, deterministic) when the tiles alone cannot fill the GPU; the host precomputes the reduction
  index tables (dilation and stride phases included) that spare the kernel its integer divisions. Small fprop/dgrad
  layers (≤ 32 GEMM columns, ≤ TAB_MAX table entries: the thesis layers) may take 128×32 tiles with BK = 32 and the
  table in shared memory (conv_*_128x32_s), when a latency model (small_seconds) says so; fprop with one group and
  a reduction C·R·S ≤ DIRECT_CHOSEN_CRS (the C = 3 layers) runs the direct kernel conv_fprop_direct
  (conv2d_direct_small.cu: a pixel × 16 channels per thread, no slice chain); a longer one (≤ DIRECT_CRS_MAX) with
  K ≤ SPLIT_CHOSEN_K (the C = 16 / 32 layers) conv_fprop_direct_split (the reduction split in 8 parts inside the
  block), and the stride-1 dgrad of those layers (C ≤ 32) as the fprop of dy (conv_dgrad_direct_split).
  Where a pass has more than one way (`variants`: wgrad's conv_wgrad_direct on those layers, dw and db in one
  launch, its pixel reduction in one block or over several; wgrad on the v7 kernel with ≥ 64 filters; a strided
  dgrad on the v7 kernel), the layer's first call times them all (the gemm tuner, gemm_tune.choose), keeps the
  fastest and caches it beside the gemm choices.
  Depthwise layers (groups = C = K) run direct kernels instead (conv_dw_fprop/dgrad/wgrad). 1x1 stride-1 unpadded
  layers with one group (`pointwise`: ResNet-50's bottleneck ends, MobileNet's pointwise layers) are one plain
  GEMM per image, Y_n = W·X_n (+ b) and dX_n = Wᵀ·dY_n: fprop and dgrad run them as one batched launch of the v7
  SGEMM kernel (gemm_warptile.cu, grid.z = n, tuned per shape: impls/cuda/gemm.py's batched_gemm). The other
  one-group fprop layers with ≥ 64 output channels and stride-1 dgrad layers with ≥ 64 input channels
  (`warp_igemm`: ResNet-50's 3x3 and 7x7 layers) run the v7 kernel as an implicit GEMM (impls/cuda/gemm.py's
  implicit_gemm): Y = W·im2col(X) + b, dX = Wᵀ·im2col'(dY) (Wᵀ a transposed copy of w), the image columns
  gathered by 4-byte cp.async through a reduction table (`igemm_table`), tuned per layer with split-K; its
  variants: a strided dgrad as one product per stride phase over that phase's taps (writing its own pixels of
  dx), wgrad as dW = dYᵀ·im2col(X)ᵀ (the table over the output pixels, split-K up to 128). Strided
  one-group dgrad layers with C ≤ 4 but C·R·S ≥ 64 (`lowered_dgrad`: ResNet-50's stem) are lowered:
  col_n = Wᵀ·dY_n on the batched v7 kernel (C·R·S × P·Q × K per image), then col2im (im2col.cu) folds col into dx.
- conv2d_bias_relu fprop (cupy_naive, cupy_opt): the same fprop kernels from a second module of their files,
  compiled with -DCONV_RELU=1 (RELU), whose epilogues write max(0, y): every configuration above, split-K's
  reduction and the depthwise kernel included, with the ReLU where y is written.
- cupy_im2col_cublas (im2col.cu + cupy.matmul, strict FP32), batched over images n and groups g (W_g: K/G ×
  C/G·R·S): fprop = W_g·col_n,g, dgrad = W_gᵀ·dy_n,g then col2im, wgrad = dW_gᵀ = col_g · dY_g (one strided-batched
  GEMM over the groups, reduction N·P·Q).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.ops.conv2d import Conv2dShape, phase_taps
from harness.registry import register
from harness.spec import shape_str
from impls.cuda import common as _cuda
from impls.cuda import gemm as _gemm
from impls.cuda import gemm_tune as _tune
from impls.cuda.gemm import batched_details, batched_gemm, igemm_details, implicit_gemm
from impls.nvidia.cublas import cublas_math

NAIVE, IGEMM, IM2COL = "conv2d_naive.cu", "conv2d_implicit_gemm.cu", "im2col.cu"
DIRECT = "conv2d_direct_small.cu"
BIAS = "conv2d_bias_grad.cu"
RELU = ("-DCONV_RELU=1",)  # the NVRTC define of the fprop kernels' ReLU epilogue (conv2d_bias_relu)
BIAS_MIN_ELEMENTS = 4096  # per block of bias_grad_partial
BK = 8  # conv2d_implicit_gemm.cu's reduction slice
SMALL_TILES = {"fprop": (128, 32), "dgrad": (128, 32), "wgrad": (32, 128)}  # the small-layer kernels' BM × BN
SMALL_BK = 32  # their reduction slice
TAB_MAX = 352  # their shared-memory reduction table's entries (TAB_MAX in the .cu)
SLICE_S = 2.2e-6  # a BK = 8 slice on a small layer: table entry, then x / dy, from a cold L2 (thesis rows, H200)
SLICE_STAB_S = 1.1e-6  # a slice of the _s kernels: the x / dy gather only (the table is in shared memory)
SPLITK_S = 4e-6  # the splitk_reduce launch behind the GEMM, reading the partials back
REDUCE_LOAD_S = 0.15e-6  # each further partial one reducing thread adds (L2 latency over the loads it keeps in flight)
WARP_REDUCE_SPLITS = 32  # from this many splits on, splitk_reduce_warp (a warp per output) sums them
SM_FLOPS = 250e9  # FP32 FLOP/s one SM sustains on a tile (about 2/3 of its 2·128 FMA/clock at 1.98 GHz)
KCH = 32  # conv_dgrad_narrow's output channels per shared-memory stage
DW_TP, DW_TQ = 8, 32  # conv_dw_fprop's output tile
NARROW_C = 4  # dgrad with at most this many input channels runs conv_dgrad_narrow
DIRECT_K = 16  # conv_fprop_direct's output channels per thread (DK in conv2d_direct_small.cu)
DIRECT_CRS = 32  # its patch elements per gather round trip (DCRS)
DIRECT_CRS_MAX = 352  # the longest reduction it takes (DTAB: its shared table and filters)
DIRECT_CHOSEN_CRS = 32  # fprop with one group and C·R·S ≤ this runs it (one round trip: the C = 3 thesis layers)
SPLIT_PX, SPLIT_PARTS = 32, 8  # conv_fprop_direct_split: pixels × reduction parts per block (SPX, SPART in the .cu)
SPLIT_CHOSEN_K = 32  # fprop with one group, DIRECT_CHOSEN_CRS < C·R·S ≤ DIRECT_CRS_MAX and K ≤ this runs it
# (dgrad: stride 1, one group, K·R·S ≤ DIRECT_CRS_MAX and C ≤ this runs conv_dgrad_direct_split)
SPLIT_MIN_K = 16  # ... and K ≥ this (both passes: the thesis layers' 16 and 32 filters)
SPLIT_MAX_PIXELS = 2**13  # ... and output pixels (fprop N·P·Q, dgrad N·H·W) ≤ this: the crossover measured on the
# H200 (reports/sample-h200-kernels, NOTES.md): at ≤ 8192 pixels the split kernels won on 8 of 10 thesis rows, above
# it they lost on 4 of 7 (dgrad C = 3 50×50: 110 µs against the narrow kernel's 58)
WGRAD_ENTRIES, WGRAD_PARTS = 16, 16  # conv_wgrad_direct: (c, r, s) entries × pixel parts per block (WE, WPARTS)
WGRAD_PART_PIXELS = 32  # ... pixels per part and chunk (WCH)
WGRAD_MIN_PIXELS = 128  # v2 ("direct_px", the pixels over grid.z): pixels per block at least
POINTWISE_MIN_ROWS = 64  # the smallest warp-tiled tile's rows: a 1x1 layer with fewer GEMM rows keeps the implicit GEMM
# (and so does a layer with fewer output channels for warp_igemm's fprop, fewer input channels for its dgrad)
WARP_IGEMM = "sgemm_wt_igemm"  # _plan's launch for warp_igemm's layers (gemm_warptile.cu's igemm kernels)
LOWERED_DGRAD = "lowered_dgrad"  # _plan's launch for lowered_dgrad's layers (batched btn GEMM + col2im)
POINTWISE = "batched_pointwise"  # _plan's launch for the pointwise layers (one batched v7 GEMM, gemm_warptile.cu)
LOWER_MAX_BYTES = 2**31  # lowered_dgrad's col buffer (N·C·R·S·P·Q floats) stays below this
TAP_LIMIT = 2**14  # warp_igemm's table holds taps as signed 16-bit: planes and dilated filters below this
IGEMM_TAB_ALIGN = 32  # its table is padded to a multiple of the largest K slice (gemm_warptile.cu's tiles)
NEVER = -(2**15)  # the row tap of the padding entries: far outside any plane below TAP_LIMIT
INT_LIMIT = 2**31 - 2**16  # GEMM rows, columns and per-image offsets must stay inside int32 (with a tile's margin)


def _args(s: Conv2dShape) -> tuple:
    """The kernels' common int arguments (CONV_GEOMETRY in the .cu files): N, C, H, W, K, R, S, P, Q,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups (C and K count all groups)."""
    return tuple(np.int32(v) for v in (s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.stride_h, s.stride_w,
                                       s.pad_h, s.pad_w, s.dilation_h, s.dilation_w, s.groups))


def _launch_1d(file: str, func: str, total: int, args: tuple, defines: tuple[str, ...] = ()) -> None:
    """One thread per element (the kernels also grid-stride, so any total fits)."""
    _cuda.kernel(file, func, defines)((min(_cuda.blocks(total, 256), 2**31 - 1),), (256,), args)


# ---------------------------------------------------------------- cupy_naive
def _naive_details(funcs, defines: tuple[str, ...] = ()):
    return lambda s: _cuda.attributes(NAIVE, funcs, defines=defines)


def _reg_naive(pass_: str, funcs: list[str], op: str = "conv2d", defines: tuple[str, ...] = ()):
    return register(op, pass_, name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=2, details=_naive_details(funcs, defines))


@_reg_naive("fprop", ["conv_fprop_naive"])
def conv2d_fprop_naive(s: Conv2dShape, x, w, b, *, y):
    """y = b + Σ x·w, one thread per output element."""
    _launch_1d(NAIVE, "conv_fprop_naive", y.size, (x, w, b, y, *_args(s)))


@_reg_naive("fprop", ["conv_fprop_naive"], "conv2d_bias_relu", RELU)
def conv2d_bias_relu_naive(s: Conv2dShape, x, w, b, *, y):
    """y = max(0, b + Σ x·w), one thread per output element (conv_fprop_naive with its ReLU epilogue)."""
    _launch_1d(NAIVE, "conv_fprop_naive", y.size, (x, w, b, y, *_args(s)), RELU)


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
    kt_per: int  # reduction slices (of bk) per split
    phases: int  # grid.z: the groups (times dgrad's stride_h·stride_w phases)
    bk: int = BK  # the reduction slice


@functools.cache
def _sm_count() -> int:
    import cupy

    return cupy.cuda.Device().attributes["MultiProcessorCount"]


def _launch_config(s: Conv2dShape, pass_: str, small: bool = True) -> Launch:
    """The launch for one pass: _plan on this GPU's SM count (cached: the plan is computed once per shape)."""
    return _plan(s, pass_, small, _sm_count())


@functools.cache
def _plan(s: Conv2dShape, pass_: str, small: bool, sms: int) -> Launch:
    """Tile configuration and split-K for one pass (of one group: grid.z runs the groups, and dgrad's phases).

    The GEMM's column count picks the tile (dgrad with C ≤ 4, one group, no dilation: the narrow kernel; ≤ 16
    columns: 256×16, ≤ 64: 128×64, else 128×128; wgrad with ≤ 64 rows: 64×128) so that little of a tile is
    padding; dgrad runs one GEMM per stride phase, planned for the largest. When the tiles fill the GPU badly, the
    reduction is cut into splits: the count with the least modelled time (whole waves of blocks, two per SM, plus
    the traffic of the partial sums), each split at least 8 slices (64 reduction terms) long.
    Small layers (_small_eligible: fprop/dgrad with ≤ 32 columns, wgrad with ≤ 32 rows, and a short table) also get
    the BK = 32 kernels with the table in shared memory (128×32, wgrad 32×128) at a ladder of split-K counts: the
    latency model small_seconds picks among those and the choice above (their blocks are bound by the chain of
    slices, not by FMAs). fprop with one group and C·R·S ≤ DIRECT_CHOSEN_CRS: conv_fprop_direct (one gather round
    trip per thread, no slices); with a longer reduction (≤ DIRECT_CRS_MAX) and K ≤ SPLIT_CHOSEN_K (the C = 16 / 32
    thesis layers, not ResNet-50's K ≥ 64): conv_fprop_direct_split (the reduction split in 8 parts inside the
    block, ≤ 2 round trips per thread, 32 pixels per block); dgrad with stride 1, K·R·S ≤ DIRECT_CRS_MAX and
    C ≤ SPLIT_CHOSEN_K (all thesis layers): the same kernel on the equivalent fprop of dy (dgrad_as_fprop,
    conv_dgrad_direct_split: flipped filters). small=False: the BK = 8 choice only
    (benchmarks/conv_probe.py and the tests compare). Layers that take the v7 kernel get its launch either way,
    planned by the gemm tuner: the pointwise layers POINTWISE (one batched GEMM), warp_igemm's WARP_IGEMM (the
    implicit GEMM), lowered_dgrad's LOWERED_DGRAD (batched GEMM + col2im).
    """
    if pointwise(s, pass_):
        return Launch(POINTWISE, 0, 0, 0, 1, 0, 1)
    if warp_igemm(s, pass_):  # the tile and split-K are the gemm tuner's, per layer (impls/cuda/gemm.py)
        return Launch(WARP_IGEMM, 0, 0, 0, 1, 0, 1)
    if pass_ == "dgrad" and lowered_dgrad(s):  # the same: batched_gemm's tuner
        return Launch(LOWERED_DGRAD, 0, 0, 0, 1, 0, 1)
    rows, cols, red, zdim = gemm_dims(s, pass_)
    if pass_ == "fprop" and small and s.groups == 1 and red <= DIRECT_CHOSEN_CRS and s.K <= 65535 * DIRECT_K:
        return direct_launch(s)
    if pass_ == "fprop" and small and split_chosen(s):
        return direct_split_launch(s)
    if pass_ == "dgrad" and small and dgrad_split_chosen(s):
        return direct_split_launch(dgrad_as_fprop(s), "conv_dgrad_direct_split")
    if pass_ == "wgrad":
        name, (bm, bn) = ("64x128", (64, 128)) if s.Kg <= 64 else ("128x128", (128, 128))
    else:
        if pass_ == "dgrad" and _narrow(s):  # one group: grid.z = the phases
            narrow = Launch("conv_dgrad_narrow", 256, NARROW_C, _cuda.blocks(rows, 256), 1, 0, zdim)
            if not (small and _small_eligible(pass_, rows, cols, red)):
                return narrow
            candidates = [narrow, *small_launches(pass_, rows, cols, red, zdim)]
            return min(candidates, key=lambda c: small_seconds(c, s, rows, cols, zdim, sms))
        name, (bm, bn) = (("256x16", (256, 16)) if cols <= 16 else ("128x64", (128, 64)) if cols <= 64
                          else ("128x128", (128, 128)))
    func = f"conv_{pass_}_{name}"
    tiles = _cuda.blocks(rows, bm) * _cuda.blocks(cols, bn)
    ktiles = _cuda.blocks(red, BK)
    slots = 2 * sms  # two 256-thread blocks of ≤ 128 registers fit on an SM

    def seconds(splits: int) -> float:
        """Modelled time: full waves of blocks at ~35 TFLOP/s per GPU, plus the partial sums' traffic."""
        kt = _cuda.blocks(ktiles, splits)
        gemm = -(-tiles * zdim * splits // slots) * 2 * bm * bn * BK * kt / (35e12 / slots)
        return gemm + (0.0 if splits == 1 else (splits + 1) * rows * zdim * cols * 4 / 2.5e12 + 5e-6)

    splits = min(range(1, max(1, min(ktiles // 8, 512)) + 1), key=seconds)
    kt_per = _cuda.blocks(ktiles, splits)
    launch = Launch(func, bm, bn, tiles, _cuda.blocks(ktiles, kt_per), kt_per, zdim)
    if small and _small_eligible(pass_, rows, cols, red):
        candidates = [launch, *small_launches(pass_, rows, cols, red, zdim)]
        return min(candidates, key=lambda c: small_seconds(c, s, rows, cols, zdim, sms))
    return launch


def gemm_dims(s: Conv2dShape, pass_: str) -> tuple[int, int, int, int]:
    """(rows, columns, reduction, grid.z) of one pass's GEMM per group: dgrad's for its largest stride phase (see
    _dgrad_tables: every phase gets the grid of the largest); grid.z = the groups (times dgrad's phases)."""
    if pass_ == "wgrad":
        return s.Kg, s.Cg * s.R * s.S, s.N * s.P * s.Q, s.groups
    if pass_ == "fprop":
        return s.N * s.P * s.Q, s.Kg, s.Cg * s.R * s.S, s.groups
    geo = _dgrad_phases(s)
    return max(g[5] for g in geo), s.Cg, max(g[4] for g in geo), len(geo) * s.groups


def _small_eligible(pass_: str, rows: int, cols: int, red: int) -> bool:
    """The layers whose blocks are bound by the latency of their chain of slices (the thesis layers), where the
    small kernel's tile is not mostly padding and its table fits: fprop/dgrad with ≤ 32 GEMM columns and a
    reduction table (per dgrad phase) of ≤ TAB_MAX entries; wgrad with ≤ 32 rows and ≤ TAB_MAX columns."""
    if pass_ == "wgrad":
        return rows <= SMALL_TILES[pass_][0] and cols <= TAB_MAX
    return cols <= SMALL_TILES[pass_][1] and red <= TAB_MAX


SPLIT_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def small_launches(pass_: str, rows: int, cols: int, red: int, zdim: int) -> list[Launch]:
    """The small-layer kernel conv_<pass>_<BM>x<BN>_s at each split-K count of SPLIT_LADDER that leaves every split
    at least 2 slices of 32 (splits as the kernels realise them: ceil(slices / ceil(slices / count)))."""
    bm, bn = SMALL_TILES[pass_]
    tiles = _cuda.blocks(rows, bm) * _cuda.blocks(cols, bn)
    ktiles = _cuda.blocks(red, SMALL_BK)
    out = {}
    for want in SPLIT_LADDER:
        if want > 1 and want * 2 > ktiles:
            break
        kt_per = _cuda.blocks(ktiles, want)
        splits = _cuda.blocks(ktiles, kt_per)
        out[splits] = Launch(f"conv_{pass_}_{bm}x{bn}_s", bm, bn, tiles, splits, kt_per, zdim, SMALL_BK)
    return list(out.values())


def direct_eligible(s: Conv2dShape) -> bool:
    """conv_fprop_direct computes this fprop: one group, C·R·S ≤ DIRECT_CRS_MAX."""
    return s.groups == 1 and s.C * s.R * s.S <= DIRECT_CRS_MAX


def direct_launch(s: Conv2dShape) -> Launch:
    """conv_fprop_direct's grid: tiles = pixel blocks of 256 × chunks of DIRECT_K channels (grid.x × grid.y);
    kt_per = its gather round trips (chunks of DIRECT_CRS reduction terms)."""
    assert direct_eligible(s), s
    pixels = _cuda.blocks(s.N * s.P * s.Q, 256)
    return Launch("conv_fprop_direct", 256, DIRECT_K, pixels * _cuda.blocks(s.K, DIRECT_K), 1,
                  _cuda.blocks(s.C * s.R * s.S, DIRECT_CRS), 1, DIRECT_CRS)


def split_chosen(s: Conv2dShape) -> bool:
    """fprop runs conv_fprop_direct_split: one group, DIRECT_CHOSEN_CRS < C·R·S ≤ DIRECT_CRS_MAX, SPLIT_MIN_K ≤ K ≤
    SPLIT_CHOSEN_K, ≤ SPLIT_MAX_PIXELS output pixels: the thesis's C = 16 / 32 layers, other sets keep their kernels
    (a rule, not the latency model: round 2 measured the direct kernel's single round trip at 7-9 µs on 18-200
    blocks, where the implicit GEMM's 9-36 blocks of 5-9 slices took 15-20 µs)."""
    return (s.groups == 1 and DIRECT_CHOSEN_CRS < s.C * s.R * s.S <= DIRECT_CRS_MAX
            and SPLIT_MIN_K <= s.K <= SPLIT_CHOSEN_K and s.N * s.P * s.Q <= SPLIT_MAX_PIXELS)


def dgrad_as_fprop(s: Conv2dShape) -> Conv2dShape:
    """The fprop that equals a stride-1 dgrad: input dy (N × K × P × Q), K := C output channels, the same filter
    size and dilation, padding dh·(R−1) − ph, dw·(S−1) − pw (filters flipped by conv_dgrad_direct_split); its
    output is H × W."""
    assert s.stride_h == s.stride_w == 1 and s.groups == 1, s
    return Conv2dShape(s.N, s.K, s.P, s.Q, s.C, s.R, s.S, stride_h=1, stride_w=1,
                       pad_h=s.dilation_h * (s.R - 1) - s.pad_h, pad_w=s.dilation_w * (s.S - 1) - s.pad_w,
                       dilation_h=s.dilation_h, dilation_w=s.dilation_w)


def dgrad_split_eligible(s: Conv2dShape) -> bool:
    """conv_dgrad_direct_split computes this dgrad: one group, stride 1, padding ≤ the dilated filter extent − 1
    (the equivalent fprop's padding ≥ 0), K·R·S ≤ DIRECT_CRS_MAX."""
    return (s.groups == 1 and s.stride_h == s.stride_w == 1 and s.pad_h <= s.dilation_h * (s.R - 1)
            and s.pad_w <= s.dilation_w * (s.S - 1) and s.K * s.R * s.S <= DIRECT_CRS_MAX)


def dgrad_split_chosen(s: Conv2dShape) -> bool:
    """dgrad runs conv_dgrad_direct_split: eligible, C ≤ SPLIT_CHOSEN_K, K ≥ SPLIT_MIN_K, N·H·W ≤ SPLIT_MAX_PIXELS
    (the thesis layers; a rule: round 2 measured the BK = 32
    and narrow kernels at 15-57 µs on 18-313 blocks, chains of 5-9 slices or of K dependent gathers)."""
    return (dgrad_split_eligible(s) and s.C <= SPLIT_CHOSEN_K and s.K >= SPLIT_MIN_K
            and s.N * s.H * s.W <= SPLIT_MAX_PIXELS)


def direct_split_launch(s: Conv2dShape, func: str = "conv_fprop_direct_split") -> Launch:
    """conv_fprop_direct_split's grid (or conv_dgrad_direct_split's, s = dgrad_as_fprop of the layer): tiles =
    pixel blocks of SPLIT_PX × chunks of DIRECT_K channels; kt_per = the gather round trips of one part
    (ceil(C·R·S / SPLIT_PARTS) terms in chunks of DIRECT_CRS)."""
    assert direct_eligible(s), s
    part = -(-s.C * s.R * s.S // SPLIT_PARTS)
    return Launch(func, SPLIT_PX, DIRECT_K,
                  _cuda.blocks(s.N * s.P * s.Q, SPLIT_PX) * _cuda.blocks(s.K, DIRECT_K), 1,
                  _cuda.blocks(part, DIRECT_CRS), 1, DIRECT_CRS)


def small_seconds(launch: Launch, s: Conv2dShape, rows: int, cols: int, zdim: int, sms: int) -> float:
    """Latency model for small layers: blocks run in waves of two per SM; a block runs its kt_per slices one
    after the other, each costing the larger of its gather latency (SLICE_S, or SLICE_STAB_S with the table in
    shared memory, plus one table load up front) and its FMAs at SM_FLOPS shared by the blocks on the SM;
    split-K adds the reduction kernel, the chain of partials each of its threads (or, from WARP_REDUCE_SPLITS on,
    lanes) adds, and the partial sums' traffic. conv_dgrad_narrow: its loop over the K output channels is a chain
    of dependent cold gathers, K·SLICE_S / 1.3 per block (27 µs measured at K = 16). conv_fprop_direct (not
    chosen by the model, only reported by the probe): waves of two blocks per SM, each a table load and kt_per
    gather round trips of SLICE_STAB_S."""
    blocks = launch.tiles * launch.phases * launch.splits
    if launch.func in ("conv_fprop_direct", "conv_fprop_direct_split", "conv_dgrad_direct_split"):
        return -(-blocks // (2 * sms)) * (1 + launch.kt_per) * SLICE_STAB_S
    if launch.func == "conv_dgrad_narrow":
        return -(-blocks // (8 * sms)) * s.K * SLICE_S / 1.3
    per_sm = min(2, -(-blocks // sms))
    waves = -(-blocks // (2 * sms))
    stab = launch.func.endswith("_s")
    slice_s = max(SLICE_STAB_S if stab else SLICE_S, 2 * launch.bm * launch.bn * launch.bk * per_sm / SM_FLOPS)
    t = waves * ((SLICE_STAB_S if stab else 0.0) + launch.kt_per * slice_s)
    if launch.splits > 1:
        chain = launch.splits if launch.splits < WARP_REDUCE_SPLITS else -(-launch.splits // 32)
        t += SPLITK_S + chain * REDUCE_LOAD_S + (launch.splits + 1) * rows * zdim * cols * 4 / 2.5e12
    return t


def _narrow(s: Conv2dShape) -> bool:
    """dgrad runs conv_dgrad_narrow: at most NARROW_C input channels, one group, no dilation, weights that fit."""
    return (s.C <= NARROW_C and s.groups == 1 and s.dilation_h == s.dilation_w == 1
            and _narrow_smem(s) <= 48 * 1024)


def fprop_table(s: Conv2dShape) -> np.ndarray:
    """fprop's and wgrad's (c, r, s) table over one group's channels, in (c, r, s) order: entry {c·H·W + r·dh·W +
    s·dw, r·dh, s·dw, 0}, int32 × 4 per entry (the kernels' int4)."""
    c, r, q = np.meshgrid(np.arange(s.Cg), np.arange(s.R) * s.dilation_h, np.arange(s.S) * s.dilation_w,
                          indexing="ij")
    cols = (c * s.H * s.W + r * s.W + q, r, q, np.zeros_like(c))
    return np.stack([a.ravel() for a in cols], axis=1).astype(np.int32)


@functools.cache
def _table(s: Conv2dShape):
    """fprop_table on the GPU (uploaded once per shape)."""
    import cupy

    return cupy.asarray(fprop_table(s))


def _narrow_smem(s: Conv2dShape) -> int:
    """conv_dgrad_narrow's dynamic shared memory: KCH channels × the largest phase's taps × one float4."""
    return KCH * len(range(0, s.R, s.stride_h)) * len(range(0, s.S, s.stride_w)) * 16


@functools.cache
def _dgrad_phases(s: Conv2dShape) -> tuple[tuple[int, ...], ...]:
    """Per stride phase (a, b) (row-major): (hq0, Hph, wq0, Wph, reduction Kg·taps, rows N·Hph·Wph).

    Phase (a, b) holds the pixels h = uh·hq + a − ph, w = uw·wq + b − pw inside the image, reached only by the taps
    with r·dh ≡ a (mod uh), s·dw ≡ b (mod uw) (see Dgrad in conv2d_implicit_gemm.cu).
    """
    out = []
    for a in range(s.stride_h):
        for b in range(s.stride_w):
            hq0, wq0 = -((a - s.pad_h) // s.stride_h), -((b - s.pad_w) // s.stride_w)  # ceil((pad − a) / u)
            hph = max(0, (s.H - 1 + s.pad_h - a) // s.stride_h - hq0 + 1)
            wph = max(0, (s.W - 1 + s.pad_w - b) // s.stride_w - wq0 + 1)
            taps = (len(phase_taps(s.R, s.stride_h, s.dilation_h, a))
                    * len(phase_taps(s.S, s.stride_w, s.dilation_w, b)))
            out.append((hq0, hph, wq0, wph, s.Kg * taps, s.N * hph * wph))
    return tuple(out)


def dgrad_tables(s: Conv2dShape) -> tuple[np.ndarray, np.ndarray]:
    """dgrad's tables (host): every phase's (k, r, s) entries {k·P·Q, (r·dh − a)/uh, (s·dw − b)/uw,
    k·Cg·R·S + r·S + s} back to back (k over one group's output channels), and per phase two int4:
    {hq0, Hph, wq0, Wph}, {table offset, reduction length, rows, row taps}."""
    entries, info, offset = [], [], 0
    for z, (hq0, hph, wq0, wph, red, rows) in enumerate(_dgrad_phases(s)):
        a, b = divmod(z, s.stride_w)
        rt = np.array(phase_taps(s.R, s.stride_h, s.dilation_h, a), dtype=np.int64)
        st = np.array(phase_taps(s.S, s.stride_w, s.dilation_w, b), dtype=np.int64)
        k, r, q = np.meshgrid(np.arange(s.Kg), rt, st, indexing="ij")
        cols = (k * s.P * s.Q, (r * s.dilation_h - a) // s.stride_h, (q * s.dilation_w - b) // s.stride_w,
                k * s.Cg * s.R * s.S + r * s.S + q)
        entries.append(np.stack([col.ravel() for col in cols], axis=1).reshape(-1, 4))
        info.append((hq0, hph, wq0, wph, offset, red, rows, len(rt)))
        offset += red
    tab = np.concatenate(entries).astype(np.int32)  # phase (0, 0) always has the tap (0, 0): never empty
    return tab, np.array(info, dtype=np.int32)


@functools.cache
def _dgrad_tables(s: Conv2dShape):
    """dgrad_tables on the GPU."""
    import cupy

    return tuple(cupy.asarray(t) for t in dgrad_tables(s))


def _depthwise(s: Conv2dShape) -> bool:
    """One input and one output channel per group (G = C = K): the direct kernels conv_dw_*."""
    return s.groups == s.C == s.K


def _dw_patch_bytes(s: Conv2dShape) -> int:
    """conv_dw_fprop's dynamic shared memory: the filter and the input patch of an 8×32 output tile."""
    rows = (DW_TP - 1) * s.stride_h + (s.R - 1) * s.dilation_h + 1
    cols = (DW_TQ - 1) * s.stride_w + (s.S - 1) * s.dilation_w + 1
    return 4 * (s.R * s.S + rows * cols)


def pointwise(s: Conv2dShape, pass_: str) -> bool:
    """fprop or dgrad of a 1x1, stride-1, unpadded, one-group layer whose per-image GEMM (fprop K × P·Q × C, dgrad
    C × H·W × K) has at least POINTWISE_MIN_ROWS rows, at most 65535 images (grid.z): the batched v7 SGEMM."""
    rows = s.K if pass_ == "fprop" else s.C
    return (pass_ in ("fprop", "dgrad") and (s.R, s.S) == (1, 1) and s.stride_h == s.stride_w == 1
            and s.pad_h == s.pad_w == 0 and s.groups == 1 and rows >= POINTWISE_MIN_ROWS and s.N <= 65535)


def _pointwise_product(s: Conv2dShape, pass_: str) -> tuple:
    """(layout, rows, columns, reduction) of a pointwise layer's per-image GEMM."""
    return ("bnn", s.K, s.H * s.W, s.C) if pass_ == "fprop" else ("btn", s.C, s.H * s.W, s.K)


def _run_pointwise(s: Conv2dShape, pass_: str, operands: tuple, out, bias, relu: bool) -> None:
    """fprop: Y_n (K × H·W) = W (K × C) · X_n (C × H·W) + b per row; dgrad: dX_n (C × H·W) = Wᵀ · dY_n (K × H·W);
    one batched_gemm over the N images (W shared: stride 0)."""
    layout, m, n, k = _pointwise_product(s, pass_)
    data, w = operands[0], operands[1]  # fprop (x, w), dgrad (dy, w)
    batched_gemm(layout, w, data, out, bias, m, n, k, s.C, n, s.N, (0, k * n, m * n), relu)


def warp_igemm(s: Conv2dShape, pass_: str) -> bool:
    """fprop or dgrad that runs the v7 kernel as an implicit GEMM (gemm_warptile.cu's igemm): one group, not
    pointwise; fprop with ≥ POINTWISE_MIN_ROWS output channels and a reduction longer than the direct kernel's
    (C·R·S > DIRECT_CHOSEN_CRS), dgrad with stride 1 and ≥ POINTWISE_MIN_ROWS input channels (a strided one may
    take it as a variant: dgrad_v7_offered); planes and dilated filters below TAP_LIMIT (the table's 16-bit taps)."""
    if pass_ not in ("fprop", "dgrad") or s.groups != 1 or pointwise(s, pass_):
        return False
    if pass_ == "fprop":
        return _taps_fit(s) and s.K >= POINTWISE_MIN_ROWS and s.C * s.R * s.S > DIRECT_CHOSEN_CRS
    return _taps_fit(s) and s.C >= POINTWISE_MIN_ROWS and (s.stride_h, s.stride_w) == (1, 1)


def _taps_fit(s: Conv2dShape) -> bool:
    """The igemm table's 16-bit taps and origins hold this layer: planes and dilated filters below TAP_LIMIT."""
    return max(s.H + s.pad_h, s.W + s.pad_w, s.P, s.Q, s.dilation_h * s.R, s.dilation_w * s.S) < TAP_LIMIT


def dgrad_v7_offered(s: Conv2dShape) -> bool:
    """A strided dgrad that the v7 implicit GEMM can run, one product per stride phase (igemm_phases): warp_igemm's
    conditions but the stride, and a filter tap in every phase. It is one of the layer's dgrad variants, timed
    against the BK = 8 stride-phase kernels on the first call (variants)."""
    return ((s.stride_h, s.stride_w) != (1, 1) and s.groups == 1 and s.C >= POINTWISE_MIN_ROWS and _taps_fit(s)
            and all(ph[4] > 0 for ph in _dgrad_phases(s)))


def lowered_dgrad(s: Conv2dShape) -> bool:
    """dgrad of a strided (either axis) one-group layer with ≤ NARROW_C input channels but ≥ POINTWISE_MIN_ROWS
    rows C·R·S per image, ≤ 65535 images and a col buffer below LOWER_MAX_BYTES: col_n = Wᵀ·dY_n (batched v7
    GEMM), dx = col2im(col). Its stride phases would be GEMMs of C ≤ 4 rows (the narrow kernel: 3x slower than
    cuDNN at the stem); with more channels the phases win (ResNet-50's 3x3 stride-2 layer: 0.44 ms against 0.69
    lowered, H200, NOTES.md)."""
    col_bytes = 4 * s.N * s.C * s.R * s.S * s.P * s.Q
    return (s.groups == 1 and (s.stride_h, s.stride_w) != (1, 1) and s.C <= NARROW_C
            and s.C * s.R * s.S >= POINTWISE_MIN_ROWS and s.N <= 65535 and col_bytes < LOWER_MAX_BYTES)


def _lowered_product(s: Conv2dShape) -> tuple:
    """(layout, rows, columns, reduction) of lowered_dgrad's per-image GEMM col_n = Wᵀ·dY_n."""
    return "btn", s.C * s.R * s.S, s.P * s.Q, s.K


def _run_lowered_dgrad(s: Conv2dShape, dy, w, dx) -> None:
    """col_n (C·R·S × P·Q) = Wᵀ (W as K × C·R·S) · dY_n (K × P·Q) for every image in one batched launch, then
    col2im sums each dx element's taps (a gather, no atomics)."""
    import cupy

    layout, m, n, k = _lowered_product(s)
    col = cupy.empty((s.N, m, n), dtype=cupy.float32)
    batched_gemm(layout, w, dy, col, None, m, n, k, m, n, s.N, (0, k * n, m * n))
    _launch_1d(IM2COL, "col2im", dx.size, (col, dx, *_args(s)))


def igemm_phases(s: Conv2dShape, pass_: str) -> range:
    """The products warp_igemm runs for a layer: one for fprop, one per stride phase (a, b) (index a·uw + b, as
    _dgrad_phases) for dgrad, which is one for stride 1."""
    return range(1 if pass_ == "fprop" else s.stride_h * s.stride_w)


def _phase_taps(s: Conv2dShape, phase: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """dgrad phase (a, b)'s filter taps (rows rt, columns st) and (a, b)."""
    a, b = divmod(phase, s.stride_w)
    rt = np.array(phase_taps(s.R, s.stride_h, s.dilation_h, a), dtype=np.int64)
    st = np.array(phase_taps(s.S, s.stride_w, s.dilation_w, b), dtype=np.int64)
    return rt, st, a, b


def igemm_table(s: Conv2dShape, pass_: str, phase: int = 0) -> np.ndarray:
    """warp_igemm's reduction table (host), int32 pairs {source offset, row tap << 16 | column tap & 0xffff}:
    fprop over (c, r, s) {c·H·W + r·dh·W + s·dw, (r·dh, s·dw)}; dgrad phase (a, b) over (k, r, s) with
    r·dh ≡ a (mod uh), s·dw ≡ b (mod uw) {k·P·Q + tr·Q + tc, (tr, tc)}, tr = −(r·dh − a) / uh, tc = −(s·dw − b) / uw
    (dx at phase pixel (hq, wq) reads dy[hq + tr, wq + tc]; stride 1: −r·dh, −s·dw); padded to a multiple of
    IGEMM_TAB_ALIGN with {0, (NEVER, 0)}, entries whose row lands outside every plane."""
    if pass_ == "fprop":
        c, r, q = np.meshgrid(np.arange(s.C, dtype=np.int64), np.arange(s.R) * s.dilation_h,
                              np.arange(s.S) * s.dilation_w, indexing="ij")
        offset, rows, cols = c * s.H * s.W + r * s.W + q, r, q
    else:
        rt, st, a, b = _phase_taps(s, phase)
        k, r, q = np.meshgrid(np.arange(s.K, dtype=np.int64), -((rt * s.dilation_h - a) // s.stride_h),
                              -((st * s.dilation_w - b) // s.stride_w), indexing="ij")
        offset, rows, cols = k * s.P * s.Q + r * s.Q + q, r, q
    taps = rows * 65536 + (cols & 0xFFFF)
    pad = -len(offset.ravel()) % IGEMM_TAB_ALIGN
    tab = np.stack([np.append(offset.ravel(), [0] * pad), np.append(taps.ravel(), [NEVER * 65536] * pad)], axis=1)
    return tab.astype(np.int32)


@functools.cache
def _igemm_table(s: Conv2dShape, pass_: str, phase: int):
    """igemm_table on the GPU (uploaded once per shape, pass and phase)."""
    import cupy

    return cupy.asarray(igemm_table(s, pass_, phase))


def igemm_problem(s: Conv2dShape, pass_: str, phase: int = 0) -> tuple[int, int, int, tuple[int, ...]]:
    """(rows, columns, reduction, geo) of one warp_igemm product: fprop K × N·P·Q × C·R·S gathering x (origin
    (p·uh − ph, q·uw − pw) in H × W), dgrad phase (a, b): C × N·Hph·Wph × K·taps gathering dy (origin (hq0 + i,
    wq0 + j) in P × Q for the phase's pixel (i, j), dx's (uh·(hq0 + i) + a − ph, uw·(wq0 + j) + b − pw)); geo = (PQ,
    Q, uh, uw, oh, ow, Hs, Ws, src_img, out_img, out_chan, out_base, out_row, out_col), gemm_warptile.cu's ConvGeo."""
    if pass_ == "fprop":
        geo = (s.P * s.Q, s.Q, s.stride_h, s.stride_w, -s.pad_h, -s.pad_w, s.H, s.W, s.C * s.H * s.W,
               s.K * s.P * s.Q, s.P * s.Q, 0, s.Q, 1)
        return s.K, s.N * s.P * s.Q, s.C * s.R * s.S, geo
    hq0, hph, wq0, wph, red, _ = _dgrad_phases(s)[phase]
    _, _, a, b = _phase_taps(s, phase)
    base = (s.stride_h * hq0 + a - s.pad_h) * s.W + s.stride_w * wq0 + b - s.pad_w
    geo = (hph * wph, wph, 1, 1, hq0, wq0, s.P, s.Q, s.K * s.P * s.Q, s.C * s.H * s.W, s.H * s.W, base,
           s.stride_h * s.W, s.stride_w)
    return s.C, s.N * hph * wph, red, geo


def _igemm_weights(s: Conv2dShape, pass_: str, phase: int, w):
    """warp_igemm's A: fprop w (K × C·R·S); dgrad Wᵀ over the phase's taps, C × K·taps, element (c, (k, r, s)) =
    w[k, c, r, s] (stride 1: all taps, a transposed copy; else a gather of w)."""
    import cupy

    if pass_ == "fprop":
        return w
    if (s.stride_h, s.stride_w) == (1, 1):
        return cupy.ascontiguousarray(w.reshape(s.K, s.C, s.R * s.S).transpose(1, 0, 2))
    return cupy.take(w, _phase_weight_index(s, phase))


@functools.cache
def _phase_weight_index(s: Conv2dShape, phase: int):
    """Flat indices into w of a strided dgrad phase's A (C × K·taps, (k, r, s) in the table's order), on the GPU."""
    import cupy

    rt, st, _, _ = _phase_taps(s, phase)
    c, k, r, q = np.meshgrid(np.arange(s.C), np.arange(s.K), rt, st, indexing="ij")
    return cupy.asarray((((k * s.C + c) * s.R + r) * s.S + q).ravel().astype(np.int64))


def _igemm_tag(s: Conv2dShape, pass_: str, phase: int = 0) -> str:
    """The tuner's key of a layer's implicit GEMM (its geometry, not only the product's sizes; a strided dgrad's
    phase)."""
    tag = f"{pass_} {shape_str(s)}"
    return tag if len(igemm_phases(s, pass_)) == 1 else f"{tag} phase {phase}"


def _run_igemm(s: Conv2dShape, pass_: str, operands: tuple, out, bias, relu: bool) -> None:
    """warp_igemm's products: fprop y = W·im2col(x) + b (ReLU), dgrad dx = Wᵀ·im2col'(dy), one product per stride
    phase, each writing its own pixels of dx."""
    data, w = operands
    for phase in igemm_phases(s, pass_):
        m, n, k, geo = igemm_problem(s, pass_, phase)
        if n == 0:  # a phase without pixels (an image narrower than the stride)
            continue
        implicit_gemm(_igemm_weights(s, pass_, phase, w), data, out, bias, m, n, k, _igemm_table(s, pass_, phase),
                      geo, _igemm_tag(s, pass_, phase), relu)


def _igemm_details(s: Conv2dShape, pass_: str, relu: bool) -> dict:
    """igemm_details of every product of the layer (a strided dgrad's phases: their kernels and notes together)."""
    found = {}
    for z in igemm_phases(s, pass_):
        m, n, k, _ = igemm_problem(s, pass_, z)
        if n:  # as _run_igemm: a phase without pixels has no product
            found[z] = igemm_details(_igemm_tag(s, pass_, z), m, n, k, pass_ == "fprop", relu)
    if len(found) == 1:
        return next(iter(found.values()))
    kernels = {name: k for f in found.values() for name, k in f.get("kernels", {}).items()}
    notes = "; ".join(f"phase {z}: {f['note']}" for z, f in found.items())
    return {"kernels": kernels, "note": f"{len(found)} stride phases: {notes}"}


def _tiled_supports(s: Conv2dShape) -> str | None:
    """The implicit-GEMM kernels index GEMM rows/columns and per-image offsets in int32 (tensors in int64); the
    groups (times dgrad's stride phases) run on grid.z (≤ 65535); depthwise patches fit in shared memory."""
    sizes = {"N·P·Q": s.N * s.P * s.Q, "N·H·W": s.N * s.H * s.W, "C·H·W": s.C * s.H * s.W,
             "K·P·Q": s.K * s.P * s.Q, "K·C/G·R·S": s.K * s.Cg * s.R * s.S}
    big = [k for k, v in sizes.items() if v >= INT_LIMIT]
    if big:
        return f"{', '.join(big)} ≥ 2^31: past the implicit-GEMM kernels' int32 GEMM indices"
    if _depthwise(s):
        if s.N * s.C > 65535:
            return f"depthwise N·C = {s.N * s.C} > 65535: past the direct kernels' grid.y"
        if _dw_patch_bytes(s) > 48 * 1024:
            return f"depthwise input patch of {_dw_patch_bytes(s)} B > 48 KiB of shared memory (filter too large)"
    elif s.groups * s.stride_h * s.stride_w > 65535:
        return f"groups·stride_h·stride_w = {s.groups * s.stride_h * s.stride_w} > 65535: past grid.z"
    return None


def _run_depthwise(s: Conv2dShape, pass_: str, operands: tuple, out, bias=None, defines: tuple[str, ...] = ()) -> None:
    """The direct depthwise kernels (conv2d_implicit_gemm.cu, end): fprop 8×32 output tiles per (n, c) plane,
    dgrad one thread per dx element, wgrad one block per (c, r, s)."""
    planes, geo = s.N * s.C, _args(s)
    if pass_ == "fprop":
        tiles = _cuda.blocks(s.P, DW_TP) * _cuda.blocks(s.Q, DW_TQ)
        _cuda.kernel(IGEMM, "conv_dw_fprop", defines)((tiles, planes), (256,), (*operands, bias, out, *geo),
                                                       shared_mem=_dw_patch_bytes(s))
    elif pass_ == "dgrad":
        _cuda.kernel(IGEMM, "conv_dw_dgrad")((_cuda.blocks(s.H * s.W, 256), planes), (256,), (*operands, out, *geo),
                                              shared_mem=4 * s.R * s.S)
    else:
        _cuda.kernel(IGEMM, "conv_dw_wgrad")((s.C * s.R * s.S,), (256,), (*operands, out, *geo))


def _run_tiled(s: Conv2dShape, pass_: str, operands: tuple, out, bias=None, launch: Launch | None = None,
               between=None, defines: tuple[str, ...] = ()) -> None:
    """Launch the configured kernel (or `launch`); with split-K, into a workspace that splitk_reduce sums (+ bias)
    into out. benchmarks/conv_probe.py forces `launch` and calls `between()` (an event record) between the GEMM
    and the reduction to time each kernel. defines=RELU (fprop only): the kernels with the ReLU epilogue."""
    import cupy

    assert not defines or pass_ == "fprop", "only fprop's kernels have the ReLU epilogue"
    if _depthwise(s):
        _run_depthwise(s, pass_, operands, out, bias, defines)
        return
    launch = launch or _launch_config(s, pass_)
    if launch.func == POINTWISE:
        _run_pointwise(s, pass_, operands, out, bias, relu=defines == RELU)
        return
    if launch.func == WARP_IGEMM:
        _run_igemm(s, pass_, operands, out, bias, relu=defines == RELU)
        return
    if launch.func == LOWERED_DGRAD:
        _run_lowered_dgrad(s, *operands, out)
        return
    total = out.size
    if launch.func in ("conv_fprop_direct", "conv_fprop_direct_split", "conv_dgrad_direct_split"):
        px = 256 if launch.func == "conv_fprop_direct" else SPLIT_PX
        geo = dgrad_as_fprop(s) if launch.func == "conv_dgrad_direct_split" else s  # dgrad: as the fprop of dy
        grid = (_cuda.blocks(geo.N * geo.P * geo.Q, px), _cuda.blocks(geo.K, DIRECT_K))
        _cuda.kernel(DIRECT, launch.func, defines)(grid, (256,), (*operands, _cuda.NULL if bias is None else bias,
                                                                  out, _table(geo), *_args(geo)))
        return
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
    _cuda.kernel(IGEMM, launch.func, defines)((launch.tiles, launch.splits, launch.phases), (256,), args)
    if between is not None:
        between()
    if launch.splits > 1:
        plane, nbias = (s.P * s.Q, s.K) if bias is not None else (1, 1)
        func, lanes = ("splitk_reduce_warp", 32) if launch.splits >= WARP_REDUCE_SPLITS else ("splitk_reduce", 1)
        blocks = min(_cuda.blocks(total * lanes, 256), 8 * _sm_count())
        _cuda.kernel(IGEMM, func, defines)((blocks,), (256,), (target, out, np.int64(total), np.int32(launch.splits),
                                                               _cuda.NULL if bias is None else bias, np.int64(plane),
                                                               np.int32(nbias)))


def _tiled_details(pass_: str, defines: tuple[str, ...] = ()):
    def details(s: Conv2dShape) -> dict:
        if _depthwise(s):
            found = _cuda.attributes(IGEMM, [f"conv_dw_{pass_}"], defines=defines)
            return {**found, "note": "depthwise: direct kernel"}
        launch = _launch_config(s, pass_)
        if launch.func == POINTWISE:
            return batched_details(*_pointwise_product(s, pass_), pass_ == "fprop", defines == RELU, s.N)
        if launch.func == WARP_IGEMM:
            return _igemm_details(s, pass_, defines == RELU)
        if launch.func == LOWERED_DGRAD:
            found = batched_details(*_lowered_product(s), False, False, s.N)
            col2im = _cuda.attributes(IM2COL, ["col2im"])["kernels"]
            return {**found, "kernels": {**found.get("kernels", {}), **col2im},
                    "note": f"lowered: {found['note']}, then col2im"}
        if launch.func == "conv_fprop_direct":
            note = f"direct: a pixel x {DIRECT_K} channels per thread, {launch.tiles} blocks"
            return {**_cuda.attributes(DIRECT, [launch.func], defines=defines), "note": note}
        if launch.func == "conv_fprop_direct_split":
            note = (f"direct split (rule K<={SPLIT_CHOSEN_K}, C*R*S<={DIRECT_CRS_MAX}): {SPLIT_PX} pixels x "
                    f"{SPLIT_PARTS} reduction parts per block, {DIRECT_K} channels per thread, {launch.tiles} blocks")
            return {**_cuda.attributes(DIRECT, [launch.func], defines=defines), "note": note}
        if launch.func == "conv_dgrad_direct_split":
            note = (f"direct split as the fprop of dy, flipped filters (rule stride 1, C<={SPLIT_CHOSEN_K}, "
                    f"K*R*S<={DIRECT_CRS_MAX}): {SPLIT_PX} pixels x {SPLIT_PARTS} reduction parts per block, "
                    f"{launch.tiles} blocks")
            return {**_cuda.attributes(DIRECT, [launch.func]), "note": note}
        reduce = "splitk_reduce_warp" if launch.splits >= WARP_REDUCE_SPLITS else "splitk_reduce"
        funcs = [launch.func, *([reduce] if launch.splits > 1 else [])]
        split = f", split-K {launch.splits}" if launch.splits > 1 else ""
        groups = f", {s.groups} groups" if s.groups > 1 else ""
        small = f", BK {launch.bk}, table in shared memory" if launch.bk != BK else ""
        note = f"tile {launch.bm}x{launch.bn}{small}, {launch.tiles} tiles{groups}{split}"
        return {**_cuda.attributes(IGEMM, funcs, defines=defines), "note": note}
    return details


def _reg_tiled(pass_: str, details=None, op: str = "conv2d"):
    return register(op, pass_, name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=1, supports=_tiled_supports, details=details or _tiled_details(pass_))


@_reg_tiled("fprop")
def conv2d_fprop_tiled(s: Conv2dShape, x, w, b, *, y):
    """Implicit GEMM (N·P·Q)×K×(C·R·S), bias fused (or added by the split-K reduction)."""
    _run_tiled(s, "fprop", (x, w), y, b)


@_reg_tiled("fprop", _tiled_details("fprop", RELU), "conv2d_bias_relu")
def conv2d_bias_relu_tiled(s: Conv2dShape, x, w, b, *, y):
    """conv2d fprop's kernel for the shape, from the RELU module: y = max(0, conv + b) written once."""
    _run_tiled(s, "fprop", (x, w), y, b, defines=RELU)


def _dgrad_details(s: Conv2dShape) -> dict:
    """The chosen dgrad variant's kernels and note."""
    variant, how = chosen(s, "dgrad")
    if variant == "v7":
        found = _igemm_details(s, "dgrad", False)
        return {**found, "note": f"v7 ({how}): {found['note']}"}
    found = _tiled_details("dgrad")(s)
    return {**found, "note": found.get("note", "") + ("" if how == "rule" else f" ({how})")}


@_reg_tiled("dgrad", _dgrad_details)
def conv2d_dgrad_tiled(s: Conv2dShape, dy, w, *, dx):
    """Implicit GEMM (N·H·W)×C×(K·R·S), gathering dy through the stride and padding; a strided layer that the v7
    kernel can run (dgrad_v7_offered) takes the faster of the two, timed on its first call."""
    _with_variants(s, "dgrad", lambda v: _run_variant(s, "dgrad", v, (dy, w), (dx,)))


def bias_splits(N: int, K: int, PQ: int, sms: int) -> int:
    """Blocks per channel of bias_grad_partial (each whole images): ~4 blocks per SM in all, none with fewer than
    BIAS_MIN_ELEMENTS elements, at most N; enough that no block counts 2^30 elements or more."""
    fill = min(N, -(-4 * sms // K), max(1, N * PQ // BIAS_MIN_ELEMENTS))
    return max(1, fill, min(N, -(-N * PQ // 2**30)))


def bias_grad(s: Conv2dShape, dy, db) -> None:
    """db[k] = Σ_{n,p,q} dy[n,k,p,q]: conv2d_bias_grad.cu's partial sums per (channel, range of images), then one
    warp per channel over its partials in order (one stage when a channel takes one block). Also cudnn's db."""
    import cupy

    if not (dy.flags.c_contiguous and db.flags.c_contiguous):
        raise ValueError("bias_grad needs C-contiguous dy and db")
    splits = bias_splits(s.N, s.K, s.P * s.Q, _sm_count())
    args = (np.int32(s.N), np.int32(s.K), np.int32(s.P * s.Q), np.int32(splits))
    out = db if splits == 1 else cupy.empty(s.K * splits, dtype=cupy.float32)
    _cuda.kernel(BIAS, "bias_grad_partial")((s.K, splits), (256,), (dy, out, *args))
    if splits > 1:
        _cuda.kernel(BIAS, "bias_grad_finish")((-(-s.K // 8),), (256,), (out, db, np.int32(s.K), np.int32(splits)))


def wgrad_direct_offered(s: Conv2dShape) -> bool:
    """conv_wgrad_direct is one of the layer's wgrad variants: one group, SPLIT_MIN_K ≤ K ≤ SPLIT_CHOSEN_K, N·P·Q ≤
    SPLIT_MAX_PIXELS (the thesis layers, as the other direct kernels)."""
    return s.groups == 1 and SPLIT_MIN_K <= s.K <= SPLIT_CHOSEN_K and s.N * s.P * s.Q <= SPLIT_MAX_PIXELS


def wgrad_v7_offered(s: Conv2dShape) -> bool:
    """The v7 implicit GEMM is one of the layer's wgrad variants: one group, ≥ POINTWISE_MIN_ROWS output channels
    (its rows), planes below TAP_LIMIT (the table's 16-bit taps) and x's offsets in int32 (the table's)."""
    return (s.groups == 1 and s.K >= POINTWISE_MIN_ROWS and s.N * s.C * s.H * s.W < INT_LIMIT
            and max(s.H + s.pad_h, s.W + s.pad_w, s.P * s.stride_h, s.Q * s.stride_w) < TAP_LIMIT)


@functools.cache  # asked on every call (dgrad_v7_offered walks the stride phases)
def variants(s: Conv2dShape, pass_: str) -> tuple[str, ...]:
    """cupy_opt's variants of a layer's pass, in tuning order: "igemm" (conv2d_implicit_gemm.cu's kernels, by
    _launch_config's rules) always; for wgrad also "direct" and "direct_px" (conv_wgrad_direct, its pixels in one
    block or over several: wgrad_pixel_split) and "v7" (the v7 implicit GEMM)
    where offered, for a strided dgrad "v7" (one product per phase). With more than one, the layer's first call
    times them (gemm_tune.choose) and keeps the fastest."""
    if pass_ == "dgrad":
        return ("igemm", "v7") if dgrad_v7_offered(s) else ("igemm",)
    if pass_ == "wgrad":
        return ("igemm", *(("direct", "direct_px") if wgrad_direct_offered(s) else ()),
                *(("v7",) if wgrad_v7_offered(s) else ()))
    return ("igemm",)


def wgrad_direct_grid(s: Conv2dShape) -> tuple[int, int]:
    """conv_wgrad_direct's grid: chunks of WGRAD_ENTRIES (c, r, s) entries × chunks of DIRECT_K output channels."""
    return _cuda.blocks(s.C * s.R * s.S, WGRAD_ENTRIES), _cuda.blocks(s.K, DIRECT_K)


def wgrad_pixel_split(s: Conv2dShape, sms: int) -> tuple[int, int]:
    """(Z, pixels per block) of conv_wgrad_direct v2 ("direct_px"): the N·P·Q pixels over Z blocks per (entry,
    channel) block, enough to give each of `sms` SMs a block, each block at least WGRAD_MIN_PIXELS pixels, in
    whole parts of WGRAD_PART_PIXELS (WCH) so that the parts' pixel runs stay aligned."""
    ex, ek = wgrad_direct_grid(s)
    npq = s.N * s.P * s.Q
    z = max(1, min(-(-sms // (ex * ek)), npq // WGRAD_MIN_PIXELS))
    ppb = -(-npq // z // WGRAD_PART_PIXELS) * WGRAD_PART_PIXELS
    return -(-npq // ppb), ppb


def wgrad_direct_launch(s: Conv2dShape, variant: str, sms: int) -> tuple[tuple[int, int, int], int]:
    """(grid, pixels per block) of conv_wgrad_direct on `sms` SMs: "direct" one block's reduction over every pixel,
    "direct_px" wgrad_pixel_split's Z blocks on grid.z."""
    ex, ek = wgrad_direct_grid(s)
    z, ppb = wgrad_pixel_split(s, sms) if variant == "direct_px" else (1, s.N * s.P * s.Q)
    return (ex, ek, z), ppb


def wgrad_igemm_table(s: Conv2dShape) -> np.ndarray:
    """The v7 wgrad's reduction table (host) over the output pixels (n, p, q), as igemm_table's pairs: {n·C·H·W +
    (p·uh − ph)·W + q·uw − pw, (p·uh − ph, q·uw − pw)}; GEMM column (c, r, s) has origin (r·dh, s·dw) in image c of
    H × W (ConvGeo: PQ = R·S, Q = S, uh, uw = the dilation), so it reads x[n, c, p·uh + r·dh − ph, q·uw + s·dw − pw]."""
    n, p, q = np.meshgrid(np.arange(s.N, dtype=np.int64), np.arange(s.P) * s.stride_h - s.pad_h,
                          np.arange(s.Q) * s.stride_w - s.pad_w, indexing="ij")
    offset, taps = n * s.C * s.H * s.W + p * s.W + q, p * 65536 + (q & 0xFFFF)
    pad = -offset.size % IGEMM_TAB_ALIGN
    tab = np.stack([np.append(offset.ravel(), [0] * pad), np.append(taps.ravel(), [NEVER * 65536] * pad)], axis=1)
    return tab.astype(np.int32)


@functools.cache
def _wgrad_igemm_table(s: Conv2dShape):
    """wgrad_igemm_table on the GPU (uploaded once per shape)."""
    import cupy

    return cupy.asarray(wgrad_igemm_table(s))


def wgrad_igemm_problem(s: Conv2dShape) -> tuple[int, int, int, tuple[int, ...]]:
    """(rows, columns, reduction, geo) of the v7 wgrad: dW (K × C·R·S) = dYᵀ (K × N·P·Q) · im2col(x)ᵀ, written row
    by row (out_chan C·R·S; column (c, r, s) at c·R·S + r·S + s)."""
    rs = s.R * s.S
    geo = (rs, s.S, s.dilation_h, s.dilation_w, 0, 0, s.H, s.W, s.H * s.W, rs, s.C * rs, 0, s.S, 1)
    return s.K, s.C * rs, s.N * s.P * s.Q, geo


VARIANTS = ("igemm", "direct", "direct_px", "v7")  # every variant name (variants: those a layer's pass is offered)
_CHOSEN: dict[tuple[str, Conv2dShape], tuple[str, str]] = {}  # (pass, shape) -> (variant, how it was chosen)


@functools.cache
def _variant_choices() -> _tune.TuneCache:
    """The gemm tuner's cache file (gemm_tune.cache_path), this module's keys in it."""
    return _tune.TuneCache(_tune.cache_path(), parse=_tune.one_of(VARIANTS))


def _with_variants(s: Conv2dShape, pass_: str, run) -> None:
    """run(variant) with the layer's only variant, or the one cached / tuned now for it (untuned: "igemm")."""
    offered = variants(s, pass_)
    if len(offered) == 1:
        run(offered[0])
        return
    result = _tune.choose(_variant_choices(), _gemm.device()[1], f"conv2d {pass_} {shape_str(s)}", lambda: offered, run,
                          lambda: ("igemm", "untuned"), _tune.with_times)
    _CHOSEN[(pass_, s)] = _tune.keep_tuned(_CHOSEN.get((pass_, s)), result)


def chosen(s: Conv2dShape, pass_: str) -> tuple[str, str]:
    """(variant, how it was chosen) of cupy_opt's pass for this layer: the only variant where there is one, else
    the last call's choice (before any call: the untuned one, "igemm")."""
    offered = variants(s, pass_)
    if len(offered) == 1:
        return offered[0], "rule"
    return _CHOSEN.get((pass_, s), ("igemm", "no call yet"))


def _run_variant(s: Conv2dShape, pass_: str, variant: str, operands: tuple, outs: tuple) -> None:
    """One variant of dgrad ((dy, w) -> (dx,)) or wgrad ((x, dy) -> (dw, db))."""
    if pass_ == "dgrad":
        if variant == "v7":
            _run_igemm(s, "dgrad", operands, outs[0], None, False)
        else:
            _run_tiled(s, "dgrad", operands, outs[0])
        return
    _run_wgrad(s, variant, *operands, *outs)


def _run_wgrad(s: Conv2dShape, variant: str, x, dy, dw, db) -> None:
    """dw and db by one variant: "igemm" (the BK = 8 / 32 kernels, then bias_grad), "direct" / "direct_px"
    (conv_wgrad_direct: dw and db in one launch, the pixels in one block or over wgrad_pixel_split's Z blocks) or
    "v7" (dYᵀ as a K × N·P·Q copy, the v7 implicit GEMM with wide split-K, bias_grad)."""
    import cupy

    if variant in ("direct", "direct_px"):
        assert s.N * s.P * s.Q < 2**30 and s.groups == 1, s
        (ex, ek, z), ppb = wgrad_direct_launch(s, variant, _sm_count())
        ws, tickets = ((cupy.empty(z * s.K * (s.C * s.R * s.S + 1), dtype=cupy.float32), _cuda.tickets(ex * ek))
                       if z > 1 else (_cuda.NULL, _cuda.NULL))
        _cuda.kernel(DIRECT, "conv_wgrad_direct")((ex, ek, z), (256,), (x, dy, dw, db, _table(s), *_args(s),
                                                                          np.int32(ppb), ws, tickets))
        return
    if variant == "v7":
        m, n, k, geo = wgrad_igemm_problem(s)
        dyt = cupy.ascontiguousarray(dy.reshape(s.N, s.K, s.P * s.Q).transpose(1, 0, 2))
        implicit_gemm(dyt, x, dw, None, m, n, k, _wgrad_igemm_table(s), geo, f"wgrad {shape_str(s)}",
                      splits=_tune.WIDE_SPLITS)
    else:
        _run_tiled(s, "wgrad", (x, dy), dw)
    bias_grad(s, dy, db)


def _wgrad_details(s: Conv2dShape) -> dict:
    """The chosen variant's kernels and note, with the bias-gradient kernels' attributes beside them (not for the
    direct kernel, which sums db itself)."""
    variant, how = chosen(s, "wgrad")
    if variant in ("direct", "direct_px"):
        (ex, ek, z), ppb = wgrad_direct_launch(s, variant, _sm_count())
        across = f", the pixels over {z} blocks of {ppb} summed by the last" if z > 1 else ""
        note = (f"{variant} ({how}): {WGRAD_ENTRIES} (c,r,s) entries x {DIRECT_K} channels per block, the reduction "
                f"in {WGRAD_PARTS} parts inside the block{across}, db fused, {ex * ek * z} blocks")
        return {**_cuda.attributes(DIRECT, ["conv_wgrad_direct"]), "note": note}
    if variant == "v7":
        m, n, k, _ = wgrad_igemm_problem(s)
        found = igemm_details(f"wgrad {shape_str(s)}", m, n, k, False, False)
        found = {**found, "note": f"v7 ({how}): {found['note']}"}
    else:
        found = _tiled_details("wgrad")(s)
        found = {**found, "note": found.get("note", "") + ("" if how == "rule" else f" ({how})")}
    bias = _cuda.attributes(BIAS, ["bias_grad_partial", "bias_grad_finish"])["kernels"]
    return {**found, "kernels": {**found.get("kernels", {}), **bias}}


@_reg_tiled("wgrad", _wgrad_details)
def conv2d_wgrad_tiled(s: Conv2dShape, x, dy, *, dw, db):
    """Implicit GEMM K×(C·R·S)×(N·P·Q) (split-K); db by a two-stage reduction over (channel, images) blocks. Where
    variants offers more (conv_wgrad_direct on small layers, the v7 implicit GEMM with ≥ 64 output channels), the
    fastest, timed on the layer's first call by the gemm tuner (untuned: the first)."""
    _with_variants(s, "wgrad", lambda v: _run_variant(s, "wgrad", v, (x, dy), (dw, db)))


# ---------------------------------------------------------------- cupy_im2col_cublas
def _im2col(s: Conv2dShape, x, col, ld_n: int, ld_crs: int) -> None:
    total = s.N * s.C * s.R * s.S * s.P * s.Q
    _launch_1d(IM2COL, "im2col", total, (x, col, *_args(s), np.int64(ld_n), np.int64(ld_crs)))


def _group_weights(s: Conv2dShape, w):
    """w as one K/G × (C/G·R·S) matrix per group (a view)."""
    return w.reshape(s.groups, s.Kg, s.Cg * s.R * s.S)


def _reg_im2col(pass_: str, funcs: list[str]):
    return register("conv2d", pass_, name="cupy_im2col_cublas", device="gpu", math="fp32", family="own",
                    available=_cuda.available, details=lambda s: _cuda.attributes(IM2COL, funcs))


@_reg_im2col("fprop", ["im2col"])
def conv2d_fprop_im2col(s: Conv2dShape, x, w, b, *, y):
    """col_n = im2col(x_n) (C·R·S × P·Q, group g's rows one block), y_n,g = W_g·col_n,g for every image n and group
    g (one batched cuBLAS call, W broadcast over n, strict FP32), += b."""
    import cupy

    crs, pq = s.Cg * s.R * s.S, s.P * s.Q  # one group's reduction length; the output plane
    col = cupy.empty((s.N, s.groups, crs, pq), dtype=cupy.float32)
    _im2col(s, x, col, s.groups * crs * pq, pq)
    with cublas_math("fp32"):
        cupy.matmul(_group_weights(s, w), col, out=y.reshape(s.N, s.groups, s.Kg, pq))
    y += b.reshape(1, s.K, 1, 1)


@_reg_im2col("dgrad", ["col2im"])
def conv2d_dgrad_im2col(s: Conv2dShape, dy, w, *, dx):
    """col_n,g = W_gᵀ·dy_n,g for every image n and group g (batched cuBLAS, strict FP32), then dx = col2im(col)."""
    import cupy

    with cublas_math("fp32"):
        col = cupy.matmul(_group_weights(s, w).transpose(0, 2, 1), dy.reshape(s.N, s.groups, s.Kg, s.P * s.Q))
    _launch_1d(IM2COL, "col2im", dx.size, (col, dx, *_args(s)))


@_reg_im2col("wgrad", ["im2col"])
def conv2d_wgrad_im2col(s: Conv2dShape, x, dy, *, dw, db):
    """col = im2col(x) as (C·R·S) × (N·P·Q), group g's rows one block; dW_gᵀ = col_g · dY_g (dY_g: N·P·Q × K/G, one
    strided-batched cuBLAS GEMM over the groups, strict FP32: transposing dy and dw, not the large col); db = Σ dy."""
    import cupy

    crs, pq = s.Cg * s.R * s.S, s.P * s.Q
    col = cupy.empty((s.groups, crs, s.N * pq), dtype=cupy.float32)
    _im2col(s, x, col, pq, s.N * pq)
    dyt = cupy.ascontiguousarray(dy.reshape(s.N, s.groups, s.Kg, pq).transpose(1, 0, 3, 2))  # (G, N, P·Q, K/G)
    with cublas_math("fp32"):
        dwt = cupy.matmul(col, dyt.reshape(s.groups, s.N * pq, s.Kg))  # (G, C/G·R·S, K/G)
    dw.reshape(s.groups, s.Kg, crs)[...] = dwt.transpose(0, 2, 1)
    cupy.sum(dy, axis=(0, 2, 3), out=db)
