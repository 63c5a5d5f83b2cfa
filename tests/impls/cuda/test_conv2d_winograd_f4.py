"""cupy_winograd_f4 (impls/cuda/conv2d_winograd.py, conv2d_winograd_f4.cu): its geometry limits and declared
algorithm, the three kernels and the batched GEMM simulated thread by thread on the host's own plan (CPU: catches
index, stride and padding errors), the float32 host model against the oracle, and the kernels themselves: from
their source on the CPU (cpu_cuda.py) and on the GPU."""

import numpy as np
import pytest
from cpu_cuda import CXX
from test_conv2d_winograd import CASES, PASSES, _direct_dgrad, _direct_fprop
from test_cpu_cuda import run_on_cpu

from harness.measure.check import ReferenceCache, algorithm_growth, check, tolerance, winograd_matrices
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import Impl, get
from harness.testing import assert_matches_oracle
from impls.cuda.conv2d_winograd import ALGORITHM_F4, ONE_CHUNK_LIMIT, POSITIONS, F4Plan, emulate, f4_plan, supports_f4

AT, G, BT = winograd_matrices(ALGORITHM_F4)
# F(4x4)'s own edges: P, Q one past a multiple of 4 (a one-row last tile), tiles not a multiple of 4 (ldt padding),
# a 4x4 output (one tile), 2x2 (a tile mostly outside).
F4_CASES = {
    **CASES,
    "one-past-a-tile": Conv2dShape(N=1, C=6, H=9, W=5, K=4, pad=1),
    "one-tile": Conv2dShape(N=1, C=3, H=6, W=6, K=2, pad=0),
    "mostly-outside": Conv2dShape(N=3, C=2, H=2, W=2, K=3, pad=1),
}
GPU_CASES = [s for name, s in F4_CASES.items() if name != "thesis-like"]


def test_declines_other_geometry_with_one_line():
    base = dict(N=1, C=4, H=8, W=8, K=4)
    for shape in (Conv2dShape(**base, R=5, S=5, pad=2), Conv2dShape(**base, stride=2, pad=1),
                  Conv2dShape(**base, dilation=2, pad=2), Conv2dShape(**base, groups=2, pad=1),
                  Conv2dShape(**base, pad=3)):
        reason = supports_f4(shape)
        assert reason and "\n" not in reason
    assert "4x4" in supports_f4(Conv2dShape(**base, R=5, S=5, pad=2))
    assert all(supports_f4(s) is None for s in F4_CASES.values())


@pytest.mark.parametrize("pass_", PASSES)
def test_registered_with_its_algorithm(pass_):
    impl = get("conv2d", pass_, "cupy_winograd_f4")
    assert impl.algorithm_for(CASES["pad-0"]) == ALGORITHM_F4 == "winograd-f4x4-3x3"
    assert impl.math == "fp32" and impl.family == "own"


def test_plan_pads_the_tile_columns_to_whole_float4s():
    plan = f4_plan(Conv2dShape(N=3, C=5, H=9, W=6, K=7, pad=1), "fprop")
    assert (plan.tp, plan.tq, plan.tiles, plan.ldt, plan.chunks()) == (3, 2, 18, 20, [(0, 18)])
    small = f4_plan(Conv2dShape(N=3, C=5, H=9, W=6, K=7, pad=1), "fprop", chunk_bytes=1)
    assert small.ldt == 4 and small.chunks() == [(0, 4), (4, 4), (8, 4), (12, 4), (16, 2)]
    # one chunk has a ceiling: a layer whose V and M pass ONE_CHUNK_LIMIT runs in chunks of about that size
    huge = f4_plan(Conv2dShape(N=256, C=256, H=56, W=56, K=256, pad=1), "fprop", chunk_bytes=None)
    assert len(huge.chunks()) == 2 and POSITIONS * (256 + 256) * huge.ldt * 4 <= ONE_CHUNK_LIMIT
    resnet = f4_plan(Conv2dShape(N=128, C=64, H=56, W=56, K=64, pad=1), "fprop", chunk_bytes=None)
    assert len(resnet.chunks()) == 1
    dgrad = f4_plan(Conv2dShape(N=3, C=5, H=9, W=6, K=7, pad=0), "dgrad")  # dy (7 × 4) padded by 2 into 9 × 6
    assert (dgrad.cin, dgrad.kout, dgrad.h, dgrad.w, dgrad.p, dgrad.q, dgrad.pad_h) == (7, 5, 7, 4, 9, 6, 2)


def _simulate(plan: F4Plan, inp: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    """The launches of _f4 in float64 (the filter transform, then per chunk of tiles the input transform, the
    GEMM and the output transform), every thread of each kernel at once (numpy vectors over the thread
    index i): the buffers are flat and NaN-filled, so a read of an element no thread wrote spreads NaN; an output
    no thread stores stays NaN, and a store twice to one element fails."""
    flat_w = w.reshape(-1)
    filters = plan.kout * plan.cin
    u = np.full(POSITIONS * filters, np.nan)
    i = np.arange(filters)  # wino4_filter
    ko, ci = i // plan.cin, i % plan.cin
    src = (ci * plan.kout + ko if plan.flip else i) * 9
    g = flat_w[src[:, None] + np.arange(9)].reshape(-1, 3, 3)
    g = g[:, ::-1, ::-1] if plan.flip else g
    ue = np.einsum("xr,irs,ys->ixy", G, g, G).reshape(-1, POSITIONS)
    for e in range(POSITIONS):
        u[e * filters + i] = ue[:, e]

    y = np.full((plan.n, plan.kout, plan.p, plan.q), np.nan)
    stores = np.zeros(y.shape, dtype=int)
    plane, mplane, per_image = plan.cin * plan.ldt, plan.kout * plan.ldt, plan.tp * plan.tq
    for t0, tc in plan.chunks():
        v = np.full(POSITIONS * plane, np.nan)
        i = np.arange(plane)  # wino4_input
        ci, t = i // plan.ldt, t0 + i % plan.ldt
        live = t < plan.n * per_image
        n, rem = np.where(live, t // per_image, 0), t % per_image
        h0, w0 = 4 * (rem // plan.tq) - plan.pad_h, 4 * (rem % plan.tq) - plan.pad_w
        d = np.zeros((plane, 6, 6))
        for a in range(6):
            for b in range(6):
                h, ww = h0 + a, w0 + b
                ok = live & (h >= 0) & (h < plan.h) & (ww >= 0) & (ww < plan.w)
                d[ok, a, b] = inp[n[ok], ci[ok], h[ok], ww[ok]]
        ve = np.einsum("ia,tab,jb->tij", BT, d, BT).reshape(-1, POSITIONS)
        for e in range(POSITIONS):
            v[e * plane + i] = ve[:, e]

        m_, n_, k_, lda, ldb, batch, (sa, sb, sc) = plan.gemm()  # batched_gemm bnn: ldc = n
        mm = np.full(batch * sc, np.nan)
        for z in range(batch):
            a_z = u[z * sa:z * sa + m_ * lda].reshape(m_, lda)[:, :k_]
            b_z = v[z * sb:z * sb + k_ * ldb].reshape(k_, ldb)[:, :n_]
            mm[z * sc:z * sc + m_ * n_] = (a_z @ b_z).reshape(-1)

        i = np.arange(plan.kout * tc)  # wino4_output
        ko, j = i // tc, i % tc
        m6 = np.stack([mm[e * mplane + ko * plan.ldt + j] for e in range(POSITIONS)], axis=1).reshape(-1, 6, 6)
        out = np.einsum("ia,tab,jb->tij", AT, m6, AT) + (0.0 if bias is None else bias[ko][:, None, None])
        n, rem = (t0 + j) // per_image, (t0 + j) % per_image
        p0, q0 = 4 * (rem // plan.tq), 4 * (rem % plan.tq)
        for r in range(4):
            for c in range(4):
                ok = (p0 + r < plan.p) & (q0 + c < plan.q)
                y[n[ok], ko[ok], p0[ok] + r, q0[ok] + c] = out[ok, r, c]
                np.add.at(stores, (n[ok], ko[ok], p0[ok] + r, q0[ok] + c), 1)
    assert stores.max() == 1
    return y


CHUNKINGS = {"one-chunk": None, "4-tile-chunks": 1}  # chunk_bytes: None, or so small that each chunk is 4 tiles


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("shape", list(F4_CASES.values()), ids=list(F4_CASES))
@pytest.mark.parametrize("pass_", PASSES)
def test_kernel_simulation_matches_direct_convolution(pass_, shape, chunking):
    """In float64 the whole pipeline equals the direct convolution to rounding (F(4x4)'s transforms are exact up
    to their 1/6, 1/12, 1/24 weights): an index error anywhere shows as O(1) errors or NaN."""
    s = shape
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (s.K, s.C, 3, 3))
    plan = f4_plan(s, pass_, CHUNKINGS[chunking])
    if pass_ == "fprop":
        x, b = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)), rng.uniform(-1, 1, s.K)
        got, want = _simulate(plan, x, w, b), _direct_fprop(x, w, b, s.pad_h, s.pad_w)
    else:
        dy = rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q))
        got, want = _simulate(plan, dy, w, None), _direct_dgrad(dy, w, s.pad_h, s.pad_w, s.H, s.W)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def _model(pass_: str):
    """F(4x4)'s float32 host model as a CPU implementation that declares the same algorithm."""
    f32 = np.float32
    if pass_ == "fprop":
        def fn(s, x, w, b, *, y):
            y[...] = emulate(x.astype(f32), w.astype(f32), b.astype(f32), s.pad_h, s.pad_w, ALGORITHM_F4)
    else:
        def fn(s, dy, w, *, dx):
            wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).astype(f32)
            dx[...] = emulate(dy.astype(f32), wf, None, 2 - s.pad_h, 2 - s.pad_w, ALGORITHM_F4)
    return Impl("conv2d", pass_, "winograd_f4_model", fn, "cpu", "fp32", algorithm=ALGORITHM_F4)


@pytest.mark.parametrize("name", ["resnet-like", "channels-past-blocks", "one-past-a-tile"])
@pytest.mark.parametrize("pass_", PASSES)
def test_float32_host_model_passes_the_f4_bound(pass_, name):
    """F(4x4) in float32 passes the oracle under its derived bound (γ = 854/27), not the direct one."""
    r = check(_model(pass_), ReferenceCache(get_op("conv2d"), F4_CASES[name], pass_))
    assert r.status == "pass", r.reason
    s = F4_CASES[name]
    reduction = (s.C if pass_ == "fprop" else s.K) * 9
    assert r.rtol == pytest.approx(tolerance("fp32", reduction, growth=algorithm_growth(ALGORITHM_F4)))


@pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) to build the kernels for the CPU")
@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["one-chunk", "4-tile-chunks"])
@pytest.mark.parametrize("shape", list(F4_CASES.values()), ids=list(F4_CASES))
@pytest.mark.parametrize("pass_", PASSES)
def test_kernel_source_matches_the_oracle_on_the_cpu(monkeypatch, pass_, shape, chunk_bytes):
    """conv2d_winograd_f4.cu's kernels and the v7 batched GEMM run from their source on the CPU (test_cpu_cuda.py)
    through the wrapper, in one chunk and in chunks of 4 tiles: every output passes the F(4x4) bound, none is
    left NaN."""
    import impls.cuda.conv2d_winograd as wino

    monkeypatch.setattr(wino, "CHUNK_BYTES", chunk_bytes)  # read by cupy_winograd_f4_chunked at each call
    impl = get("conv2d", pass_, "cupy_winograd_f4_chunked")
    for out, c in run_on_cpu(monkeypatch, impl, shape, seed=0):
        assert c.status == "pass", f"{out}: {c.reason}"


@pytest.mark.gpu
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle(pass_):
    refs = {}
    for name in ("cupy_winograd_f4", "cupy_winograd_f4_chunked"):  # in one chunk, and in chunks (one per layer here)
        assert_matches_oracle("conv2d", pass_, name, GPU_CASES, refs=refs)


@pytest.mark.gpu
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle_on_smoke_and_edge(pass_):
    """The registered sets' 3x3 stride-1 rows (the others are declined by supports=)."""
    assert_matches_oracle("conv2d", pass_, "cupy_winograd_f4")
