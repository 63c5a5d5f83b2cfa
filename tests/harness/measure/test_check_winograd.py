"""The Winograd bound: its growth factor derived from the transform matrices, and float32 Winograd emulated in NumPy
measured against the float64 oracle under the derived bound and under the direct-sum bound."""

import numpy as np
import pytest

from harness.measure.check import (
    ReferenceCache,
    algorithm_growth,
    check,
    tolerance,
    transform_growth,
    winograd_matrices,
)
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import Impl
from impls.cuda.conv2d_winograd import emulate

F2, F4 = "winograd-f2x2-3x3", "winograd-f4x4-3x3"


@pytest.mark.parametrize("algorithm", [F2, F4])
def test_matrices_compute_the_1d_correlation(algorithm):
    """Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation y_i = Σ_r d_{i+r}·g_r exactly (in float64, to rounding)."""
    at, g, bt = winograd_matrices(algorithm)
    rng = np.random.default_rng(0)
    d, f = rng.standard_normal(bt.shape[0]), rng.standard_normal(3)
    direct = np.array([d[i:i + 3] @ f for i in range(at.shape[0])])
    np.testing.assert_allclose(at @ ((g @ f) * (bt @ d)), direct, rtol=1e-12, atol=1e-12)


def _growth_by_hand(at, g, bt) -> float:
    """The derivation, element by element: output (i, j) of the 2-D transform sums the C-term products' errors
    (each ~ u·sqrt(C)·C·rms(U_ξν)·rms(V_ξν) for unit inputs) with weights Aᵀ_iξ·Aᵀ_jν; rms(U_ξν) = ‖G_ξ‖₂‖G_ν‖₂,
    and the input transform's rms (with its own rounding) is bounded by ‖Bᵀ_ξ‖₁‖Bᵀ_ν‖₁. Relative to the direct sum's
    error u·sqrt(9C)·sqrt(9C): sqrt(Σ_ξν ...)/9."""
    m, a = at.shape
    worst = 0.0
    for i in range(m):
        for j in range(m):
            total = sum((at[i, xi] * at[j, nu]) ** 2 * (g[xi] @ g[xi]) * (g[nu] @ g[nu])
                        * np.abs(bt[xi]).sum() ** 2 * np.abs(bt[nu]).sum() ** 2
                        for xi in range(a) for nu in range(a))
            worst = max(worst, np.sqrt(total) / 9)
    return worst


@pytest.mark.parametrize("algorithm, expected", [(F2, 10 / 9), (F4, 854 / 27)])
def test_growth_factor_derived_from_the_matrices(algorithm, expected):
    mats = winograd_matrices(algorithm)
    assert transform_growth(*mats) == pytest.approx(_growth_by_hand(*mats), rel=1e-12)
    assert transform_growth(*mats) == pytest.approx(expected, rel=1e-12)
    assert algorithm_growth(algorithm) == pytest.approx(max(1.0, expected))


def test_direct_algorithms_keep_the_standard_bound():
    assert algorithm_growth(None) == algorithm_growth("") == algorithm_growth("implicit-gemm") == 1.0
    assert tolerance("fp32", 27, growth=algorithm_growth(None)) == tolerance("fp32", 27)
    assert tolerance("fp32", 27, growth=algorithm_growth(F4)) > tolerance("fp32", 27)
    with pytest.raises(ValueError):
        winograd_matrices("winograd-f6x6-3x3")


def _emulated(algorithm: str):
    def fn(s, x, w, b, *, y):
        y[...] = emulate(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), s.pad_h, s.pad_w, algorithm)
    return fn


def _checked(algorithm: str, shape: Conv2dShape, declared: str | None):
    impl = Impl("conv2d", "fprop", "emulated", _emulated(algorithm), "cpu", "fp32", algorithm=declared)
    return check(impl, ReferenceCache(get_op("conv2d"), shape, "fprop"))


# Thesis-like (C 3, odd sizes, partial tiles), a deeper reduction, pad 0 and 2.
SHAPES = [Conv2dShape(N=4, C=3, H=11, W=13, K=5, pad=1), Conv2dShape(N=2, C=64, H=14, W=14, K=16, pad=1),
          Conv2dShape(N=2, C=5, H=6, W=9, K=7, pad=0), Conv2dShape(N=2, C=5, H=6, W=9, K=7, pad=2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("algorithm", [F2, F4])
def test_emulated_winograd_within_its_derived_bound(algorithm, shape):
    r = _checked(algorithm, shape, declared=algorithm)
    assert r.status == "pass", r.reason
    assert r.seeds == 3 and r.rtol == pytest.approx(tolerance("fp32", shape.C * 9, growth=algorithm_growth(algorithm)))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_f2x2_needs_no_wider_bound(shape):
    """Measured: F(2x2, 3x3) in float32 passes the direct-sum bound (its growth 10/9 barely widens it)."""
    r = _checked(F2, shape, declared=None)
    assert r.status == "pass", r.reason


def test_f4x4_really_exceeds_the_direct_sum_bound():
    """Measured: F(4x4, 3x3) in float32, undeclared, fails the direct-sum bound (its worst elements, the outputs
    weighted by Aᵀ's 8s, are past it) on the thesis-like shape, and passes once it declares its algorithm."""
    shape = SHAPES[0]
    undeclared = _checked(F4, shape, declared=None)
    assert undeclared.status == "fail" and undeclared.viol > 1.0
    assert _checked(F4, shape, declared=F4).status == "pass"
