"""cupy_winograd_f2 and cupy_winograd (impls/cuda/conv2d_winograd.py): the geometry limits, the declared algorithm,
the F(2x2) kernels' float32 host model against the float64 oracle (CPU: catches tile and index errors), the per-layer
choice between F(2x2) and F(4x4) (tuned once, cached, named, judged with the chosen variant's bound; CPU), and the
kernels themselves (GPU)."""

from pathlib import Path

import numpy as np
import pytest

from harness.measure.check import ReferenceCache, algorithm_growth, check, tolerance
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import Impl, get
from harness.testing import assert_matches_oracle
from impls.cuda.conv2d_winograd import ALGORITHM, OUTER_MIN_CIN, V1, V2, emulate, emulate_dgrad, kernel_for, supports

# Partial tiles (odd P, Q), every valid pad, one pixel, C and K past one 8-channel slice / 32-channel block,
# non-square, a single image; the thesis and ResNet-50 kinds (C 3, K 16-32; C 64-512 at 7-56 pixels).
CASES = {
    "odd-pad-1": Conv2dShape(N=3, C=3, H=11, W=13, K=5, pad=1),
    "pad-0": Conv2dShape(N=2, C=5, H=6, W=9, K=7, pad=0),
    "pad-2": Conv2dShape(N=2, C=5, H=7, W=6, K=7, pad=2),
    "pad-h0-w2": Conv2dShape(N=1, C=4, H=5, W=8, K=3, pad_h=0, pad_w=2),
    "one-pixel": Conv2dShape(N=2, C=9, H=1, W=1, K=33, pad=1),
    "channels-past-blocks": Conv2dShape(N=1, C=37, H=9, W=7, K=70, pad=1),
    "thesis-like": Conv2dShape(N=4, C=3, H=50, W=50, K=32, pad=1),
    "resnet-like": Conv2dShape(N=1, C=96, H=14, W=14, K=40, pad=1),
    "partial-slice-pad-2": Conv2dShape(N=3, C=20, H=7, W=5, K=19, pad=2),  # v2 both passes, 20 = 8 + 8 + 4
}
NAMES = ("cupy_winograd_f2", "cupy_winograd_v1")  # the choice rule (v1 or v2 per shape), and v1 forced
PASSES = ("fprop", "dgrad")
# The GPU set, kept small so that the GPU tests finish in ~25 s: thesis-like's few channels and many tiles are
# covered by odd-pad-1 (v1, 4 blocks of tiles) and resnet-like (v2, 12 slices, 2 blocks of tiles).
GPU_CASES = [s for name, s in CASES.items() if name != "thesis-like"]


def test_declines_other_geometry_with_one_line():
    base = dict(N=1, C=4, H=8, W=8, K=4)
    for shape in (Conv2dShape(**base, R=5, S=5, pad=2), Conv2dShape(**base, stride=2, pad=1),
                  Conv2dShape(**base, dilation=2, pad=2), Conv2dShape(**base, groups=2, pad=1),
                  Conv2dShape(**base, pad=3), Conv2dShape(**base, R=1, S=3, pad=1)):
        reason = supports(shape)
        assert reason and "\n" not in reason
    assert all(supports(s) is None for s in CASES.values())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pass_", PASSES)
def test_registered_with_its_algorithm(pass_, name):
    impl = get("conv2d", pass_, name)
    assert impl.algorithm_for(CASES["pad-0"]) == ALGORITHM == "winograd-f2x2-3x3"
    assert impl.math == "fp32" and impl.family == "own"


def test_choice_rule_and_the_gpu_cases_cover_both_kernels():
    assert kernel_for(3) == kernel_for(OUTER_MIN_CIN - 1) == V1
    assert kernel_for(OUTER_MIN_CIN) == kernel_for(512) == V2
    # the GPU tests below run each kernel on some of GPU_CASES: fprop convolves C channels, dgrad K
    chosen = {kernel_for(n) for s in GPU_CASES for n in (s.C, s.K)}
    assert chosen == {V1, V2}


RAW_PITCH = {False: 9 * 8 + 1, True: 9 * 32}  # conv2d_winograd.cu's RAW_PITCH_FPROP, RAW_PITCH_DGRAD (CC 8, BKO 32)
RAW_FLOATS = max(32 * RAW_PITCH[False], 8 * RAW_PITCH[True])


def test_staging_constants_match_the_kernel():
    src = (Path(__file__).parents[3] / "impls" / "cuda" / "conv2d_winograd.cu").read_text()
    assert "#define CC 8" in src and "#define BKO 32" in src
    assert "#define RAW_PITCH_FPROP (9 * CC + 1)" in src and "#define RAW_PITCH_DGRAD (9 * BKO)" in src


def _staged_filters(w: np.ndarray, cin: int, kout: int, k0: int, c0: int, flip: bool) -> np.ndarray:
    """wino_conv_f2_outer's filter staging, thread by thread: stage_rows (thread tid of 256 writes raw) then the
    reads of transform_filter_slice; the 3x3 filter (9 floats, before flip's rotation) that thread
    (lc, kk) = (tid / 32, tid % 32) hands to the filter transform, as (8, 32, 9). Asserts that every read of w
    is inside it, that raw is written at most once per slot and that each read slot was written, and that the
    warp's reads are bank-conflict-free (a warp: one lc, 32 kk)."""
    flat = w.reshape(-1)
    raw = np.full(RAW_FLOATS, np.nan)
    writes = np.zeros(RAW_FLOATS, dtype=int)
    tpr, pitch = (32, RAW_PITCH[True]) if flip else (8, RAW_PITCH[False])
    for tid in range(256):
        t, row = tid % tpr, tid // tpr
        if flip:
            c = c0 + row
            ok, base, length = c < cin, ((c if c < cin else 0) * kout + k0) * 9, (kout - k0) * 9
        else:
            k = k0 + row
            ok, base, length = k < kout, ((k if k < kout else 0) * cin + c0) * 9, (cin - c0) * 9
        for j in range(9):
            col = t + tpr * j
            if ok and col < length:
                assert 0 <= base + col < flat.size
                v = flat[base + col]
            else:
                v = 0.0
            raw[row * pitch + col] = v
            writes[row * pitch + col] += 1
    assert writes.max() == 1
    out = np.empty((8, 32, 9))
    for tid in range(256):
        lc, kk = tid // 32, tid % 32
        off = lc * RAW_PITCH[True] + kk * 9 if flip else kk * RAW_PITCH[False] + lc * 9
        assert (writes[off:off + 9] == 1).all()
        out[lc, kk] = raw[off:off + 9]
    for lc in range(8):  # one warp's reads, per rs: 32 distinct banks
        offs = np.arange(32) * 9 + lc * RAW_PITCH[True] if flip else np.arange(32) * RAW_PITCH[False] + lc * 9
        assert all(len(set((offs + rs) % 32)) == 32 for rs in range(9))
    return out


@pytest.mark.parametrize("flip", [False, True], ids=["fprop", "dgrad"])
@pytest.mark.parametrize("cin,kout", [(20, 70), (8, 32), (3, 5), (40, 33)])
def test_filter_staging_hands_each_thread_its_filter(flip, cin, kout):
    """Every block (k0) and slice (c0), partial ones included: thread (lc, kk) gets the filter of input channel
    c0 + lc and output channel k0 + kk (fprop: w is Kout × Cin × 3 × 3; dgrad: the layer's K × C × 3 × 3 =
    Cin × Kout × 3 × 3), zero past Cin or Kout."""
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (cin, kout, 3, 3) if flip else (kout, cin, 3, 3))
    for k0 in range(0, kout, 32):
        for c0 in range(0, cin, 8):
            got = _staged_filters(w, cin, kout, k0, c0, flip)
            want = np.zeros((8, 32, 9))
            for lc in range(min(8, cin - c0)):
                for kk in range(min(32, kout - k0)):
                    c, k = c0 + lc, k0 + kk
                    want[lc, kk] = (w[c, k] if flip else w[k, c]).reshape(9)
            np.testing.assert_array_equal(got, want)


F2_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
F2_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
F2_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)


def _simulate_outer(x: np.ndarray, w: np.ndarray, b, pad_h: int, pad_w: int, flip: bool) -> np.ndarray:
    """wino_conv_f2_outer, block by block and thread by thread (256 threads as numpy vectors), in float64: the
    input loader, the filter staging (_staged_filters), the transforms into Vs and Us, the outer products of
    thread (pe, tg, kg), the epilogue through shared memory and the bounded stores. Outputs never written stay
    NaN; a store twice to one element fails."""
    n, cin, h, wd = x.shape
    kout = w.shape[1] if flip else w.shape[0]
    p, q = h + 2 * pad_h - 2, wd + 2 * pad_w - 2
    tp, tq = -(-p // 2), -(-q // 2)
    tiles = n * tp * tq
    y = np.full((n, kout, p, q), np.nan)
    stores = np.zeros(y.shape, dtype=int)
    tid = np.arange(256)
    lc, lt, kk = tid // 32, tid % 32, tid % 32
    pe, tg, kg = tid // 16, tid % 4, tid // 4 % 4
    t_idx = 16 * np.arange(2)[None, :, None] + 4 * tg[:, None, None] + np.arange(4)[None, None, :]  # (256, 2, 4)
    k_idx = 16 * np.arange(2)[None, :, None] + 4 * kg[:, None, None] + np.arange(4)[None, None, :]
    for tile0 in range(0, tiles, 32):
        my_tile = tile0 + lt
        valid = my_tile < tiles
        rem = my_tile % (tp * tq)
        pn = np.where(valid, my_tile // (tp * tq), 0)
        h0, w0 = np.where(valid, 2 * (rem // tq) - pad_h, 0), np.where(valid, 2 * (rem % tq) - pad_w, 0)
        for k0 in range(0, kout, 32):
            acc = np.zeros((256, 2, 4, 2, 4))
            for c0 in range(0, cin, 8):
                c = c0 + lc
                live = valid & (c < cin)
                d = np.zeros((256, 4, 4))
                for a in range(4):
                    for bb in range(4):
                        hh, ww = h0 + a, w0 + bb
                        ok = live & (hh >= 0) & (hh < h) & (ww >= 0) & (ww < wd)
                        d[ok, a, bb] = x[pn[ok], c[ok], hh[ok], ww[ok]]
                vs = np.full((8, 16, 32), np.nan)
                vs[lc, :, lt] = np.einsum("ia,tab,jb->tij", F2_BT, d, F2_BT).reshape(256, 16)
                g = _staged_filters(w, cin, kout, k0, c0, flip).reshape(8, 32, 3, 3)
                g = g[:, :, ::-1, ::-1] if flip else g
                us = np.full((8, 16, 32), np.nan)
                us[lc, :, kk] = np.einsum("ar,trs,bs->tab", F2_G, g[lc, kk], F2_G).reshape(256, 16)
                for cc in range(min(8, cin - c0)):
                    vv = vs[cc][pe[:, None, None], t_idx]  # (256, th, i)
                    uu = us[cc][pe[:, None, None], k_idx]  # (256, kh, j)
                    acc += vv[:, :, :, None, None] * uu[:, None, None, :, :]
            for half in range(2):
                sm = np.full(16 * 16 * 32, np.nan)
                for th in range(2):
                    for j in range(4):
                        for i in range(4):
                            sm[(pe * 16 + 4 * kg + j) * 32 + 16 * th + 4 * tg + i] = acc[:, th, i, half, j]
                for r in range(2):
                    pair = tid + 256 * r
                    kl, t = pair // 32, pair % 32
                    tile, k = tile0 + t, k0 + 16 * half + kl
                    for th_ in np.flatnonzero((tile < tiles) & (k < kout)):
                        m = np.array([sm[(e * 16 + kl[th_]) * 32 + t[th_]] for e in range(16)]).reshape(4, 4)
                        out = F2_AT @ m @ F2_AT.T + (0.0 if b is None else b[k[th_]])
                        nn, rr = divmod(int(tile[th_]), tp * tq)
                        p0, q0 = 2 * (rr // tq), 2 * (rr % tq)
                        for a in range(2):
                            for bb in range(2):
                                if p0 + a < p and q0 + bb < q:
                                    y[nn, k[th_], p0 + a, q0 + bb] = out[a, bb]
                                    stores[nn, k[th_], p0 + a, q0 + bb] += 1
    assert stores.max() == 1
    return y


def _direct_fprop(x, w, b, pad_h, pad_w):
    """float64 reference: y = b + Σ_c,r,s x[n, c, p + r − pad_h, q + s − pad_w]·w[k, c, r, s]."""
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    p, q = h + 2 * pad_h - 2, wd + 2 * pad_w - 2
    y = sum(np.einsum("nchw,kc->nkhw", xp[:, :, r:r + p, s:s + q], w[:, :, r, s]) for r in range(3) for s in range(3))
    return y + b[None, :, None, None]


def _direct_dgrad(dy, w, pad_h, pad_w, h, wd):
    """float64 reference, scattered: dx[n, c, p + r − pad_h, q + s − pad_w] += dy[n, k, p, q]·w[k, c, r, s]."""
    n, _, p, q = dy.shape
    dxp = np.zeros((n, w.shape[1], h + 2 * pad_h, wd + 2 * pad_w))
    for r in range(3):
        for s in range(3):
            dxp[:, :, r:r + p, s:s + q] += np.einsum("nkpq,kc->ncpq", dy, w[:, :, r, s])
    return dxp[:, :, pad_h:pad_h + h, pad_w:pad_w + wd]


@pytest.mark.parametrize("shape", [CASES["partial-slice-pad-2"], CASES["channels-past-blocks"],
                                   Conv2dShape(N=2, C=17, H=9, W=7, K=35, pad_h=1, pad_w=0)],
                         ids=["partial-slice-pad-2", "channels-past-blocks", "pad-h1-w0"])
@pytest.mark.parametrize("pass_", PASSES)
def test_outer_kernel_simulation_matches_direct_convolution(pass_, shape):
    """The whole of v2 simulated in float64 (every output written once, partial tiles, slices and blocks) equals
    the direct convolution to rounding: an index error anywhere in the kernel's mapping shows as O(1) errors."""
    s = shape
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (s.K, s.C, 3, 3))
    if pass_ == "fprop":
        x, b = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)), rng.uniform(-1, 1, s.K)
        got, want = _simulate_outer(x, w, b, s.pad_h, s.pad_w, False), _direct_fprop(x, w, b, s.pad_h, s.pad_w)
    else:
        dy = rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q))
        got = _simulate_outer(dy, w, None, 2 - s.pad_h, 2 - s.pad_w, True)  # as conv2d_winograd._dgrad launches
        want = _direct_dgrad(dy, w, s.pad_h, s.pad_w, s.H, s.W)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def _model(pass_: str):
    """The kernels' host model as a CPU implementation that declares the same algorithm."""
    if pass_ == "fprop":
        def fn(s, x, w, b, *, y):
            y[...] = emulate(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), s.pad_h, s.pad_w)
    else:
        def fn(s, dy, w, *, dx):
            dx[...] = emulate_dgrad(dy.astype(np.float32), w.astype(np.float32), s.pad_h, s.pad_w)
    return Impl("conv2d", pass_, "winograd_model", fn, "cpu", "fp32", algorithm=ALGORITHM)


@pytest.mark.parametrize("shape", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("pass_", PASSES)
def test_host_model_matches_the_oracle(pass_, shape):
    r = check(_model(pass_), ReferenceCache(get_op("conv2d"), shape, pass_))
    assert r.status == "pass", r.reason
    assert r.err < r.rtol and r.seeds == 3


def test_checker_widens_only_for_the_declared_algorithm():
    shape = CASES["odd-pad-1"]
    declared = check(_model("fprop"), ReferenceCache(get_op("conv2d"), shape, "fprop"))
    plain = Impl("conv2d", "fprop", "plain", _model("fprop").fn, "cpu", "fp32")
    undeclared = check(plain, ReferenceCache(get_op("conv2d"), shape, "fprop"))
    assert declared.rtol == pytest.approx(tolerance("fp32", 27, growth=algorithm_growth(ALGORITHM)))
    assert undeclared.rtol == pytest.approx(tolerance("fp32", 27))
    assert undeclared.rtol < declared.rtol


def _best_calls(monkeypatch, tmp_path, pick: str, calls: int = 2) -> tuple[list, list, object]:
    """cupy_winograd's fprop called `calls` times on one layer, its kernels recorded (no GPU), with a tuner that
    picks `pick` and the cache file in tmp_path; returns (the variants each tuning timed, the launched kernels of
    each call, the implementation)."""
    from launch_recorder import FakeArray, record

    from impls.cuda import conv2d_winograd as wino
    from impls.cuda import gemm_tune

    rec = record(monkeypatch)
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", str(tmp_path / "tune.json"))
    tuned: list = []

    def tune(cands, launch):  # as gemm_tune.tune: every candidate runs, then the choice once more
        tuned.append(list(cands))
        for c in cands:
            launch(c)
        launch(pick)
        return pick, {c: 1.0 for c in cands}
    monkeypatch.setattr(gemm_tune, "tune", tune)
    monkeypatch.setattr(wino, "_details", lambda s: {"note": "F2's note"})  # no kernel attributes without a GPU
    monkeypatch.setattr(wino, "_details_f4", lambda pass_, chunked: lambda s: {"note": "F4's note"})
    impl, s = get("conv2d", "fprop", "cupy_winograd"), CASES["resnet-like"]
    launched = []
    for _ in range(calls):
        rec.launches.clear()
        impl.fn(s, FakeArray(s.N * s.C * s.H * s.W), FakeArray(s.K * s.C * 9), FakeArray(s.K),
                y=FakeArray(s.N * s.K * s.P * s.Q))
        launched.append([launch.func for launch in rec.launches])
    return tuned, launched, impl


@pytest.mark.parametrize("pick,algorithm,kernel", [("f2", ALGORITHM, V2), ("f4", "winograd-f4x4-3x3", "wino4_input")])
def test_best_variant_is_tuned_once_then_cached_and_named(monkeypatch, tmp_path, pick, algorithm, kernel):
    """The first call times F(2x2) and F(4x4) and ends with the chosen one's launch; the second call runs only
    the cached choice; the checker's algorithm and the row's note are the choice's; the file keeps it."""
    import json

    from impls.cuda import conv2d_winograd as wino

    tuned, launched, impl = _best_calls(monkeypatch, tmp_path, pick)
    s = CASES["resnet-like"]
    assert tuned == [["f2", "f4"]]
    assert kernel in launched[0][-3:] and launched[1][-1] in ("wino4_output", V2)
    assert kernel in launched[1] and (V2 in launched[1]) == (pick == "f2")
    assert impl.algorithm_for(s) == algorithm
    note = impl.details(s)["note"]  # the second call ran the cached choice; the note keeps why it was chosen
    assert note.startswith(f"{pick} chosen (tuned: f2 ") and note.endswith(f"); F{pick[1]}'s note"), note
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert saved == {"recorded device": {wino.choice_key(s, "fprop"): pick}}


def test_best_variant_untuned_runs_f2(monkeypatch, tmp_path):
    """KH_GEMM_TUNE=0: no timing, F(2x2) (the measured one), named as untuned; nothing is cached."""
    monkeypatch.setenv("KH_GEMM_TUNE", "0")
    tuned, launched, impl = _best_calls(monkeypatch, tmp_path, "f4", calls=1)
    assert tuned == [] and launched == [[V2]]
    assert impl.algorithm_for(CASES["resnet-like"]) == ALGORITHM
    assert "f2 chosen (untuned)" in impl.details(CASES["resnet-like"])["note"]
    assert not (tmp_path / "tune.json").exists()


def test_cache_entries_of_unknown_variants_are_ignored(tmp_path, monkeypatch):
    import json

    from impls.cuda import conv2d_winograd as wino
    from impls.cuda import gemm_tune

    path = tmp_path / "tune.json"
    entries = {"conv2d winograd fprop a": "f4", "conv2d winograd fprop b": "f8", "gemm": "b64x64k16s4"}
    path.write_text(json.dumps({"dev": entries}))
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", str(path))
    cache = wino._choices.__wrapped__()  # the module's own cache of that file
    assert cache.get("dev", "conv2d winograd fprop a") == "f4"
    assert cache.get("dev", "conv2d winograd fprop b") is None and cache.get("dev", "gemm") is None
    assert gemm_tune.TuneCache(path).get("dev", "gemm") == gemm_tune.parse("b64x64k16s4")  # gemm's own parse


@pytest.mark.gpu
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle(pass_):
    """Both entries (the choice rule, v1 forced) on the GPU cases, one oracle result per shape for both."""
    refs = {}
    for name in NAMES:
        assert_matches_oracle("conv2d", pass_, name, GPU_CASES, refs=refs)


@pytest.mark.gpu
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle_on_smoke_and_edge(pass_):
    """The registered sets' 3x3 stride-1 rows (the others are declined by supports=): cupy_winograd, F(2x2) or
    F(4x4) as its tuner chose per layer, judged with the bound of the variant it ran."""
    assert_matches_oracle("conv2d", pass_, "cupy_winograd")


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_host_model(pass_, name):
    """Same tiles, same transforms: the GPU result and the float32 host model agree far inside the bound
    (channels-past-blocks: v2 under the choice rule, v1 forced)."""
    cupy = pytest.importorskip("cupy")
    impl = get("conv2d", pass_, name)
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    s = CASES["channels-past-blocks"]
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (s.K, s.C, 3, 3)).astype(np.float32)
    if pass_ == "fprop":
        x, b = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)).astype(np.float32), rng.uniform(-1, 1, s.K).astype(np.float32)
        y = cupy.full((s.N, s.K, s.P, s.Q), np.nan, dtype=cupy.float32)
        impl.fn(s, cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), y=y)
        want = emulate(x, w, b, s.pad_h, s.pad_w)
    else:
        dy = rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q)).astype(np.float32)
        y = cupy.full((s.N, s.C, s.H, s.W), np.nan, dtype=cupy.float32)
        impl.fn(s, cupy.asarray(dy), cupy.asarray(w), dx=y)
        want = emulate_dgrad(dy, w, s.pad_h, s.pad_w)
    np.testing.assert_allclose(cupy.asnumpy(y), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


FRESH_WEIGHT_CASES = [  # (implementation, shape, its algorithm, rtol against the float32 host model)
    ("cupy_winograd_f2", CASES["odd-pad-1"], ALGORITHM, 1e-5),  # v1 under the choice rule
    ("cupy_winograd_f2", CASES["partial-slice-pad-2"], ALGORITHM, 1e-5),  # v2
    ("cupy_winograd_f4", Conv2dShape(N=1, C=6, H=9, W=5, K=4, pad=1), "winograd-f4x4-3x3", 1e-4),
]


@pytest.mark.gpu
@pytest.mark.parametrize("name,s,algorithm,rtol", FRESH_WEIGHT_CASES, ids=["f2-v1", "f2-v2", "f4"])
def test_filter_transform_runs_every_call(name, s, algorithm, rtol):
    """New weights, same shape: the second call must use them (nothing cached across calls)."""
    cupy = pytest.importorskip("cupy")
    impl = get("conv2d", "fprop", name)
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    rng = np.random.default_rng(1)
    x, b = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)).astype(np.float32), np.zeros(s.K, dtype=np.float32)
    for _ in range(2):
        w = rng.uniform(-1, 1, (s.K, s.C, 3, 3)).astype(np.float32)
        y = cupy.full((s.N, s.K, s.P, s.Q), np.nan, dtype=cupy.float32)
        impl.fn(s, cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), y=y)
        want = emulate(x, w, b, s.pad_h, s.pad_w, algorithm)
        np.testing.assert_allclose(cupy.asnumpy(y), want, rtol=rtol, atol=rtol * 10 * float(np.abs(want).max()))
