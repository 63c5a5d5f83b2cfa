"""cupy_winograd (impls/cuda/conv2d_winograd.py): its geometry limits, the declared algorithm, the kernels' float32
host model against the float64 oracle (CPU: catches tile and index errors), and the kernels themselves (GPU)."""

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
NAMES = ("cupy_winograd", "cupy_winograd_v1")  # the choice rule (v1 or v2 per shape), and v1 forced
PASSES = ("fprop", "dgrad")


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
    # the GPU tests below run each kernel on some of CASES: fprop convolves C channels, dgrad K
    chosen = {kernel_for(n) for s in CASES.values() for n in (s.C, s.K)}
    assert chosen == {V1, V2}


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


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle(pass_, name):
    assert_matches_oracle("conv2d", pass_, name, list(CASES.values()))


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pass_", PASSES)
def test_kernels_match_the_oracle_on_smoke_and_edge(pass_, name):
    """The registered sets' 3x3 stride-1 rows (the others are declined by supports=)."""
    assert_matches_oracle("conv2d", pass_, name)


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


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["odd-pad-1", "partial-slice-pad-2"])  # v1 and v2 under the choice rule
def test_filter_transform_runs_every_call(case):
    """New weights, same shape: the second call must use them (nothing cached across calls)."""
    cupy = pytest.importorskip("cupy")
    impl = get("conv2d", "fprop", "cupy_winograd")
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    s = CASES[case]
    rng = np.random.default_rng(1)
    x, b = rng.uniform(-1, 1, (s.N, s.C, s.H, s.W)).astype(np.float32), np.zeros(s.K, dtype=np.float32)
    for _ in range(2):
        w = rng.uniform(-1, 1, (s.K, s.C, 3, 3)).astype(np.float32)
        y = cupy.full((s.N, s.K, s.P, s.Q), np.nan, dtype=cupy.float32)
        impl.fn(s, cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), y=y)
        np.testing.assert_allclose(cupy.asnumpy(y), emulate(x, w, b, s.pad_h, s.pad_w), rtol=1e-5, atol=1e-4)
