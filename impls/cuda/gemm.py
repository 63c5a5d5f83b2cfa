"""From-scratch GPU implementations of gemm (the dense layer): the optimisation ladder, naive to the vendor line.

Each step that mattered stays runnable as its own implementation, so `run --op gemm --shapes gemm-square` shows the
climb (forward product; bwd for v1 and v6 only):

- cupy_naive        v1 (gemm_naive.cu): one thread per output element, operands straight from global memory.
- cupy_v2_smem      (gemm_smem.cu): 32×32 shared-memory tiles, one output per thread.
- cupy_v3_regblock1d (gemm_regblock1d.cu): 64×64×8 tiles, 8 outputs of one column per thread.
- cupy_v4_regblock2d (gemm_regblock2d.cu): 128×128×8 tiles, 8×8 outputs per thread, scalar loads.
- cupy_v5_vec_dbuf  (gemm_tiled.cu): v4 plus float4 loads, register-staged double buffering, conflict-free
                    fragment reads and grouped block order (cupy_opt before the warp-tiled kernel).
- cupy_v6_warptile  (gemm_warptile.cu, the v6 table): warp tiling, a 3-4 stage cp.async pipeline, a table of
                    tile configurations (and split-K) autotuned once per shape and device (gemm_tune.py).
- cupy_opt          v7 (gemm_warptile.cu, every configuration): v6 plus 128×256 tiles (8×16 per lane, one block
                    per SM; K slices of 16 and of 32); dX and dW are the same kernel with transpose flags, db a
                    two-stage deterministic column sum.

`batched_gemm` runs the v7 kernel over a batch of products (grid.z), tuned the same way: conv2d's 1x1 layers
(impls/cuda/conv2d.py), one product per image; `implicit_gemm` runs it with its B operand gathered from an image
through a reduction table: conv2d's other fprop and stride-1 dgrad layers.

Only cupy_naive and cupy_opt have a `fallback` rank: training backends never pick a ladder step.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.ops.gemm import GemmShape
from harness.registry import register
from impls.cuda import common as _cuda
from impls.cuda import gemm_tune as _tune

NAIVE, TILED, WARPTILE = "gemm_naive.cu", "gemm_tiled.cu", "gemm_warptile.cu"
SMEM, REG1D, REG2D = "gemm_smem.cu", "gemm_regblock1d.cu", "gemm_regblock2d.cu"
TILE = 128  # gemm_tiled.cu's BM = BN
GRID_Y = 65535  # the ladder kernels put row tiles on grid.y
BATCHED = ("-DGEMM_BATCHED=1",)  # gemm_warptile.cu's module of the convolution kernels (bnn, btn, igemm)


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


def _naive_details(launch: dict[str, tuple[int, int]]):
    return lambda s: _cuda.attributes(NAIVE, list(launch), launch=launch)


@register("gemm", "fwd", name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=2,
          details=_naive_details({"gemm_naive": (256, 0)}))
def gemm_fwd_naive(s: GemmShape, x, w, b=None, *, y):
    """v1: Y = X·W (+ b, ReLU), one thread per output element."""
    _naive_gemm(x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, 1, s.N, 1, s.relu)


@register("gemm", "bwd", name="cupy_naive", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=2,
          details=_naive_details({"gemm_naive": (256, 0), "colsum_naive": (256, 0)}))
def gemm_bwd_naive(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ and dW = Xᵀ·dY with the naive kernel through strides; db one thread per column."""
    _naive_gemm(dy, w, dx, None, s.M, s.K, s.N, s.N, 1, 1, s.N, False)  # Wᵀ(l, j) = w[j·N + l]
    _naive_gemm(x, dy, dw, None, s.K, s.N, s.M, 1, s.K, s.N, 1, False)  # Xᵀ(i, l) = x[l·K + i]
    _cuda.kernel(NAIVE, "colsum_naive")((_cuda.blocks(s.N, 256),), (256,), (dy, db, _i32(s.M), _i32(s.N)))


# ---------------------------------------------------------------- ladder steps v2-v4 (forward only)
def _ladder_supports(tile_m: int):
    """supports= of a ladder kernel whose row tiles of `tile_m` go on grid.y (at most 65535 of them)."""
    def supports(s: GemmShape) -> str | None:
        if _cuda.blocks(s.M, tile_m) > GRID_Y:
            return f"M = {s.M} needs more than {GRID_Y} row tiles of {tile_m} on grid.y"
        return None
    return supports


def _ladder(file: str, func: str, block: tuple[int, int], tile: tuple[int, int], s: GemmShape, x, w, b, y):
    """Launch one ladder kernel: Y = X·W (+ b, ReLU), grid (N tiles, M tiles) of tile = (BN, BM)."""
    grid = (_cuda.blocks(s.N, tile[0]), _cuda.blocks(s.M, tile[1]))
    bias = b if s.bias else _cuda.NULL
    _cuda.kernel(file, func)(grid, block, (x, w, y, bias, _i32(s.M), _i32(s.N), _i32(s.K), _i32(s.relu)))


def _ladder_details(file: str, func: str, threads: int):
    return lambda s: _cuda.attributes(file, [func], launch={func: (threads, 0)})


@register("gemm", "fwd", name="cupy_v2_smem", device="gpu", math="fp32", available=_cuda.available,
          family="own", supports=_ladder_supports(32), details=_ladder_details(SMEM, "gemm_smem", 1024))
def gemm_fwd_v2_smem(s: GemmShape, x, w, b=None, *, y):
    """v2: 32×32 shared-memory tiles, one output per thread (2 shared loads per FMA)."""
    _ladder(SMEM, "gemm_smem", (32, 32), (32, 32), s, x, w, b, y)


@register("gemm", "fwd", name="cupy_v3_regblock1d", device="gpu", math="fp32", available=_cuda.available,
          family="own", supports=_ladder_supports(64), details=_ladder_details(REG1D, "gemm_regblock1d", 512))
def gemm_fwd_v3_regblock1d(s: GemmShape, x, w, b=None, *, y):
    """v3: 64×64×8 tiles, 8 outputs of one column per thread (1-D register blocking)."""
    _ladder(REG1D, "gemm_regblock1d", (512,), (64, 64), s, x, w, b, y)


@register("gemm", "fwd", name="cupy_v4_regblock2d", device="gpu", math="fp32", available=_cuda.available,
          family="own", supports=_ladder_supports(128), details=_ladder_details(REG2D, "gemm_regblock2d", 256))
def gemm_fwd_v4_regblock2d(s: GemmShape, x, w, b=None, *, y):
    """v4: 128×128×8 tiles, 8×8 outputs per thread (2-D register blocking), scalar loads, one buffer."""
    _ladder(REG2D, "gemm_regblock2d", (256,), (128, 128), s, x, w, b, y)


# ---------------------------------------------------------------- v5: gemm_tiled.cu
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


@register("gemm", "fwd", name="cupy_v5_vec_dbuf", device="gpu", math="fp32", available=_cuda.available,
          family="own",
          details=lambda s: _cuda.attributes(TILED, ["sgemm_tiled_nn"], launch={"sgemm_tiled_nn": (256, 0)}))
def gemm_fwd_v5_vec_dbuf(s: GemmShape, x, w, b=None, *, y):
    """v5: v4 + float4 loads, register-staged double buffering, conflict-free reads, grouped block order."""
    _tiled_gemm("sgemm_tiled_nn", x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, s.N, s.relu,
                _aligned(x, s.K), _aligned(w, s.N))


# ---------------------------------------------------------------- v6: cupy_opt, gemm_warptile.cu
_CACHE: _tune.TuneCache | None = None
_CHOSEN: dict[tuple, tuple[_tune.Config, str]] = {}  # (v6, layout, M, N, K, bias, relu, batch) -> (config, how)
_SMEM_SET: set[tuple[int, str]] = set()  # (device, kernel) whose dynamic shared-memory limit was raised


def _cache() -> _tune.TuneCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = _tune.TuneCache(_tune.cache_path())
    return _CACHE


def device() -> tuple[int, str, int, int]:
    """(device id, name, multiprocessor count, opt-in shared memory per block) of the current device."""
    import cupy

    dev = cupy.cuda.Device().id
    return (dev, *_device_props(dev))


@functools.cache
def _device_props(dev: int) -> tuple[str, int, int]:
    import cupy

    p = cupy.cuda.runtime.getDeviceProperties(dev)
    name = p["name"].decode() if isinstance(p["name"], bytes) else str(p["name"])
    return name, int(p["multiProcessorCount"]), int(p.get("sharedMemPerBlockOptin", p["sharedMemPerBlock"]))


def grid_note(cfg: _tune.Config, m: int, n: int, batch: int, attrs: dict) -> str:
    """How a launch of `cfg` on an m×n product (`batch` of them) fills the GPU: its blocks and the share of its
    waves' resident-block slots (SMs × the kernel's blocks per SM, `attrs`' occupancy) they keep busy."""
    occupancy = attrs.get("occupancy")
    if not occupancy:
        return ""
    blocks = _tune.tiles(cfg.tile, m, n) * cfg.splits * batch
    slots = device()[2] * occupancy
    waves = -(-blocks // slots)
    return (f", {blocks} blocks for {slots} slots: {_tune.wave_fill(blocks, slots):.0%} of "
            f"{waves} wave{'s' if waves > 1 else ''}")


def _wt_func(cfg: _tune.Config, layout: str) -> str:
    return f"sgemm_wt_{cfg.tile.name}_{layout}"


def _batched(layout: str) -> bool:
    """Whether a layout's kernels are the batched ones (bnn, btn: a product per grid.z, no split-K)."""
    return layout.startswith("b")


def _defines(layout: str) -> tuple[str, ...]:
    """The module of a layout's kernels: the convolution module for the batched ones and igemm."""
    return BATCHED if _batched(layout) or layout == "igemm" else ()


def _wt_kernel(cfg: _tune.Config, layout: str, dev: int):
    """The kernel of one configuration and layout, its dynamic shared-memory limit raised once per device."""
    func = _wt_func(cfg, layout)
    kern = _cuda.kernel(WARPTILE, func, _defines(layout))
    if (dev, func) not in _SMEM_SET:
        kern.max_dynamic_shared_size_bytes = cfg.tile.smem
        _SMEM_SET.add((dev, func))
    return kern


def _wt_launch(cfg: _tune.Config, layout: str, dev: int, a, b, c, bias, m: int, n: int, k: int, lda: int,
               ldb: int, relu: bool, vec_a: bool, vec_b: bool, batch: int = 1,
               strides: tuple[int, int, int] = (0, 0, 0), vec_c: bool | None = None, tail: tuple = (),
               reduce=None) -> None:
    """C (m×n, ldc = n) = A·B (+ bias, ReLU) with one configuration. A batched layout (bnn, btn) runs `batch`
    products on grid.z, `strides` (elements of A, B, C) apart, and is never split. A split product writes its
    partials to an m×n workspace and reduce(ws, splits) sums them into C with the bias and ReLU (splitk_reduce by
    default). `vec_c`: whether C's rows take float4 stores (default: C's alignment at ldc = n); `tail`: the kernel's
    arguments after the common ones (igemm's table and geometry)."""
    import cupy

    kern = _wt_kernel(cfg, layout, dev)
    tiles = _tune.tiles(cfg.tile, m, n)
    kps = _tune.k_per_split(k, cfg.splits, cfg.tile.bk)
    splits = _cuda.blocks(k, kps)
    bias_arg = _cuda.NULL if bias is None else bias
    batched = _batched(layout)

    def run(grid, out, bias_, relu_, vec_out, extra):
        kern(grid, (cfg.tile.threads,),
             (a, b, out, bias_, _i32(m), _i32(n), _i32(k), _i64(lda), _i64(ldb), _i64(n), _i32(relu_), _i32(vec_a),
              _i32(vec_b), _i32(vec_out), _i32(kps), *extra, *tail), shared_mem=cfg.tile.smem)

    if splits == 1:
        vec_out = _aligned(c, n, strides[2]) if vec_c is None else vec_c
        run((tiles, 1, batch), c, bias_arg, relu, vec_out, tuple(_i64(v) for v in strides) if batched else ())
        return
    assert not batched and batch == 1, "a batch of products is never split"
    ws = cupy.empty((splits, m, n), dtype=cupy.float32)
    run((tiles, splits), ws, _cuda.NULL, False, _aligned(ws, n), ())  # the kernel adds no bias to a partial
    if reduce is not None:
        reduce(ws, splits)
        return
    mn = m * n
    _cuda.kernel(WARPTILE, "splitk_reduce")((min(_cuda.blocks(mn, 256), 65535),), (256,),
                                            (ws, c, bias_arg, _i64(mn), _i32(n), _i32(splits), _i32(relu)))


def _plan(layout: str, m: int, n: int, k: int, bias: bool, relu: bool, vec: tuple[bool, ...],
          launch, v6: bool = False, batch: int = 1, splits: tuple[int, ...] = _tune.SPLITS) -> None:
    """Run C = A·B (`batch` of them) with the configuration cached for this key, tuning it first when there is
    none (and tuning is on and the stream is not being captured into a graph); launch(cfg) does the work. `v6`:
    only the v6 table (cupy_v6_warptile, tuned and cached apart); `splits`: the split-K factors the tuner tries."""
    _, name, sms, smem_limit = device()
    key = ("v6 " if v6 else "") + _tune.key(layout, m, n, k, bias, relu, vec, batch)
    splittable = not _batched(layout)
    cfg, how = _tune.choose(
        _cache(), name, key,
        lambda: _tune.candidates(m, n, k, sms, smem_limit, names=_tune.V6_TILES if v6 else None, batch=batch,
                                 splittable=splittable, splits=splits),
        launch, lambda: (_tune.heuristic(m, n, k, sms, smem_limit, batch, splittable), "heuristic"))
    _CHOSEN[(v6, layout, m, n, k, bias, relu, batch)] = (cfg, how)


def _wt_gemm(layout: str, a, b, c, bias, m: int, n: int, k: int, lda: int, ldb: int, relu: bool,
             vec_a: bool, vec_b: bool, v6: bool = False) -> None:
    """C = A·B (+ bias, ReLU) through the tuned configuration of this product (`v6`: among the v6 table only)."""
    dev = device()[0]

    def launch(cfg: _tune.Config) -> None:
        _wt_launch(cfg, layout, dev, a, b, c, bias, m, n, k, lda, ldb, relu, vec_a, vec_b)

    _plan(layout, m, n, k, bias is not None, relu, (vec_a, vec_b, _aligned(c, n)), launch, v6)


def batched_gemm(layout: str, a, b, c, bias, m: int, n: int, k: int, lda: int, ldb: int, batch: int,
                 strides: tuple[int, int, int], relu: bool = False) -> None:
    """C_z = A_z·B_z (+ bias per row, ReLU) for z < batch in one launch (grid.z = z), A_z = a + z·strides[0],
    B_z = b + z·strides[1], C_z = c + z·strides[2] (elements; ldc = n): layout "bnn" (A k-contiguous, as nn) or
    "btn" (A m-contiguous, as tn). Tuned once per shape among the tiles, without split-K."""
    dev = device()[0]
    vec = (_aligned(a, lda, strides[0]), _aligned(b, ldb, strides[1]), _aligned(c, n, strides[2]))

    def launch(cfg: _tune.Config) -> None:
        _wt_launch(cfg, layout, dev, a, b, c, bias, m, n, k, lda, ldb, relu, vec[0], vec[1], batch, strides)

    _plan(layout, m, n, k, bias is not None, relu, vec, launch, batch=batch)


def implicit_gemm(a, src, out, bias, m: int, n: int, k: int, tab, geo: tuple[int, ...], tag: str,
                  relu: bool = False, splits: tuple[int, ...] = _tune.SPLITS) -> None:
    """out = A·B (+ bias per row, ReLU) on the v7 kernel with B gathered from `src` (gemm_warptile.cu's igemm
    kernels): A (m×k, k-contiguous) the weights, B (k×n) the image's columns through the reduction table `tab`
    (int32 pairs, padded to a multiple of 32) and geo = (PQ, Q, uh, uw, oh, ow, Hs, Ws, src_img, out_img, out_chan,
    out_base, out_row, out_col) (ConvGeo); output element (row, column j) at row·out_chan + conv_col(j), float4
    stores only where the columns are the output plane itself. Tuned once per `tag` (the layer) among the tiles and
    the split-K factors `splits`; a split product writes its partials to an m×n workspace that conv_splitk_reduce
    sums."""
    dev = device()[0]
    pq, q, out_img, out_chan, out_base, out_row, out_col = geo[0], geo[1], *geo[9:]
    dense = (out_chan, out_base, out_row, out_col) == (pq, 0, q, 1)
    vec_a, vec_c = _aligned(a, k), dense and _aligned(out, pq)
    bias_arg = _cuda.NULL if bias is None else bias
    tail = (tab, *(_i32(v) for v in geo[:8]), *(_i64(v) for v in geo[8:12]), _i32(out_row), _i32(out_col))

    def reduce(ws, splits: int) -> None:
        _cuda.kernel(WARPTILE, "conv_splitk_reduce", BATCHED)(
            (min(_cuda.blocks(m * n, 256), 65535),), (256,),
            (ws, out, bias_arg, _i32(m), _i32(n), _i32(pq), _i32(q), _i64(out_img), _i64(out_chan), _i64(out_base),
             _i32(out_row), _i32(out_col), _i32(splits), _i32(relu)))

    def launch(cfg: _tune.Config) -> None:  # lda = k; ldb, vec_b unused (B is gathered)
        _wt_launch(cfg, "igemm", dev, a, src, out, bias, m, n, k, k, 0, relu, vec_a, False, vec_c=vec_c, tail=tail,
                   reduce=reduce)

    _plan(f"igemm {tag}", m, n, k, bias is not None, relu, (vec_a, vec_c), launch, splits=splits)


def igemm_details(tag: str, m: int, n: int, k: int, bias: bool, relu: bool) -> dict:
    """details of one implicit_gemm product: its chosen kernels (resources, occupancy) and the choice, once run."""
    chosen = _CHOSEN.get((False, f"igemm {tag}", m, n, k, bias, relu, 1))
    if chosen is None:
        return {"note": f"implicit GEMM {m}x{n}x{k} on the v7 kernel: not run yet"}
    cfg, how = chosen
    func = _wt_func(cfg, "igemm")
    launch = {func: (cfg.tile.threads, cfg.tile.smem)}
    if cfg.splits > 1:
        launch["conv_splitk_reduce"] = (256, 0)
    found = _cuda.attributes(WARPTILE, list(launch), launch=launch, defines=BATCHED)
    grid = grid_note(cfg, m, n, 1, found["kernels"][func])
    return {**found, "note": f"implicit GEMM {m}x{n}x{k} on the v7 kernel (gemm_warptile.cu): {cfg.name} ({how})"
                             f"{grid}"}


def batched_details(layout: str, m: int, n: int, k: int, bias: bool, relu: bool, batch: int) -> dict:
    """details of one batched_gemm product: its chosen kernel (resources, occupancy) and the choice, once run."""
    chosen = _CHOSEN.get((False, layout, m, n, k, bias, relu, batch))
    if chosen is None:
        return {"note": f"batched {layout} GEMM {batch} x {m}x{n}x{k}: not run yet"}
    cfg, how = chosen
    func = _wt_func(cfg, layout)
    found = _cuda.attributes(WARPTILE, [func], launch={func: (cfg.tile.threads, cfg.tile.smem)}, defines=BATCHED)
    grid = grid_note(cfg, m, n, batch, found["kernels"][func])
    return {**found, "note": f"batched {layout} GEMM {batch} x {m}x{n}x{k} (gemm_warptile.cu): {cfg.name} ({how})"
                             f"{grid}"}


def _wt_details(products, v6: bool = False):
    """details(shape) of cupy_opt (cupy_v6_warptile when `v6`): the chosen kernel of each product (resources,
    occupancy) and the choice in the note. `products(shape)` lists (layout, M, N, K, bias, relu) of the call's
    products."""
    def details(s: GemmShape) -> dict:
        kernels, notes = {}, []
        for prod in products(s):
            chosen = _CHOSEN.get((v6, *prod, 1))
            if chosen is None:
                continue
            cfg, how = chosen
            func = _wt_func(cfg, prod[0])
            found = _cuda.attributes(WARPTILE, [func], launch={func: (cfg.tile.threads, cfg.tile.smem)})["kernels"]
            kernels.update(found)
            notes.append(f"{prod[0]}: {cfg.name} ({how}){grid_note(cfg, prod[1], prod[2], 1, found[func])}")
        out = {"kernels": kernels} if kernels else {}
        if notes:
            out["note"] = "; ".join(notes)
        return out
    return details


def _fwd_products(s: GemmShape) -> list[tuple]:
    return [("nn", s.M, s.N, s.K, s.bias, s.relu)]


def _bwd_products(s: GemmShape) -> list[tuple]:
    return [("nt", s.M, s.K, s.N, False, False), ("tn", s.K, s.N, s.M, False, False)]


@register("gemm", "fwd", name="cupy_v6_warptile", device="gpu", math="fp32", available=_cuda.available,
          family="own", details=_wt_details(_fwd_products, v6=True))
def gemm_fwd_v6_warptile(s: GemmShape, x, w, b=None, *, y):
    """v6: warp tiles, 3-4 stage cp.async pipeline, tile configuration (and split-K) autotuned per shape."""
    _wt_gemm("nn", x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, s.N, s.relu,
             _aligned(x, s.K), _aligned(w, s.N), v6=True)


@register("gemm", "fwd", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1, details=_wt_details(_fwd_products))
def gemm_fwd_opt(s: GemmShape, x, w, b=None, *, y):
    """v7: v6 plus 128×256 tiles (8×16 per lane), tile configuration (and split-K) autotuned per shape."""
    _wt_gemm("nn", x, w, y, b if s.bias else None, s.M, s.N, s.K, s.K, s.N, s.relu,
             _aligned(x, s.K), _aligned(w, s.N))


@register("gemm", "bwd", name="cupy_opt", device="gpu", math="fp32", available=_cuda.available,
          family="own", fallback=1, details=_wt_details(_bwd_products))
def gemm_bwd_opt(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ and dW = Xᵀ·dY with the v7 kernel's transpose layouts (each tuned); db = column sums of dY."""
    _wt_gemm("nt", dy, w, dx, None, s.M, s.K, s.N, s.N, s.N, False, _aligned(dy, s.N), _aligned(w, s.N))
    _wt_gemm("tn", x, dy, dw, None, s.K, s.N, s.M, s.K, s.N, False, _aligned(x, s.K), _aligned(dy, s.N))
    column_sums(dy, db, s.M, s.N)
