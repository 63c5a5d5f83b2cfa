"""cupy_opt's convolutions on the v7 SGEMM kernel (impls/cuda/conv2d.py): the implicit GEMM (warp_igemm,
gemm_warptile.cu's igemm kernels) and the lowered strided dgrad (lowered_dgrad: batched GEMM + col2im). Which layers
take them (CPU), a NumPy emulation of the igemm kernel's gather and epilogue driven by the very table and geometry
the host builds (CPU: a wrong offset, tap or origin fails here, in CI), and the layers against the float64 oracle,
every igemm tile and a split forced (gpu-marked)."""

from __future__ import annotations

import numpy as np
import pytest

import impls.cuda.conv2d as conv
from harness.ops.conv2d import SPEC, Conv2dShape
from harness.testing import assert_matches_oracle
from impls.reference import oracle


def test_resnet50_3x3_and_7x7_layers_take_it_for_fprop_and_the_stride_1_ones_for_dgrad():
    for s in SPEC.shapes("resnet50"):
        big = (s.R, s.S) != (1, 1)
        assert conv.warp_igemm(s, "fprop") == big, s
        assert conv.warp_igemm(s, "dgrad") == (big and s.stride_h == 1 and s.C >= 64), s
        assert conv.dgrad_v7_offered(s) == (big and s.stride_h == 2 and s.C >= 64), s  # the 3x3 stride-2 layer
        assert not conv.warp_igemm(s, "wgrad")
        assert not (conv.warp_igemm(s, "fprop") and conv.pointwise(s, "fprop"))
    for s in SPEC.shapes("thesis"):  # 16 / 32 filters: the small-layer kernels stay
        assert not conv.warp_igemm(s, "fprop") and not conv.warp_igemm(s, "dgrad"), s
    assert not conv.warp_igemm(Conv2dShape(2, 64, 8, 8, 64, 3, 3, 1, 1, groups=2), "fprop")  # groups: not here
    strided = Conv2dShape(2, 64, 8, 8, 64, 3, 3, 2, 1)  # a product per phase, as a variant beside the BK = 8 kernels
    assert not conv.warp_igemm(strided, "dgrad") and conv.variants(strided, "dgrad") == ("igemm", "v7")
    assert not conv.dgrad_v7_offered(Conv2dShape(2, 64, 8, 8, 64, 1, 1, 2, 0))  # phases without a tap: BK = 8
    assert not conv.dgrad_v7_offered(Conv2dShape(2, 32, 8, 8, 64, 3, 3, 2, 1))  # 32 input channels: BK = 8


def test_resnet50_stem_dgrad_is_lowered_and_nothing_else_is():
    for s in SPEC.shapes("resnet50"):
        stem = s.C == 3
        assert conv.lowered_dgrad(s) == stem, s
        if stem or conv.warp_igemm(s, "dgrad"):
            want = conv.LOWERED_DGRAD if stem else conv.WARP_IGEMM
            assert conv._plan(s, "dgrad", True, 132).func == want, s
    for set_name in ("thesis", "smoke"):
        assert not any(conv.lowered_dgrad(s) for s in SPEC.shapes(set_name) if s.stride_h == s.stride_w == 1)
    assert not conv.lowered_dgrad(Conv2dShape(2, 2, 9, 9, 8, 3, 3, 2, 1))  # C·R·S = 18 rows: the narrow kernel
    assert not conv.lowered_dgrad(Conv2dShape(2, 64, 9, 9, 64, 3, 3, 2, 1))  # 64 channels: the stride phases
    assert not conv.lowered_dgrad(Conv2dShape(2, 4, 9, 9, 64, 5, 5, 2, 1, groups=2))


def _taps(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's unpacking of t.y: row tap t.y >> 16, column tap (t.y << 16) >> 16 (int32 arithmetic)."""
    packed = packed.astype(np.int32)
    return packed >> 16, (packed << 16) >> 16


def emulate_product(tab: np.ndarray, m: int, n: int, k: int, geo: tuple, src: np.ndarray, a: np.ndarray,
                    out: np.ndarray) -> None:
    """What one sgemm_wt_*_igemm launch computes from a host table and ConvGeo: B[kg, j] gathered per GatherLoader
    (origin of column j plus the entry's taps inside the Hs × Ws plane, else 0; past the reduction the padding
    entries, which must never land), C = A·B written at m·out_chan + conv_col(j) into `out` (flat; each element
    must still be NaN: no output is written by two products)."""
    pq, q_, uh, uw, oh, ow, hs, ws, src_img, out_img, out_chan, out_base, out_row, out_col = geo
    assert len(tab) % conv.IGEMM_TAB_ALIGN == 0 and len(tab) >= k
    dr, ds = _taps(tab[:, 1])
    j = np.arange(n)
    img, pix = j // pq, j % pq
    h0, w0 = (pix // q_) * uh + oh, (pix % q_) * uw + ow
    ih, iw = h0[None, :] + dr[:, None], w0[None, :] + ds[:, None]
    inside = (ih >= 0) & (ih < hs) & (iw >= 0) & (iw < ws)
    assert not inside[k:].any(), "a padding entry landed"
    addr = img * src_img + h0 * ws + w0 + tab[:, :1].astype(np.int64)
    flat = src.ravel()
    b = np.where(inside, flat[np.clip(addr, 0, flat.size - 1)], 0.0)[:k]
    col = img * out_img + out_base + (pix // q_) * out_row + (pix % q_) * out_col
    where = np.arange(m)[:, None] * out_chan + col[None, :]
    assert np.isnan(out[where]).all(), "an output written by two products"
    out[where] = a @ b


def emulate(s: Conv2dShape, pass_: str, src: np.ndarray, w: np.ndarray) -> np.ndarray:
    """fprop or dgrad through emulate_product, product by product (a strided dgrad's phases), A the weights (dgrad:
    Wᵀ over the phase's taps, as the host builds it); unwritten elements stay NaN."""
    out = np.full(s.N * (s.K * s.P * s.Q if pass_ == "fprop" else s.C * s.H * s.W), np.nan)
    for phase in conv.igemm_phases(s, pass_):
        m, n, k, geo = conv.igemm_problem(s, pass_, phase)
        if pass_ == "fprop":
            a = w.reshape(s.K, -1)
        else:
            rt, st, _, _ = conv._phase_taps(s, phase)
            a = w[:, :, rt][:, :, :, st].reshape(s.K, s.C, -1).transpose(1, 0, 2).reshape(s.C, -1)
        emulate_product(conv.igemm_table(s, pass_, phase), m, n, k, geo, src, a, out)
    return out


SHAPES = {
    "3x3-pad": Conv2dShape(2, 5, 7, 9, 6, 3, 3, 1, 1),
    "7x7-stride-2": Conv2dShape(2, 3, 17, 15, 4, 7, 7, 2, 3),
    "per-axis": Conv2dShape(1, 4, 12, 11, 3, 5, 3, stride_h=2, stride_w=1, pad_h=2, pad_w=0),
    "dilated": Conv2dShape(2, 3, 13, 10, 5, 3, 3, 1, 2, dilation=2),
    "pad-past-filter": Conv2dShape(1, 2, 6, 6, 3, 3, 3, 1, 3),  # dgrad's origin falls outside dy on every side
    "stride-3-dilated": Conv2dShape(2, 3, 16, 14, 4, 3, 4, 3, 2, dilation=2),  # dgrad: 9 phases of 1-2 taps
    "resnet-stride-2": Conv2dShape(1, 4, 14, 14, 5, 3, 3, 2, 1),  # the 4 phases of ResNet-50's 3x3 stride-2 layer
}


@pytest.mark.parametrize("pass_", ["fprop", "dgrad"])
@pytest.mark.parametrize("s", list(SHAPES.values()), ids=list(SHAPES))
def test_the_gather_reproduces_the_oracle(s: Conv2dShape, pass_: str):
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (s.K, s.C, s.R, s.S))
    if pass_ == "fprop":
        x = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W))
        want = np.empty((s.N, s.K, s.P, s.Q))
        oracle.conv2d_fprop(s, x, w, np.zeros(s.K), y=want)
        got = emulate(s, pass_, x, w)
    else:
        dy = rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q))
        want = np.empty((s.N, s.C, s.H, s.W))
        oracle.conv2d_dgrad(s, dy, w, dx=want)
        got = emulate(s, pass_, dy, w)
    assert not np.isnan(got).any(), "some outputs were never written"
    np.testing.assert_allclose(got, want.ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("s", list(SHAPES.values()), ids=list(SHAPES))
def test_the_wgrad_gather_reproduces_the_oracle(s: Conv2dShape):
    """The v7 wgrad's table and ConvGeo (wgrad_igemm_problem) through GatherLoader's arithmetic: B[(n, p, q), (c, r,
    s)] = x at the column's origin (r·dh, s·dw) in image c plus the entry's taps, A = dYᵀ, dW row by row."""
    rng = np.random.default_rng(2)
    x, dy = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)), rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q))
    m, n, k, geo = conv.wgrad_igemm_problem(s)
    got = np.full(m * n, np.nan)
    a = dy.reshape(s.N, s.K, -1).transpose(1, 0, 2).reshape(s.K, -1)
    emulate_product(conv.wgrad_igemm_table(s), m, n, k, geo, x, a, got)
    want, db = np.empty((s.K, s.C, s.R, s.S)), np.empty(s.K)
    oracle.conv2d_wgrad(s, x, dy, dw=want, db=db)
    np.testing.assert_allclose(got, want.ravel(), rtol=1e-12, atol=1e-12)


def test_padding_entries_never_land_for_the_largest_plane_allowed():
    tab = conv.igemm_table(Conv2dShape(1, 1, 3, 3, 1, 3, 3, 1, 1), "fprop")
    dr, _ = _taps(tab[9:, 1])
    assert (dr == conv.NEVER).all() and conv.NEVER + conv.TAP_LIMIT < 0  # origin rows stay below TAP_LIMIT
    edge = Conv2dShape(1, 64, conv.TAP_LIMIT, 2, 64, 3, 3, 1, 1)
    assert not conv.warp_igemm(edge, "fprop") and not conv.warp_igemm(edge, "dgrad")


# GPU: every tile of the table and a split-K forced, on odd planes (partial tiles, 4-byte stores) and aligned ones.
GPU_SHAPES = {
    "resnet-3x3-like": Conv2dShape(3, 64, 14, 14, 96, 3, 3, 1, 1),  # P·Q = 196: float4 stores
    "odd-plane": Conv2dShape(2, 70, 9, 11, 72, 3, 3, 1, 1),  # P·Q = 99: scalar stores, partial tiles
    "stem-like": Conv2dShape(2, 3, 29, 31, 64, 7, 7, 2, 3),  # C = 3: a 147-long reduction, stride 2
    "dilated-long": Conv2dShape(2, 130, 10, 10, 64, 3, 3, 1, 2, dilation=2),  # 1170-long reduction: splits
    "stride-2-dgrad": Conv2dShape(2, 64, 15, 13, 72, 3, 3, 2, 1),  # dgrad: 4 phases of 8x7, 8x6, 7x7, 7x6 pixels
}


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(GPU_SHAPES.values()), ids=list(GPU_SHAPES))
@pytest.mark.parametrize("pass_", ["fprop", "dgrad"])
def test_every_configuration_matches_the_oracle(pass_, shape, monkeypatch):
    from impls.cuda import gemm, gemm_tune

    if conv.dgrad_v7_offered(shape) and pass_ == "dgrad":
        monkeypatch.setattr(conv, "variants", lambda s, p: ("v7",))  # the phases on v7, not tuned against BK = 8
    elif not conv.warp_igemm(shape, pass_):
        pytest.skip(f"{pass_} of this layer does not take warp_igemm")
    configs = [gemm_tune.Config(t) for t in gemm_tune.TILES.values()] + [
        gemm_tune.Config(gemm_tune.TILES["b64x64k16s4"], 3)]
    for cfg in configs:  # forced through the tuner's own hook: the heuristic returns it
        monkeypatch.setenv("KH_GEMM_TUNE", "0")
        monkeypatch.setattr(gemm_tune, "heuristic", lambda *a, cfg=cfg, **kw: cfg)
        monkeypatch.setattr(gemm, "_CACHE", gemm_tune.TuneCache(None))
        assert_matches_oracle("conv2d", pass_, "cupy_opt", [shape])
        for phase in conv.igemm_phases(shape, pass_):  # every product (a strided dgrad's phases) ran it
            m, n, k, _ = conv.igemm_problem(shape, pass_, phase)
            chosen, _ = gemm._CHOSEN[(False, f"igemm {conv._igemm_tag(shape, pass_, phase)}", m, n, k,
                                      pass_ == "fprop", False, 1)]
            assert chosen == cfg


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(GPU_SHAPES.values()), ids=list(GPU_SHAPES))
def test_wgrad_on_v7_matches_the_oracle(shape, monkeypatch):
    """cupy_opt's v7 wgrad forced (dYᵀ · im2col(x)ᵀ, the table over the output pixels), the tuner's tile and
    split-K, against the oracle on poisoned outputs."""
    monkeypatch.setattr(conv, "variants", lambda s, p: ("v7",))
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")
    assert_matches_oracle("conv2d", "wgrad", "cupy_opt", [shape])
    assert conv.chosen(shape, "wgrad") == ("v7", "rule")


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [GPU_SHAPES["odd-plane"], GPU_SHAPES["stem-like"]], ids=["odd-plane", "stem"])
def test_fprop_with_relu_matches_the_oracle(shape):
    assert_matches_oracle("conv2d_bias_relu", "fprop", "cupy_opt", [shape])


LOWERED = {
    "stem-like": Conv2dShape(2, 3, 29, 31, 64, 7, 7, 2, 3),  # C·R·S = 147 rows, P·Q = 240
    "5x5-stride-2-odd": Conv2dShape(2, 4, 13, 11, 40, 5, 5, 2, 1),  # 100 rows: partial tiles, P·Q = 42
    "per-axis-dilated": Conv2dShape(1, 2, 17, 12, 24, 7, 5, stride_h=3, stride_w=2, pad_h=2, pad_w=1, dilation=2),
    "stride-3-taps-miss": Conv2dShape(3, 4, 10, 10, 8, 4, 4, 3, 0),  # phases no tap reaches: dx = 0 there
}


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(LOWERED.values()), ids=list(LOWERED))
def test_lowered_dgrad_matches_the_oracle(shape):
    from impls.cuda import gemm

    assert conv.lowered_dgrad(shape)
    assert_matches_oracle("conv2d", "dgrad", "cupy_opt", [shape])
    layout, m, n, k = conv._lowered_product(shape)
    assert (False, layout, m, n, k, False, False, shape.N) in gemm._CHOSEN  # it ran as the batched GEMM
