"""Winograd convolution for 3x3 stride-1 layers, fprop and dgrad: cupy_winograd_f2, F(2x2, 3x3) fused
(conv2d_winograd.cu); cupy_winograd_f4, F(4x4, 3x3) non-fused (conv2d_winograd_f4.cu); cupy_winograd, the faster
of the two for each layer (tuned once per layer and device, as the gemm tiles are).

cupy_winograd_f2 runs one fused kernel per call, in two versions chosen per shape by `kernel_for`: the filter
transform U = G g Gᵀ (recomputed from w by every block on every call: the weights change between calls) and the
input transform in the loader, the 16 transformed positions' products over the input channels accumulated in
registers, output transform and bias in the epilogue (v2: through shared memory). dgrad is the same convolution of
dy padded by 2 − pad with the filter rotated by 180° and C and K swapped, which the filter transform reads that way.

cupy_winograd_f4 transforms the filters and the input tiles into buffers, runs the 36 positions' products as one
batched v7 SGEMM (impls/cuda/gemm.py's batched_gemm, tuned per shape) and transforms the products back: 4x fewer
multiplications than a direct convolution (2.25x for F(2x2)), for buffers 2.25x the size of the image and the
output, all the tiles at once (cupy_winograd_f4_chunked works through them in chunks small enough to stay in L2:
slower on the H100, 1.1-1.5x, from one launch per chunk and kernel and smaller GEMMs).
`f4_plan` gives every size the launches use; the CPU tests run the kernels' index arithmetic on it.

cupy_winograd times both on the first call of a layer (impls/cuda/gemm_tune.py's tuner: CUDA events behind the
stream hold, medians), keeps the faster in the tuner's cache file under its own keys, and names the choice in the
row's note; without tuning (KH_GEMM_TUNE=0, graph capture) it runs F(2x2), the measured one.

The checker judges each with its algorithm's bound (`algorithm=`, harness.measure.check.algorithm_growth; for
cupy_winograd, the algorithm of the variant the call ran).
`emulate` is the kernels' host model in float32 (same tiles, same transforms), which the CPU tests check against
the float64 oracle to catch index errors without a GPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.measure.check import winograd_matrices
from harness.ops.conv2d import Conv2dShape
from harness.registry import register
from harness.spec import shape_str
from impls.cuda import common as _cuda
from impls.cuda import gemm
from impls.cuda import gemm_tune as _tune
from impls.cuda.gemm import batched_details, batched_gemm

WINO = "conv2d_winograd.cu"
ALGORITHM = "winograd-f2x2-3x3"
BT, BKO = 32, 32  # wino_conv_f2's tiles and output channels per block
INT_LIMIT = 2**31 - 2**16


def supports(s: Conv2dShape, m: int = 2) -> str | None:
    """3x3, stride 1, dilation 1, one group, pad ≤ 2 (dgrad pads dy by 2 − pad); counts of m x m tiles (F(m x m))
    inside int32."""
    if (s.R, s.S) != (3, 3):
        return f"Winograd F({m}x{m}, 3x3) needs a 3x3 filter, not {s.R}x{s.S}"
    if (s.stride_h, s.stride_w) != (1, 1) or (s.dilation_h, s.dilation_w) != (1, 1):
        return "Winograd here is stride 1 and dilation 1 only"
    if s.groups != 1:
        return f"Winograd here is one group only, not {s.groups}"
    if max(s.pad_h, s.pad_w) > 2:
        return f"pad {s.pad_h}x{s.pad_w} > 2: dgrad's padding 2 − pad would be negative"
    tiles = s.N * max(_ceil(s.P, m) * _ceil(s.Q, m), _ceil(s.H, m) * _ceil(s.W, m))
    if tiles >= INT_LIMIT or max(s.C, s.K) * (m + 2) ** 2 >= INT_LIMIT:
        return f"{tiles} {m}x{m} tiles ≥ 2^31: past the kernel's int32 tile index"
    if _cuda.blocks(max(s.C, s.K), BKO) > 65535:
        return "channels past grid.y"
    return None


def supports_f4(s: Conv2dShape) -> str | None:
    """supports() for F(4x4, 3x3)."""
    return supports(s, 4)


def _ceil(n: int, m: int) -> int:
    return -(-n // m)


V1, V2 = "wino_conv_f2", "wino_conv_f2_outer"
OUTER_MIN_CIN = 16  # the kernel's input channels from which v2's outer products pay for its epilogue (a choice)


def kernel_for(cin: int) -> str:
    """The kernel for `cin` convolved input channels (C for fprop, K for dgrad): v1 (products and output transform
    in registers, 4 FMA per 2 LDS.64) for the few-channel thesis layers, where one or two slices make the
    epilogue count; v2 (one position's 8 tiles x 8 channels outer product per thread, 64 FMA per 4 LDS.128, the
    next slice prefetched, the slice's filters staged through shared memory with contiguous reads of w, output
    transform through shared memory) from OUTER_MIN_CIN channels on, where the products dominate."""
    return V2 if cin >= OUTER_MIN_CIN else V1


def _launch(inp, w, bias, out, n: int, cin: int, h: int, wd: int, kout: int, p: int, q: int, pad_h: int,
            pad_w: int, flip: bool, func: str) -> None:
    """Kernel `func`: inp (n × cin × h × wd) convolved with w's transformed filters into out (n × kout × p × q);
    with `flip`, w is the layer's K × C filter read rotated and transposed (dgrad). Both kernels share the grid:
    one block per 32 tiles × 32 output channels."""
    tp, tq = _ceil(p, 2), _ceil(q, 2)
    grid = (_cuda.blocks(n * tp * tq, BT), _cuda.blocks(kout, BKO))
    args = (inp, w, _cuda.NULL if bias is None else bias, out,
            *(np.int32(v) for v in (n, cin, h, wd, kout, p, q, pad_h, pad_w, tp, tq, flip)))
    _cuda.kernel(WINO, func)(grid, (256,), args)


def _details(s: Conv2dShape) -> dict:
    """Registers and spills of both kernels, fprop's first (the row's columns); the note names the kernel each pass
    runs (the choice rule)."""
    first = kernel_for(s.C)
    return {**_cuda.attributes(WINO, [first, V1 if first == V2 else V2]),
            "note": f"F(2x2,3x3) 32 tiles x 32 channels a block; fprop {kernel_for(s.C)}, dgrad {kernel_for(s.K)}"}


def _details_v1(s: Conv2dShape) -> dict:
    return {**_cuda.attributes(WINO, [V1]), "note": f"F(2x2,3x3) {V1} forced (round-1 kernel)"}


def _reg(pass_: str, name: str = "cupy_winograd_f2", details=_details):
    return register("conv2d", pass_, name=name, device="gpu", math="fp32", available=_cuda.available,
                    family="own", supports=supports, details=details, algorithm=ALGORITHM)


@_reg("fprop")
def conv2d_fprop_winograd_f2(s: Conv2dShape, x, w, b, *, y):
    """Winograd F(2x2, 3x3): y = b + Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A, every transform fused in one kernel."""
    _fprop(s, x, w, b, y, kernel_for(s.C))


@_reg("dgrad")
def conv2d_dgrad_winograd_f2(s: Conv2dShape, dy, w, *, dx):
    """Winograd F(2x2, 3x3) of dy padded by 2 − pad with w rotated 180° and C, K swapped."""
    _dgrad(s, dy, w, dx, kernel_for(s.K))


@_reg("fprop", "cupy_winograd_v1", _details_v1)
def conv2d_fprop_winograd_v1(s: Conv2dShape, x, w, b, *, y):
    """cupy_winograd_f2's fprop with the round-1 kernel on every shape: the comparison for the choice rule."""
    _fprop(s, x, w, b, y, V1)


@_reg("dgrad", "cupy_winograd_v1", _details_v1)
def conv2d_dgrad_winograd_v1(s: Conv2dShape, dy, w, *, dx):
    """cupy_winograd_f2's dgrad with the round-1 kernel on every shape."""
    _dgrad(s, dy, w, dx, V1)


def _fprop(s: Conv2dShape, x, w, b, y, func: str) -> None:
    _launch(x, w, b, y, s.N, s.C, s.H, s.W, s.K, s.P, s.Q, s.pad_h, s.pad_w, False, func)


def _dgrad(s: Conv2dShape, dy, w, dx, func: str) -> None:
    _launch(dy, w, None, dx, s.N, s.K, s.P, s.Q, s.C, s.H, s.W, 2 - s.pad_h, 2 - s.pad_w, True, func)


# ---------------------------------------------------------------- F(4x4, 3x3), non-fused
WINO4 = "conv2d_winograd_f4.cu"
ALGORITHM_F4 = "winograd-f4x4-3x3"
F4_KERNELS = ["wino4_filter", "wino4_input", "wino4_output"]
POSITIONS = 36  # the 6 x 6 transformed positions of a tile: the batch of products
THREADS = 256
CHUNK_BYTES = 24 << 20  # cupy_winograd_f4_chunked's V and M of one chunk of tiles: about half the 50 MB L2
# cupy_winograd_f4's V and M at most (ResNet-50 at batch 128 needs 462 MB): larger layers run in chunks of this size,
# so the workspace stays bounded and every buffer offset far inside int32 elements
ONE_CHUNK_LIMIT = 2 << 30


@dataclass(frozen=True)
class F4Plan:
    """One F(4x4) convolution of inp (n × cin × h × w) with kout 3x3 filters into out (n × kout × p × q), pad
    (pad_h, pad_w); `flip`: the filters are the layer's w read rotated and transposed (dgrad). The tiles go
    through the input transform, the products and the output transform `chunk` at a time (a multiple of 4), so
    that a chunk's V and M can stay in L2 between the launches that write and read them."""

    n: int
    cin: int
    h: int
    w: int
    kout: int
    p: int
    q: int
    pad_h: int
    pad_w: int
    flip: bool
    chunk_bytes: int | None = CHUNK_BYTES  # None: all tiles in one chunk, up to ONE_CHUNK_LIMIT

    @property
    def tp(self) -> int:
        return _ceil(self.p, 4)

    @property
    def tq(self) -> int:
        return _ceil(self.q, 4)

    @property
    def tiles(self) -> int:
        return self.n * self.tp * self.tq

    @property
    def ldt(self) -> int:
        """Columns of V and M, the tiles of one chunk: a multiple of 4, so that the GEMM's rows are 16-byte
        aligned; all the tiles (rounded up) when V and M fit chunk_bytes (None: ONE_CHUNK_LIMIT)."""
        whole = _ceil(self.tiles, 4) * 4
        limit = ONE_CHUNK_LIMIT if self.chunk_bytes is None else self.chunk_bytes
        fit = limit // (POSITIONS * (self.cin + self.kout) * 4) // 4 * 4
        return min(whole, max(4, fit))

    def chunks(self) -> list[tuple[int, int]]:
        """(first tile, tiles) of each chunk."""
        return [(t0, min(self.ldt, self.tiles - t0)) for t0 in range(0, self.tiles, self.ldt)]

    def gemm(self) -> tuple:
        """batched_gemm's arguments after the buffers: M_e (kout × ldt) = U_e (kout × cin) · V_e (cin × ldt)."""
        return (self.kout, self.ldt, self.cin, self.cin, self.ldt, POSITIONS,
                (self.kout * self.cin, self.cin * self.ldt, self.kout * self.ldt))


def f4_plan(s: Conv2dShape, pass_: str, chunk_bytes: int | None = CHUNK_BYTES) -> F4Plan:
    """fprop: x into y; dgrad: dy padded by 2 − pad into dx, C and K swapped."""
    if pass_ == "fprop":
        return F4Plan(s.N, s.C, s.H, s.W, s.K, s.P, s.Q, s.pad_h, s.pad_w, False, chunk_bytes)
    return F4Plan(s.N, s.K, s.P, s.Q, s.C, s.H, s.W, 2 - s.pad_h, 2 - s.pad_w, True, chunk_bytes)


def _f4(plan: F4Plan, inp, w, bias, out) -> None:
    """The filter transform, then per chunk of tiles the input transform, the batched GEMM and the output
    transform, on buffers (one chunk's V and M, reused) from CuPy's pool."""
    import cupy

    u = cupy.empty(POSITIONS * plan.kout * plan.cin, dtype=cupy.float32)
    v = cupy.empty(POSITIONS * plan.cin * plan.ldt, dtype=cupy.float32)
    m = cupy.empty(POSITIONS * plan.kout * plan.ldt, dtype=cupy.float32)
    i32 = np.int32
    _cuda.kernel(WINO4, "wino4_filter")((_cuda.blocks(plan.kout * plan.cin, THREADS),), (THREADS,),
                                        (w, u, i32(plan.kout), i32(plan.cin), i32(plan.flip)))
    for t0, tc in plan.chunks():
        _cuda.kernel(WINO4, "wino4_input")((_cuda.blocks(plan.cin * plan.ldt, THREADS),), (THREADS,),
                                           (inp, v, *(i32(a) for a in (plan.n, plan.cin, plan.h, plan.w, plan.tp,
                                                                        plan.tq, plan.ldt, plan.pad_h, plan.pad_w,
                                                                        t0))))
        batched_gemm("bnn", u, v, m, None, *plan.gemm())
        _cuda.kernel(WINO4, "wino4_output")((_cuda.blocks(plan.kout * tc, THREADS),), (THREADS,),
                                            (m, _cuda.NULL if bias is None else bias, out,
                                             *(i32(a) for a in (plan.n, plan.kout, plan.p, plan.q, plan.tp, plan.tq,
                                                                plan.ldt, t0, tc))))


def _details_f4(pass_: str, chunked: bool):
    def details(s: Conv2dShape) -> dict:
        plan = f4_plan(s, pass_, CHUNK_BYTES if chunked else None)
        kout, ldt, cin = plan.gemm()[:3]
        gemm = batched_details("bnn", kout, ldt, cin, False, False, POSITIONS)
        found = _cuda.attributes(WINO4, F4_KERNELS)
        return {**found, "kernels": {**found.get("kernels", {}), **gemm.get("kernels", {})},
                "note": f"F(4x4,3x3) non-fused, {plan.tiles} tiles in {len(plan.chunks())} chunks: transforms "
                        f"around the {gemm['note']}"}
    return details


def _reg_f4(pass_: str, name: str, chunked: bool):
    return register("conv2d", pass_, name=name, device="gpu", math="fp32", available=_cuda.available,
                    family="own", supports=supports_f4, details=_details_f4(pass_, chunked), algorithm=ALGORITHM_F4)


@_reg_f4("fprop", "cupy_winograd_f4", False)
def conv2d_fprop_winograd_f4(s: Conv2dShape, x, w, b, *, y):
    """Winograd F(4x4, 3x3): y = b + Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A, the sums over c as 36 batched SGEMMs over all the
    tiles at once."""
    _f4(f4_plan(s, "fprop", None), x, w, b, y)


@_reg_f4("dgrad", "cupy_winograd_f4", False)
def conv2d_dgrad_winograd_f4(s: Conv2dShape, dy, w, *, dx):
    """Winograd F(4x4, 3x3) of dy padded by 2 − pad with w rotated 180° and C, K swapped."""
    _f4(f4_plan(s, "dgrad", None), dy, w, None, dx)


@_reg_f4("fprop", "cupy_winograd_f4_chunked", True)
def conv2d_fprop_winograd_f4_chunked(s: Conv2dShape, x, w, b, *, y):
    """cupy_winograd_f4 with the tiles in chunks whose buffers fit in half the L2 (slower: NOTES.md)."""
    _f4(f4_plan(s, "fprop", CHUNK_BYTES), x, w, b, y)


@_reg_f4("dgrad", "cupy_winograd_f4_chunked", True)
def conv2d_dgrad_winograd_f4_chunked(s: Conv2dShape, dy, w, *, dx):
    """cupy_winograd_f4's dgrad with the tiles in chunks whose buffers fit in half the L2."""
    _f4(f4_plan(s, "dgrad", CHUNK_BYTES), dy, w, None, dx)


# ---------------------------------------------------------------- cupy_winograd: F(2x2) or F(4x4), per layer
VARIANTS = {"f2": ALGORITHM, "f4": ALGORITHM_F4}  # cupy_winograd's choices, in tuning order, and their algorithms
UNTUNED = "f2"  # the choice without tuning: the fused F(2x2), measured on every 3x3 stride-1 layer of ResNet-50
_CHOSEN: dict[tuple[str, Conv2dShape], tuple[str, str]] = {}  # (pass, shape) -> (variant, how it was chosen)


@functools.cache
def _choices() -> _tune.TuneCache:
    """The tuner's cache file (gemm_tune.cache_path), this module's keys in it."""
    return _tune.TuneCache(_tune.cache_path(), parse=_tune.one_of(tuple(VARIANTS)))


def choice_key(s: Conv2dShape, pass_: str) -> str:
    """The cache key of one layer and pass (beside the gemm keys in the same file)."""
    return f"conv2d winograd {pass_} {shape_str(s)}"


def _run_variant(variant: str, s: Conv2dShape, pass_: str, inp, w, bias, out) -> None:
    """One call of cupy_winograd_f2 ("f2") or cupy_winograd_f4 ("f4") on inp (x or dy)."""
    if variant == "f4":
        _f4(f4_plan(s, pass_, None), inp, w, bias, out)
    elif pass_ == "fprop":
        _fprop(s, inp, w, bias, out, kernel_for(s.C))
    else:
        _dgrad(s, inp, w, out, kernel_for(s.K))


def _best(s: Conv2dShape, pass_: str, inp, w, bias, out) -> None:
    """Run the layer's cached variant; on its first call (tuning on, no graph capture) time both first, the
    tuner's last launch being the chosen one's, so out holds its result."""
    result = _tune.choose(
        _choices(), gemm.device()[1], choice_key(s, pass_), lambda: VARIANTS,
        lambda v: _run_variant(v, s, pass_, inp, w, bias, out), lambda: (UNTUNED, "untuned"),
        _tune.with_times)
    _CHOSEN[(pass_, s)] = _tune.keep_tuned(_CHOSEN.get((pass_, s)), result)


def chosen(s: Conv2dShape, pass_: str) -> tuple[str, str]:
    """(variant, how it was chosen) of cupy_winograd's last call for this layer; the checker and the row's details
    ask after the call ran (before any call: the untuned choice)."""
    return _CHOSEN.get((pass_, s), (UNTUNED, "no call yet"))


def _details_best(pass_: str):
    def details(s: Conv2dShape) -> dict:
        variant, how = chosen(s, pass_)
        found = _details(s) if variant == "f2" else _details_f4(pass_, False)(s)
        return {**found, "note": f"{variant} chosen ({how}); {found['note']}"}
    return details


def _reg_best(pass_: str):
    return register("conv2d", pass_, name="cupy_winograd", device="gpu", math="fp32", available=_cuda.available,
                    family="own", supports=supports, details=_details_best(pass_),
                    algorithm=lambda s: VARIANTS[chosen(s, pass_)[0]])


@_reg_best("fprop")
def conv2d_fprop_winograd(s: Conv2dShape, x, w, b, *, y):
    """The faster of cupy_winograd_f2 and cupy_winograd_f4 for this layer (timed on its first call, cached)."""
    _best(s, "fprop", x, w, b, y)


@_reg_best("dgrad")
def conv2d_dgrad_winograd(s: Conv2dShape, dy, w, *, dx):
    """The faster of cupy_winograd_f2 and cupy_winograd_f4 for this layer's dgrad (timed on its first call)."""
    _best(s, "dgrad", dy, w, None, dx)


# ---------------------------------------------------------------- host model (float32), for the CPU tests
def emulate(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pad_h: int, pad_w: int,
            algorithm: str = ALGORITHM) -> np.ndarray:
    """y = b + Winograd F(m x m, 3x3) convolution of x (N × C × H × W) with w (K × C × 3 × 3), in float32
    arithmetic: the kernels' tiling (tile (tp, tq) reads rows m·tp − pad_h .. + m + 1, zero outside; partial tiles
    at the borders are cut), transforms in float32, the products summed over C in float32."""
    f32 = np.float32
    at, g, bt = (a.astype(f32) for a in winograd_matrices(algorithm))
    m, a = at.shape
    n, c, h, wd = x.shape
    k = w.shape[0]
    p, q = h + 2 * pad_h - 2, wd + 2 * pad_w - 2
    tp, tq = -(-p // m), -(-q // m)
    xp = np.zeros((n, c, tp * m + 2, tq * m + 2), dtype=f32)  # padded so that every tile's patch exists
    xp[:, :, pad_h:pad_h + h, pad_w:pad_w + wd] = x
    u = np.einsum("ar,kcrs,bs->kcab", g, w.astype(f32), g, dtype=f32)  # G g Gᵀ
    idx_h = (np.arange(tp) * m)[:, None] + np.arange(a)  # (tp, a): the patch rows of each tile row
    idx_w = (np.arange(tq) * m)[:, None] + np.arange(a)
    d = xp[:, :, idx_h[:, :, None, None], idx_w[None, None, :, :]]  # n, c, tp, a, tq, b
    v = np.einsum("ia,nctaub,jb->nctuij", bt, d, bt, dtype=f32)  # Bᵀ d B
    mm = np.zeros((n, k, tp, tq, a, a), dtype=f32)
    for ci in range(c):  # the kernel's order: one input channel after the other, in float32
        mm += u[None, :, ci, None, None] * v[:, ci, None]
    yt = np.einsum("ia,nktuab,jb->nktiuj", at, mm, at, dtype=f32).reshape(n, k, tp * m, tq * m)[:, :, :p, :q]
    return yt + (f32(0) if b is None else b.astype(f32)[None, :, None, None])


def emulate_dgrad(dy: np.ndarray, w: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """dgrad as the kernels compute it: emulate() of dy padded by 2 − pad with w rotated 180°, C and K swapped."""
    return emulate(dy, np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), None, 2 - pad_h, 2 - pad_w)
