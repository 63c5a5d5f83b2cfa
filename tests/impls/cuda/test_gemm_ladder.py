"""The gemm ladder (cupy_naive, cupy_v2..v5, cupy_opt) and every cupy_opt configuration, layout and split-K factor
launched directly, against a float64 product on awkward sizes and misaligned operands; the autotuner's first call
tunes, writes the right outputs and caches its choice. GPU only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.ops.gemm import GemmShape
from harness.registry import get

pytestmark = pytest.mark.gpu

LADDER = ("cupy_naive", "cupy_v2_smem", "cupy_v3_regblock1d", "cupy_v4_regblock2d", "cupy_v5_vec_dbuf",
          "cupy_v6_warptile", "cupy_opt")
SHAPES = [(1, 1, 1), (7, 129, 333), (129, 7, 333), (333, 129, 7), (130, 131, 257), (64, 64, 64), (2, 300, 1000)]
U = np.finfo(np.float32).eps / 2


def _check(out, a64, b64, bias=None, relu=False):
    """out against the float64 A·B (+ bias, ReLU), within the forward error bound 2·K·u·(|A|·|B|) of a K-term
    float32 dot product (plus a few ulps of the result for the bias add and the rounding of the reference)."""
    import cupy

    ref = a64 @ b64
    bound = 2 * a64.shape[1] * U * (cupy.abs(a64) @ cupy.abs(b64))
    if bias is not None:
        ref = ref + bias
    if relu:
        ref = cupy.maximum(ref, 0)
    bound = bound + 4 * U * cupy.abs(ref) + 1e-30
    out = out.astype(cupy.float64)
    assert not bool(cupy.isnan(out).any()), "unwritten outputs"
    excess = float((cupy.abs(out - ref) / bound).max())
    assert excess <= 1.0, f"error {excess:.2f}x the bound"


def _rand(shape, seed, offset=0):
    """A float32 array of `shape` with values in [-1, 1); offset > 0 starts it that many floats into a buffer (so
    it is not 16-byte aligned)."""
    import cupy

    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    base = cupy.asarray(rng.uniform(-1, 1, n + offset).astype(np.float32))
    return base[offset:].reshape(shape)


@pytest.mark.parametrize("name", LADDER)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("bias,relu", [(False, False), (True, True)])
def test_ladder_step_fwd(name, m, n, k, bias, relu):
    import cupy

    s = GemmShape(M=m, N=n, K=k, bias=bias, relu=relu)
    for seed in range(3):
        x, w, b = _rand((m, k), seed), _rand((k, n), seed + 10), _rand((n,), seed + 20)
        y = cupy.full((m, n), np.nan, dtype=cupy.float32)
        get("gemm", "fwd", name).fn(s, x, w, b if bias else None, y=y)
        _check(y, x.astype(cupy.float64), w.astype(cupy.float64), b.astype(cupy.float64) if bias else None, relu)


@pytest.mark.parametrize("name", LADDER[:-1])
def test_ladder_step_misaligned_x(name):
    """X starting 4 bytes off a 16-byte boundary (K a multiple of 4, so only the pointer is misaligned)."""
    import cupy

    s = GemmShape(M=131, N=68, K=36, bias=True)
    x, w, b = _rand((131, 36), 0, offset=1), _rand((36, 68), 1), _rand((68,), 2)
    y = cupy.full((131, 68), np.nan, dtype=cupy.float32)
    get("gemm", "fwd", name).fn(s, x, w, b, y=y)
    _check(y, x.astype(cupy.float64), w.astype(cupy.float64), b.astype(cupy.float64))


def _configs():
    from impls.cuda import gemm_tune

    return [gemm_tune.Config(t, s) for t in gemm_tune.TILES.values() for s in (1, 3)]


@pytest.mark.parametrize("cfg", _configs(), ids=lambda c: c.name)
@pytest.mark.parametrize("layout", ["nn", "nt", "tn"])
@pytest.mark.parametrize("m,n,k,offset", [(1, 7, 129, 0), (129, 333, 7, 0), (333, 129, 300, 1), (128, 132, 68, 0),
                                          (131, 260, 516, 1), (200, 64, 1024, 0), (131, 260, 516, 0), (1, 7, 132, 0)])
def test_every_configuration_and_layout(cfg, layout, m, n, k, offset):
    """C = A·B for one configuration (split-K factor 1 and 3) and layout: nn (A m×k, B k×n row-major), nt (B
    stored n×k), tn (A stored k×m), operands 16-byte aligned or not, with bias and ReLU on nn."""
    import cupy

    from impls.cuda import gemm

    dev = cupy.cuda.Device().id
    a_store = _rand((k, m) if layout == "tn" else (m, k), 1, offset)
    b_store = _rand((n, k) if layout == "nt" else (k, n), 2, offset)
    a64 = a_store.astype(cupy.float64)
    b64 = b_store.astype(cupy.float64)
    a64, b64 = (a64.T if layout == "tn" else a64), (b64.T if layout == "nt" else b64)
    lda, ldb = a_store.shape[1], b_store.shape[1]
    vec = (gemm._aligned(a_store, lda), gemm._aligned(b_store, ldb))
    bias = _rand((n,), 3) if layout == "nn" else None
    relu = layout == "nn"
    c = cupy.full((m, n), np.nan, dtype=cupy.float32)
    gemm._wt_launch(cfg, layout, dev, a_store, b_store, c, bias, m, n, k, lda, ldb, relu, *vec)
    _check(c, a64, b64, None if bias is None else bias.astype(cupy.float64), relu)


def test_first_call_tunes_then_caches(tmp_path, monkeypatch):
    import cupy

    from impls.cuda import gemm

    path = tmp_path / "tune.json"
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", str(path))
    monkeypatch.setenv("KH_GEMM_TUNE", "1")
    monkeypatch.setattr(gemm, "_CACHE", None)
    s = GemmShape(M=1000, N=520, K=777, bias=True, relu=True)
    impl = get("gemm", "fwd", "cupy_opt")
    x, w, b = _rand((s.M, s.K), 0), _rand((s.K, s.N), 1), _rand((s.N,), 2)
    for expect in ("tuned over", "cached"):
        y = cupy.full((s.M, s.N), np.nan, dtype=cupy.float32)
        impl.fn(s, x, w, b, y=y)
        _check(y, x.astype(cupy.float64), w.astype(cupy.float64), b.astype(cupy.float64), True)
        note = impl.details(s)["note"]
        assert note.startswith("nn: b") and expect in note, note
    saved = json.loads(path.read_text())
    (entries,) = saved.values()
    assert any(k.startswith("nn 1000x520x777 bias=1 relu=1") for k in entries)
    kernels = impl.details(s)["kernels"]
    (attrs,) = kernels.values()
    assert attrs["occupancy"] >= 1 and attrs["spill"] == 0 and attrs["dyn_smem"] > 0


def test_tuning_off_uses_the_heuristic(monkeypatch):
    import cupy

    from impls.cuda import gemm

    monkeypatch.setenv("KH_GEMM_TUNE", "0")
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")
    monkeypatch.setattr(gemm, "_CACHE", None)
    s = GemmShape(M=32, N=100, K=3200, bias=True)
    x, w, b = _rand((s.M, s.K), 0), _rand((s.K, s.N), 1), _rand((s.N,), 2)
    y = cupy.full((s.M, s.N), np.nan, dtype=cupy.float32)
    get("gemm", "fwd", "cupy_opt").fn(s, x, w, b, y=y)
    _check(y, x.astype(cupy.float64), w.astype(cupy.float64), b.astype(cupy.float64))
    assert "heuristic" in get("gemm", "fwd", "cupy_opt").details(s)["note"]


@pytest.mark.parametrize("m,n,k", [(7, 129, 333), (256, 100, 3200), (130, 68, 1)])
def test_opt_bwd(m, n, k):
    import cupy

    s = GemmShape(M=m, N=n, K=k)
    x, w, dy = _rand((m, k), 0), _rand((k, n), 1), _rand((m, n), 2)
    dx = cupy.full((m, k), np.nan, dtype=cupy.float32)
    dw = cupy.full((k, n), np.nan, dtype=cupy.float32)
    db = cupy.full((n,), np.nan, dtype=cupy.float32)
    get("gemm", "bwd", "cupy_opt").fn(s, x, w, dy, dx=dx, dw=dw, db=db)
    x64, w64, dy64 = (v.astype(cupy.float64) for v in (x, w, dy))
    _check(dx, dy64, w64.T)
    _check(dw, x64.T, dy64)
    _check(db[None, :], cupy.ones((1, m)), dy64)
