"""cupy_opt's small-layer kernels (conv_{fprop,dgrad}_128x32_s and conv_wgrad_32x128_s: BK = 32, index table in
shared memory; conv_fprop_direct for short fprop reductions, conv_fprop_direct_split for longer ones): which shapes
take them (CPU, the SM count fixed at the H200's 132), the direct kernels' index mapping emulated on the CPU, and
every split-K of them, the direct kernels and the BK = 8 choice against the float64 oracle on awkward geometry
(gpu-marked)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

import impls.cuda.conv2d as conv
from harness.ops.conv2d import SPEC, Conv2dShape
from harness.testing import assert_matches_oracle

SMALL = {
    "odd-rows-K-5": Conv2dShape(3, 7, 9, 11, 5, 3, 3, 1, 1),  # 297 rows: a partial 128-row tile, 5 of 32 columns
    "K-32-C-32": Conv2dShape(2, 32, 7, 5, 32, 3, 3, 1, 1),  # the longest thesis table (288 entries)
    "table-full-352": Conv2dShape(1, 22, 6, 6, 16, 4, 4, 1, 2),  # fprop/wgrad table exactly TAB_MAX entries
    "stride-2-phases": Conv2dShape(2, 6, 11, 9, 20, 3, 3, 2, 1),  # dgrad: 4 uneven phases
    "per-axis-dilated": Conv2dShape(2, 5, 12, 10, 7, 3, 2, stride_h=2, stride_w=1, pad_h=2, pad_w=1, dilation_h=2,
                                    dilation_w=3),
    "groups-4": Conv2dShape(2, 16, 8, 8, 24, 3, 3, 1, 1, groups=4),  # 6 columns (wgrad: rows) per group on grid.z
    "C-3-narrow-rival": Conv2dShape(4, 3, 12, 12, 16, 3, 3, 1, 1),  # dgrad: the narrow kernel's territory
    "long-wgrad-reduction": Conv2dShape(8, 3, 30, 30, 16, 3, 3, 1, 1),  # 7200 terms: many splits of 32
}
PASSES = ("fprop", "dgrad", "wgrad")


def test_table_limit_and_tiles_match_the_kernels():
    """The host's TAB_MAX, tiles and slice are the ones conv2d_implicit_gemm.cu compiles in."""
    src = (Path(conv.__file__).parent / conv.IGEMM).read_text()
    assert int(re.search(r"#define TAB_MAX (\d+)", src).group(1)) == conv.TAB_MAX
    for pass_, (bm, bn) in conv.SMALL_TILES.items():
        assert f"{pass_.upper()}(conv_{pass_}_{bm}x{bn}_s, {bm}, {bn}, 4, 4, {conv.SMALL_BK}, true," in src


def test_direct_kernel_constants_match_the_cu():
    """DIRECT_K, DIRECT_CRS and DIRECT_CRS_MAX are the DK, DCRS and DTAB conv2d_direct_small.cu compiles in."""
    src = (Path(conv.__file__).parent / conv.DIRECT).read_text()
    for name, value in (("DK", conv.DIRECT_K), ("DCRS", conv.DIRECT_CRS), ("DTAB", conv.DIRECT_CRS_MAX),
                        ("SPX", conv.SPLIT_PX), ("SPART", conv.SPLIT_PARTS)):
        assert int(re.search(rf"#define {name} (\d+)", src).group(1)) == value, name


@pytest.fixture
def h200(monkeypatch):
    monkeypatch.setattr(conv, "_sm_count", lambda: 132)


def test_thesis_layers_take_the_small_kernels_and_resnet50_does_not(h200):
    """Every thesis fprop takes the direct kernel (C = 3: a 27-term reduction) or, up to SPLIT_MAX_PIXELS output
    pixels, its split form (C = 16, 32: K ≤ 32, ≤ 352 terms); dgrad and wgrad: the model may keep the narrow or
    BK = 8 kernel on some layers; no ResNet-50 layer (K, C ≥ 64 or long tables) changes kernel."""
    thesis = [s for s in SPEC.shape_sets["thesis"] if not conv._depthwise(s)]
    assert any(s.C == 3 for s in thesis) and any(s.C > 3 for s in thesis)
    for s in thesis:
        func = conv._launch_config(s, "fprop").func
        if s.C * s.R * s.S <= conv.DIRECT_CHOSEN_CRS:
            assert func == "conv_fprop_direct", s
        else:
            assert (func == "conv_fprop_direct_split") == (s.N * s.P * s.Q <= conv.SPLIT_MAX_PIXELS), s
    for s in SPEC.shape_sets["resnet50"]:
        for pass_ in PASSES:
            assert conv._launch_config(s, pass_) == conv._launch_config(s, pass_, small=False), (s, pass_)


@pytest.mark.parametrize("shape", list(SMALL.values()), ids=list(SMALL))
@pytest.mark.parametrize("pass_", PASSES)
def test_small_launches_cover_the_reduction_once(h200, pass_, shape):
    """Each split-K of the small kernel covers every slice of 32 exactly once, no split is empty, and the grid
    stays inside grid.y."""
    rows, cols, red, zdim = conv.gemm_dims(shape, pass_)
    assert conv._small_eligible(pass_, rows, cols, red)
    ktiles = -(-red // conv.SMALL_BK)
    bm, bn = conv.SMALL_TILES[pass_]
    launches = conv.small_launches(pass_, rows, cols, red, zdim)
    assert launches[0].splits == 1
    for c in launches:
        assert c.bk == conv.SMALL_BK and c.splits * c.kt_per >= ktiles > (c.splits - 1) * c.kt_per
        assert c.tiles == -(-rows // bm) * -(-cols // bn) and c.splits <= 65535 and c.phases == zdim


def _variants(shape: Conv2dShape, pass_: str) -> list[conv.Launch]:
    """The BK = 8 choice, the small kernel unsplit and at the most splits, and the chosen launch."""
    rows, cols, red, zdim = conv.gemm_dims(shape, pass_)
    small = conv.small_launches(pass_, rows, cols, red, zdim)
    return [conv._launch_config(shape, pass_, small=False), small[0], small[-1], conv._launch_config(shape, pass_)]


def assert_forced_launch_matches_oracle(monkeypatch, launch, pass_: str, shape: Conv2dShape) -> None:
    """`launch` forced through cupy_opt's own wrapper (its plan choice bypassed), checked on the oracle's seeds with
    poisoned outputs (wgrad: the implicit GEMM only, no other variant tuned against it)."""
    with monkeypatch.context() as m:
        m.setattr(conv, "_launch_config", lambda s, p, small=True: launch)
        m.setattr(conv, "variants", lambda s, p: ("igemm",))
        assert_matches_oracle("conv2d", pass_, "cupy_opt", [shape])


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(SMALL.values()), ids=list(SMALL))
@pytest.mark.parametrize("pass_", PASSES)
def test_every_small_variant_matches_the_oracle(monkeypatch, pass_, shape):
    """Each variant forced through cupy_opt's own wrapper, checked on the oracle's seeds with poisoned outputs."""
    for launch in _variants(shape, pass_):
        assert_forced_launch_matches_oracle(monkeypatch, launch, pass_, shape)


@pytest.mark.gpu
@pytest.mark.parametrize("splits", [31, 36, 72])
def test_fprop_with_many_splits_sums_them_with_bias(monkeypatch, splits):
    """Forced split-K on both sides of WARP_REDUCE_SPLITS (splitk_reduce, then splitk_reduce_warp) in fprop, where
    the reduction also adds the bias: 72 slices of 8, one slice per split at 72."""
    shape = Conv2dShape(2, 64, 5, 5, 16, 3, 3, 1, 1)
    ktiles = -(-shape.Cg * shape.R * shape.S // conv.BK)
    kt_per = -(-ktiles // splits)
    tiles = -(-shape.N * shape.P * shape.Q // 256)
    launch = conv.Launch("conv_fprop_256x16", 256, 16, tiles, -(-ktiles // kt_per), kt_per, 1)
    assert (launch.splits >= conv.WARP_REDUCE_SPLITS) == (splits >= conv.WARP_REDUCE_SPLITS)
    assert_forced_launch_matches_oracle(monkeypatch, launch, "fprop", shape)


DIRECT = {
    **{k: v for k, v in SMALL.items() if v.groups == 1},  # 352 = DTAB terms, chunks of 32 with a partial last one
    "K-40-three-chunks": Conv2dShape(3, 3, 13, 7, 40, 3, 3, 1, 1),  # 16 + 16 + 8 channels
    "one-term": Conv2dShape(2, 1, 5, 6, 3, 1, 1, 1, 0),  # C·R·S = 1
    "exactly-32-terms-stride-3": Conv2dShape(2, 2, 17, 19, 17, 4, 4, 3, 2),  # one full chunk, stride 3, pad 2
}


@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_launch_grid(shape):
    """The direct launch's blocks cover every pixel × channel chunk, its round trips every reduction term."""
    launch = conv.direct_launch(shape)
    crs = shape.C * shape.R * shape.S
    assert launch.tiles == -(-shape.N * shape.P * shape.Q // 256) * -(-shape.K // conv.DIRECT_K)
    assert launch.splits == 1 and launch.kt_per * conv.DIRECT_CRS >= crs > (launch.kt_per - 1) * conv.DIRECT_CRS


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_fprop_matches_the_oracle(monkeypatch, shape):
    """conv_fprop_direct forced through cupy_opt's wrapper, on the oracle's seeds with poisoned outputs."""
    launch = conv.direct_launch(shape)
    assert_forced_launch_matches_oracle(monkeypatch, launch, "fprop", shape)


def emulate_direct(s: Conv2dShape, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What conv_fprop_direct computes, driven by the table the host uploads (conv.fprop_table): per pixel (n, p,
    q), offsets xbase + t.x into the flat x where h0 + t.y, w0 + t.z lie inside, times w[k, i], + bias."""
    tab = conv.fprop_table(s)
    crs = s.C * s.R * s.S
    n, p, q = np.meshgrid(np.arange(s.N), np.arange(s.P), np.arange(s.Q), indexing="ij")
    h0, w0 = p * s.stride_h - s.pad_h, q * s.stride_w - s.pad_w
    xbase = n * s.C * s.H * s.W + h0 * s.W + w0
    acc = np.zeros((s.N, s.P, s.Q, s.K))
    for i in range(crs):
        tx, ty, tz, _ = tab[i]
        ih, iw = h0 + ty, w0 + tz
        inside = (ih >= 0) & (ih < s.H) & (iw >= 0) & (iw < s.W)
        xv = np.where(inside, x.ravel()[np.where(inside, xbase + tx, 0)], 0.0)
        acc += xv[..., None] * w.reshape(s.K, crs)[:, i]
    return acc.transpose(0, 3, 1, 2) + b[None, :, None, None]


def brute_fprop(s: Conv2dShape, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fprop formula term by term (one group), over x zero-padded by enough on every side."""
    pad = max(s.pad_h, s.pad_w) + (max(s.R, s.S) - 1) * max(s.dilation_h, s.dilation_w) + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad + s.H), (pad, pad + s.W)))
    y = np.zeros((s.N, s.K, s.P, s.Q)) + b[None, :, None, None]
    for c in range(s.C):
        for r in range(s.R):
            for t in range(s.S):
                h = pad - s.pad_h + r * s.dilation_h + s.stride_h * np.arange(s.P)
                v = pad - s.pad_w + t * s.dilation_w + s.stride_w * np.arange(s.Q)
                patch = xp[:, c][:, h][:, :, v]
                y += w[None, :, c, r, t, None, None] * patch[:, None]
    return y


@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_kernel_indexing_emulated(shape):
    """On the CPU: the direct kernel's table-driven gathers equal the formula (stride, padding, dilation)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (shape.N, shape.C, shape.H, shape.W))
    w = rng.uniform(-1, 1, (shape.K, shape.C, shape.R, shape.S))
    b = rng.uniform(-1, 1, shape.K)
    np.testing.assert_allclose(emulate_direct(shape, x, w, b), brute_fprop(shape, x, w, b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_split_launch_grid(shape):
    """The split launch's blocks cover every pixel × channel chunk; one part's round trips cover its terms, and the
    parts cover the reduction (at most 2 round trips up to DIRECT_CRS_MAX terms)."""
    launch = conv.direct_split_launch(shape)
    crs = shape.C * shape.R * shape.S
    part = -(-crs // conv.SPLIT_PARTS)
    assert launch.tiles == -(-shape.N * shape.P * shape.Q // conv.SPLIT_PX) * -(-shape.K // conv.DIRECT_K)
    assert part * conv.SPLIT_PARTS >= crs and launch.kt_per * conv.DIRECT_CRS >= part
    assert launch.splits == 1 and launch.kt_per <= 2


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_split_fprop_matches_the_oracle(monkeypatch, shape):
    """conv_fprop_direct_split forced through cupy_opt's wrapper, on the oracle's seeds with poisoned outputs."""
    launch = conv.direct_split_launch(shape)
    assert_forced_launch_matches_oracle(monkeypatch, launch, "fprop", shape)


def split_filters(s: Conv2dShape, w: np.ndarray, flip: bool) -> np.ndarray:
    """The (C·R·S) × K filter matrix direct_split<FLIP> stages in shared memory, index by index from the flat w:
    entry i of channel c reads w[c·CRS + i], or with FLIP (s: the dgrad's equivalent fprop, w: the layer's filters)
    w[(kk·K + c)·R·S + R·S − 1 − rs] for i = kk·R·S + rs."""
    crs, rs_n, wf = s.C * s.R * s.S, s.R * s.S, w.ravel()
    out = np.empty((crs, s.K))
    for i in range(crs):
        kk, rs = divmod(i, rs_n)
        for c in range(s.K):
            out[i, c] = wf[(kk * s.K + c) * rs_n + rs_n - 1 - rs] if flip else wf[c * crs + i]
    return out


def emulate_direct_split(s: Conv2dShape, x: np.ndarray, filters: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What conv_fprop_direct_split computes, index by index: per block (bx, by) and thread t, pixel m = bx·SPX +
    t % SPX and part t / SPX gather the terms [part·L, min((part + 1)·L, CRS)) in chunks of DCRS through the host's
    table; the partials land in red[part][j][px]; then thread t sums outputs o = t + 256·i (channel o / SPX, pixel
    o % SPX) over the parts in order and writes flat y[(n·K + k0 + j)·PQ + pq], + bias. Unwritten outputs stay NaN."""
    tab = conv.fprop_table(s)
    crs, pq_n, npq = s.C * s.R * s.S, s.P * s.Q, s.N * s.P * s.Q
    wt = np.zeros((crs, -(-s.K // conv.DIRECT_K) * conv.DIRECT_K))
    wt[:, :s.K] = filters  # the shared filters (split_filters), zero past K
    xf, y = x.ravel(), np.full(s.N * s.K * pq_n, np.nan)
    spx, parts, nt, dk = conv.SPLIT_PX, conv.SPLIT_PARTS, 256, conv.DIRECT_K
    length = -(-crs // parts)
    for bx in range(-(-npq // spx)):
        for by in range(-(-s.K // dk)):
            k0 = by * dk
            red = np.zeros((parts, dk, spx))
            for t in range(nt):
                px, part = t % spx, t // spx
                m, lo = bx * spx + px, part * length
                hi = min(lo + length, crs)
                if m >= npq or lo >= hi:
                    continue
                n, pq = divmod(m, pq_n)
                p, q = divmod(pq, s.Q)
                h0, w0 = p * s.stride_h - s.pad_h, q * s.stride_w - s.pad_w
                xbase = n * s.C * s.H * s.W + h0 * s.W + w0
                for base in range(lo, hi, conv.DIRECT_CRS):
                    for i in range(base, min(base + conv.DIRECT_CRS, hi)):
                        tx, ty, tz, _ = tab[i]
                        inside = 0 <= h0 + ty < s.H and 0 <= w0 + tz < s.W
                        red[part, :, px] += (xf[xbase + tx] if inside else 0.0) * wt[i, k0:k0 + dk]
            for i in range(spx * dk // nt):
                for t in range(nt):
                    o = t + i * nt
                    j, opx = divmod(o, spx)
                    mo = bx * spx + opx
                    if mo < npq and k0 + j < s.K:
                        n, pq = divmod(mo, pq_n)
                        y[(n * s.K + k0 + j) * pq_n + pq] = red[:, j, opx].sum() + b[k0 + j]
    return y.reshape(s.N, s.K, s.P, s.Q)


@pytest.mark.parametrize("shape", list(DIRECT.values()), ids=list(DIRECT))
def test_direct_split_kernel_indexing_emulated(shape):
    """On the CPU: the split kernel's parts, partial sums and output mapping equal the formula, every output
    written (no NaN left), for stride, padding, dilation, partial pixel blocks and channel chunks."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (shape.N, shape.C, shape.H, shape.W))
    w = rng.uniform(-1, 1, (shape.K, shape.C, shape.R, shape.S))
    b = rng.uniform(-1, 1, shape.K)
    got = emulate_direct_split(shape, x, split_filters(shape, w, flip=False), b)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, brute_fprop(shape, x, w, b), rtol=0, atol=1e-12)


def brute_dgrad(s: Conv2dShape, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The dgrad formula term by term (one group): every dy[n, k, p, q]·w[k, c, r, t] added into dx at h = p·uh −
    ph + r·dh, w = q·uw − pw + t·dw (over a dx padded by enough on every side, then cropped)."""
    pad = max(s.pad_h, s.pad_w) + 1
    dx = np.zeros((s.N, s.C, s.H + 2 * pad + s.R * s.dilation_h, s.W + 2 * pad + s.S * s.dilation_w))
    for r in range(s.R):
        for t in range(s.S):
            h = pad - s.pad_h + r * s.dilation_h + s.stride_h * np.arange(s.P)
            v = pad - s.pad_w + t * s.dilation_w + s.stride_w * np.arange(s.Q)
            dx[:, :, h[:, None], v[None, :]] += np.einsum("nkpq,kc->ncpq", dy, w[:, :, r, t])
    return dx[:, :, pad:pad + s.H, pad:pad + s.W]


DGRAD = {
    **{k: v for k, v in DIRECT.items() if conv.dgrad_split_eligible(v)},
    "dilated-stride-1": Conv2dShape(2, 5, 9, 11, 6, 3, 2, stride=1, pad_h=2, pad_w=1, dilation_h=2, dilation_w=3),
    "C-40-three-chunks": Conv2dShape(2, 40, 5, 7, 8, 3, 3, 1, 1),  # dx channels 16 + 16 + 8
    "pad-0": Conv2dShape(2, 4, 7, 6, 9, 3, 3, 1, 0),
}


def test_dgrad_split_covers_the_expected_shapes():
    """The dgrad cases include the thesis-like ones (K·R·S = 144, 288, 352 terms) and every eligible one maps onto
    an fprop of dy whose output is exactly dx (H × W)."""
    assert {"K-32-C-32", "C-3-narrow-rival", "table-full-352", "one-term"} <= set(DGRAD)
    for s in DGRAD.values():
        assert conv.dgrad_split_eligible(s), s
        geo = conv.dgrad_as_fprop(s)
        assert (geo.N, geo.C, geo.H, geo.W, geo.K, geo.P, geo.Q) == (s.N, s.K, s.P, s.Q, s.C, s.H, s.W)


@pytest.mark.parametrize("shape", list(DGRAD.values()), ids=list(DGRAD))
def test_dgrad_split_kernel_indexing_emulated(shape):
    """On the CPU: conv_dgrad_direct_split (the split kernel run on dgrad_as_fprop's geometry and table, filters
    loaded flipped) equals the dgrad formula, every dx element written."""
    rng = np.random.default_rng(2)
    dy = rng.uniform(-1, 1, (shape.N, shape.K, shape.P, shape.Q))
    w = rng.uniform(-1, 1, (shape.K, shape.C, shape.R, shape.S))
    geo = conv.dgrad_as_fprop(shape)
    got = emulate_direct_split(geo, dy, split_filters(geo, w, flip=True), np.zeros(shape.C))
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, brute_dgrad(shape, dy, w), rtol=0, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(DGRAD.values()), ids=list(DGRAD))
def test_dgrad_split_matches_the_oracle(monkeypatch, shape):
    """conv_dgrad_direct_split forced through cupy_opt's wrapper, on the oracle's seeds with poisoned outputs."""
    launch = conv.direct_split_launch(conv.dgrad_as_fprop(shape), "conv_dgrad_direct_split")
    assert_forced_launch_matches_oracle(monkeypatch, launch, "dgrad", shape)


def test_thesis_dgrad_takes_the_split_kernel(h200):
    """Every thesis dgrad (stride 1, C ≤ 32, K·R·S ≤ 288) with at most SPLIT_MAX_PIXELS input pixels runs
    conv_dgrad_direct_split, and the larger ones keep the kernels that measured faster there."""
    taken = 0
    for s in SPEC.shape_sets["thesis"]:
        if not conv._depthwise(s):
            split = conv._launch_config(s, "dgrad").func == "conv_dgrad_direct_split"
            assert split == (s.N * s.H * s.W <= conv.SPLIT_MAX_PIXELS), s
            taken += split
    assert taken >= 4


def test_wgrad_direct_is_offered_on_the_small_thesis_layers_only():
    """conv_wgrad_direct is timed against the implicit GEMM on the thesis layers with ≤ SPLIT_MAX_PIXELS output
    pixels (K = 16 / 32), never on ResNet-50's (K ≥ 64); its grid covers every (c, r, s) entry and channel."""
    thesis = [s for s in SPEC.shape_sets["thesis"] if not conv._depthwise(s)]
    offered = [s for s in thesis if conv.wgrad_direct_offered(s)]
    assert offered and all(s.N * s.P * s.Q <= conv.SPLIT_MAX_PIXELS for s in offered)
    assert len(offered) == sum(s.N * s.P * s.Q <= conv.SPLIT_MAX_PIXELS for s in thesis)
    assert not any(conv.wgrad_direct_offered(s) for s in SPEC.shape_sets["resnet50"])
    for s in offered:
        ex, ek = conv.wgrad_direct_grid(s)
        assert ex * conv.WGRAD_ENTRIES >= s.C * s.R * s.S > (ex - 1) * conv.WGRAD_ENTRIES
        assert ek * conv.DIRECT_K >= s.K > (ek - 1) * conv.DIRECT_K
    big = [s for s in thesis if not conv.wgrad_direct_offered(s) and s.K < conv.POINTWISE_MIN_ROWS]
    assert big and conv.chosen(big[0], "wgrad") == ("igemm", "rule")  # nothing else offered: no tuning


def test_wgrad_direct_constants_match_the_cu():
    src = (Path(conv.__file__).parent / conv.DIRECT).read_text()
    assert int(re.search(r"#define WE (\d+)", src).group(1)) == conv.WGRAD_ENTRIES
    assert int(re.search(r"#define WPARTS (\d+)", src).group(1)) == conv.WGRAD_PARTS
    assert conv.WGRAD_ENTRIES * conv.DIRECT_K == 256  # one output of the block per thread in the final sum


WGRAD_DIRECT = {**{k: v for k, v in DIRECT.items() if v.groups == 1},
                "thesis-C16-6x6": Conv2dShape(32, 16, 6, 6, 32, 3, 3, 1, 1),  # 1152 pixels: 3 chunks
                "thesis-C32-12x12": Conv2dShape(32, 32, 12, 12, 32, 3, 3, 1, 1)}  # 288 entries, 9 chunks


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["direct", "direct_px"])
@pytest.mark.parametrize("shape", list(WGRAD_DIRECT.values()), ids=list(WGRAD_DIRECT))
def test_wgrad_direct_matches_the_oracle(monkeypatch, shape, variant):
    """conv_wgrad_direct as cupy_opt's only wgrad choice (dw and db), its pixels in one block or over several
    (direct_px), on the oracle's seeds with poisoned outputs; twice, so that a ticket left set would show."""
    monkeypatch.setattr(conv, "variants", lambda s, p: (variant,))
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")
    monkeypatch.setattr(conv, "_variant_choices", functools.cache(conv._variant_choices.__wrapped__))
    for _ in range(2):
        assert_matches_oracle("conv2d", "wgrad", "cupy_opt", [shape])
    assert conv.chosen(shape, "wgrad")[0] == variant


def test_wgrad_pixel_split_gives_every_sm_a_block_and_covers_every_pixel():
    """direct_px's Z: C16 6x6 at batch 32 (9 entry x 2 channel blocks, 1152 pixels) over 8 blocks of 160 on 132
    SMs; never fewer than WGRAD_MIN_PIXELS pixels a block, in whole parts, and Z · ppb covers the pixels."""
    shape = WGRAD_DIRECT["thesis-C16-6x6"]
    assert conv.wgrad_pixel_split(shape, 132) == (8, 160)
    assert conv.wgrad_pixel_split(Conv2dShape(1, 16, 6, 6, 32, 3, 3, 1, 1), 132) == (1, 64)  # 36 pixels: one block
    for s in [s for s in SPEC.shape_sets["thesis"] if conv.wgrad_direct_offered(s)]:
        for sms in (8, 132):
            z, ppb = conv.wgrad_pixel_split(s, sms)
            npq, (ex, ek) = s.N * s.P * s.Q, conv.wgrad_direct_grid(s)
            assert (z - 1) * ppb < npq <= z * ppb and ppb % conv.WGRAD_PART_PIXELS == 0, (s, sms)
            assert z == 1 or (ppb >= conv.WGRAD_MIN_PIXELS and (z - 1) * ex * ek < sms), (s, sms)
    assert conv.wgrad_direct_launch(shape, "direct_px", 132) == ((9, 2, 8), 160)
    assert conv.wgrad_direct_launch(shape, "direct", 132) == ((9, 2, 1), 1152)  # one block's every pixel


@pytest.mark.gpu
def test_wgrad_small_layer_is_tuned_and_named(monkeypatch):
    """A thesis layer's first wgrad call times its variants, keeps the fastest, and the row's note names it."""
    from harness.registry import get

    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")
    monkeypatch.setenv("KH_GEMM_TUNE", "1")
    monkeypatch.setattr(conv, "_variant_choices", functools.cache(conv._variant_choices.__wrapped__))
    shape = WGRAD_DIRECT["thesis-C16-6x6"]
    assert_matches_oracle("conv2d", "wgrad", "cupy_opt", [shape])
    variant, how = conv.chosen(shape, "wgrad")  # the checker's later calls launch the cached choice, keep the times
    (entries,) = conv._variant_choices().choices.values()
    assert variant in conv.variants(shape, "wgrad") and how.startswith("tuned: igemm ")
    assert list(entries.values()) == [variant]
    note = get("conv2d", "wgrad", "cupy_opt").details(shape)["note"]
    direct = variant in ("direct", "direct_px")
    assert note.startswith(f"{variant} (tuned: ") if direct else note.endswith(f"({how})")
