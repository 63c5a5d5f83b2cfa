"""The oracle's backward passes, proven by central finite differences of its forward passes (float64).

For a forward f and a random cotangent g, the backward pass must return ∂⟨f(x), g⟩/∂x. We compare it with
(⟨f(x + h·e), g⟩ − ⟨f(x − h·e), g⟩) / 2h on every element of small tensors; with h = 1e-6 in float64 the
truncation error is O(h²) ≈ 1e-12 and the rounding error O(ε/h) ≈ 1e-10, so 1e-6 relative is a safe bound.
"""

import numpy as np
import pytest

from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.ops.maxpool2d import Pool2dShape
from impls.reference import cpu as numpy_opt
from impls.reference import oracle as ref

H = 1e-6
RTOL = 1e-6


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """∂f/∂x by central differences, element by element (f returns a scalar)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + H
        up = f()
        x[i] = old - H
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * H)
    return g


def assert_close(analytic, numeric):
    err = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    assert err < RTOL, err


def rng_arrays(seed, **shapes):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, v) for k, v in shapes.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gemm_bwd(seed):
    s = GemmShape(M=4, N=3, K=5)
    a = rng_arrays(seed, x=(4, 5), w=(5, 3), g=(4, 3))
    y = np.empty((4, 3))

    def loss():
        ref.gemm_fwd(s, a["x"], a["w"], y=y)
        return float((y * a["g"]).sum())
    dx, dw, db = np.empty((4, 5)), np.empty((5, 3)), np.empty(3)
    ref.gemm_bwd(s, a["x"], a["w"], a["g"], dx=dx, dw=dw, db=db)
    assert_close(dx, numeric_grad(loss, a["x"]))
    assert_close(dw, numeric_grad(loss, a["w"]))
    sb = GemmShape(M=4, N=3, K=5, bias=True)
    b = np.random.default_rng(seed).uniform(-1, 1, 3)

    def loss_b():
        ref.gemm_fwd(sb, a["x"], a["w"], b, y=y)
        return float((y * a["g"]).sum())
    assert_close(db, numeric_grad(loss_b, b))


CONV_SHAPES = [Conv2dShape(2, 3, 5, 5, 2), Conv2dShape(1, 2, 7, 6, 3, 3, 3, 2, 1),
               Conv2dShape(2, 2, 6, 6, 2, 1, 1, 1, 0), Conv2dShape(1, 1, 5, 5, 2, 5, 5, 2, 2),
               # per-axis stride and padding; dilation 2; groups 2 (K/G ≠ C/G); depthwise (G = C = K) with stride 2
               Conv2dShape(1, 2, 7, 8, 2, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=0),
               Conv2dShape(1, 2, 9, 8, 2, 3, 3, 1, 2, dilation=2),
               Conv2dShape(2, 4, 5, 5, 6, 3, 3, 1, 1, groups=2),
               Conv2dShape(1, 3, 7, 6, 3, 3, 3, 2, 1, groups=3),
               # everything at once: per-axis stride, pad and dilation (uneven leftovers), 2 groups
               Conv2dShape(1, 4, 8, 9, 4, 2, 3, stride_h=1, stride_w=2, pad_h=2, pad_w=1, dilation_h=3, dilation_w=2,
                           groups=2),
               # DeepBench's speech layer (N=1, C=1, H=40, W=151, K=4, R=5, S=20, stride 2×8, pad 8), H, W and K
               # scaled down so that the element-by-element differences stay fast
               Conv2dShape(1, 1, 12, 40, 2, 5, 20, stride_h=2, stride_w=8, pad_h=8, pad_w=8)]


@pytest.mark.parametrize("s", CONV_SHAPES, ids=str)
def test_conv2d_dgrad_and_wgrad(s):
    a = rng_arrays(hash(s) % 1000, x=(s.N, s.C, s.H, s.W), w=(s.K, s.Cg, s.R, s.S), b=(s.K,), g=(s.N, s.K, s.P, s.Q))
    y = np.empty((s.N, s.K, s.P, s.Q))

    def loss():
        ref.conv2d_fprop(s, a["x"], a["w"], a["b"], y=y)
        return float((y * a["g"]).sum())
    dx = np.empty_like(a["x"])
    dw, db = np.empty_like(a["w"]), np.empty_like(a["b"])
    ref.conv2d_dgrad(s, a["g"], a["w"], dx=dx)
    ref.conv2d_wgrad(s, a["x"], a["g"], dw=dw, db=db)
    assert_close(dx, numeric_grad(loss, a["x"]))
    assert_close(dw, numeric_grad(loss, a["w"]))
    assert_close(db, numeric_grad(loss, a["b"]))


def brute_force_conv2d(s: Conv2dShape, x, w, b) -> np.ndarray:
    """The module docstring's formula of harness/ops/conv2d.py, one output element and one term at a time."""
    y = np.empty((s.N, s.K, s.P, s.Q))
    for n, k, p, q in np.ndindex(y.shape):
        g = k // s.Kg
        acc = b[k]
        for c, r, t in np.ndindex(s.Cg, s.R, s.S):
            h, v = p * s.stride_h + r * s.dilation_h - s.pad_h, q * s.stride_w + t * s.dilation_w - s.pad_w
            if 0 <= h < s.H and 0 <= v < s.W:
                acc += x[n, g * s.Cg + c, h, v] * w[k, c, r, t]
        y[n, k, p, q] = acc
    return y


@pytest.mark.parametrize("s", [Conv2dShape(2, 6, 9, 11, 4, 3, 2, stride_h=2, stride_w=3, pad_h=1, pad_w=2,
                                           dilation_h=2, dilation_w=3, groups=2),
                               Conv2dShape(1, 4, 6, 7, 8, 3, 3, 1, 1, groups=4),
                               Conv2dShape(1, 1, 16, 45, 2, 5, 20, stride_h=2, stride_w=8, pad_h=8, pad_w=8)], ids=str)
def test_conv2d_fprop_matches_the_formula_term_by_term(s):
    a = rng_arrays(8, x=(s.N, s.C, s.H, s.W), w=(s.K, s.Cg, s.R, s.S), b=(s.K,))
    y = np.empty((s.N, s.K, s.P, s.Q))
    ref.conv2d_fprop(s, a["x"], a["w"], a["b"], y=y)
    np.testing.assert_allclose(y, brute_force_conv2d(s, a["x"], a["w"], a["b"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("s", [Pool2dShape(2, 2, 6, 6), Pool2dShape(1, 2, 7, 7, 3, 3, 2),
                               Pool2dShape(1, 1, 5, 6, 3, 2, 1),
                               Pool2dShape(1, 2, 7, 6, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=1),
                               Pool2dShape(1, 1, 5, 4, 3, 3, stride_h=1, stride_w=2, pad_h=2, pad_w=1)], ids=str)
def test_maxpool2d_bwd(s):
    a = rng_arrays(3, x=(s.N, s.C, s.H, s.W), g=(s.N, s.C, s.P, s.Q))
    y = np.empty((s.N, s.C, s.P, s.Q))

    def loss():
        ref.maxpool2d_fwd(s, a["x"], y=y)
        return float((y * a["g"]).sum())
    loss()
    dx = np.empty_like(a["x"])
    ref.maxpool2d_bwd(s, a["x"], y.copy(), a["g"], dx=dx)
    assert_close(dx, numeric_grad(loss, a["x"]))


@pytest.mark.parametrize("impl", [ref, numpy_opt], ids=["numpy_ref", "numpy_opt"])
def test_maxpool2d_ties_go_to_the_first_maximum_in_row_major_order(impl):
    s = Pool2dShape(1, 1, 4, 4, 2, 2, 2)
    x = np.array([[5, 5, 1, 2], [5, 5, 3, 3], [0, 1, 7, 0], [1, 0, 0, 7]], dtype=np.float32)[None, None]
    y = np.empty((1, 1, 2, 2), np.float32)
    impl.maxpool2d_fwd(s, x, y=y)
    dy = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)[None, None]
    dx = np.full_like(x, np.nan)
    impl.maxpool2d_bwd(s, x, y, dy, dx=dx)
    expected = np.zeros((4, 4), np.float32)
    expected[0, 0] = 1  # four-way tie: top-left wins
    expected[1, 2] = 2  # tie on the second row of the window: its first element
    expected[2, 2] = 4  # tie on the diagonal: the earlier one in row-major order
    expected[2, 1] = 3
    np.testing.assert_array_equal(dx[0, 0], expected)


def brute_force_pool(s: Pool2dShape, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y and dx by the definition, one window at a time: positions outside the image are skipped (padding is −inf,
    never the max), the first real element in row-major (r, s) order with the largest value wins, dx sums dy."""
    y = np.empty((s.N, s.C, s.P, s.Q))
    dx = np.zeros_like(x, dtype=np.float64)
    for n, c, p, q in np.ndindex(y.shape):
        best = None
        for r in range(s.R):
            for t in range(s.S):
                h, w = p * s.stride_h + r - s.pad_h, q * s.stride_w + t - s.pad_w
                if 0 <= h < s.H and 0 <= w < s.W and (best is None or x[n, c, h, w] > x[n, c, best[0], best[1]]):
                    best = (h, w)
        y[n, c, p, q] = x[n, c, best[0], best[1]]
        dx[n, c, best[0], best[1]] += dy[n, c, p, q]
    return y, dx


POOL_GEOMETRIES = [Pool2dShape(2, 3, 9, 8, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=1),
                   Pool2dShape(1, 2, 11, 11, 3, 3, 2, 1),
                   Pool2dShape(2, 2, 1, 7, 1, 3, stride_h=1, stride_w=2, pad_w=1),
                   Pool2dShape(1, 2, 6, 1, 3, 1, stride_h=2, stride_w=1, pad_h=2),
                   Pool2dShape(1, 1, 7, 9, 4, 3, stride_h=3, stride_w=1, pad_h=2, pad_w=1),
                   Pool2dShape(1, 1, 10, 10, 2, 2, 3), Pool2dShape(1, 1, 2, 2, 3, 3, 1, 1),
                   Pool2dShape(1, 3, 5, 5, 3, 3, 1)]


@pytest.mark.parametrize("values", ["uniform", "ties"])
@pytest.mark.parametrize("s", POOL_GEOMETRIES, ids=str)
@pytest.mark.parametrize("impl", [ref, numpy_opt], ids=["numpy_ref", "numpy_opt"])
def test_maxpool2d_matches_a_brute_force_loop(impl, s, values):
    """Per-axis windows, strides and padding: fwd and bwd equal the definition exactly (integer dy: exact sums),
    on uniform inputs and on inputs from {0, 1, 2}, ties in almost every window."""
    rng = np.random.default_rng(hash(s) % 1000)
    shape = (s.N, s.C, s.H, s.W)
    x = (rng.integers(0, 3, shape) if values == "ties" else rng.uniform(-1, 1, shape)).astype(np.float32)
    dy = rng.integers(1, 9, (s.N, s.C, s.P, s.Q)).astype(np.float32)
    y_expected, dx_expected = brute_force_pool(s, x, dy)
    y = np.full(y_expected.shape, np.nan, np.float32)
    impl.maxpool2d_fwd(s, x, y=y)
    np.testing.assert_array_equal(y, y_expected)
    dx = np.full_like(x, np.nan)
    impl.maxpool2d_bwd(s, x, y, dy, dx=dx)
    np.testing.assert_array_equal(dx, dx_expected)


@pytest.mark.parametrize("impl", [ref, numpy_opt], ids=["numpy_ref", "numpy_opt"])
def test_maxpool2d_padding_is_never_the_maximum(impl):
    """3×3 windows, stride 1, pad 1 over a 2×2 image: every window holds the whole image plus padding. All equal
    (also all −inf, which ties the padding's −inf): each window's gradient goes to its first REAL element, (0, 0),
    and none is lost in the padding."""
    s = Pool2dShape(1, 1, 2, 2, 3, 3, 1, 1)
    dy = np.array([[1.0, 2.0], [4.0, 8.0]], dtype=np.float32)[None, None]
    for value in (5.0, -np.inf):
        x = np.full((1, 1, 2, 2), value, np.float32)
        y = np.full((1, 1, 2, 2), np.nan, np.float32)
        impl.maxpool2d_fwd(s, x, y=y)
        np.testing.assert_array_equal(y, x)
        dx = np.full_like(x, np.nan)
        impl.maxpool2d_bwd(s, x, y, dy, dx=dx)
        np.testing.assert_array_equal(dx[0, 0], [[15.0, 0.0], [0.0, 0.0]])
    # distinct values: window (p, q) covers the whole image, so the max (1, 1) takes every dy
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)[None, None]
    y = np.empty((1, 1, 2, 2), np.float32)
    impl.maxpool2d_fwd(s, x, y=y)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 4.0))
    dx = np.full_like(x, np.nan)
    impl.maxpool2d_bwd(s, x, y, dy, dx=dx)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 0.0], [0.0, 15.0]])


@pytest.mark.parametrize("op", ["relu", "sigmoid"])
def test_activation_bwd(op):
    fwd, bwd = getattr(ref, f"{op}_fwd"), getattr(ref, f"{op}_bwd")
    a = rng_arrays(4, x=(2, 3, 4, 5), g=(2, 3, 4, 5))
    a["x"][np.abs(a["x"]) < 1e-3] = 0.5  # keep ReLU away from its kink, where no derivative exists
    y = np.empty_like(a["x"])

    def loss():
        fwd(None, a["x"], y=y)
        return float((y * a["g"]).sum())
    loss()
    dx = np.empty_like(y)
    bwd(None, y.copy(), a["g"], dx=dx)
    assert_close(dx, numeric_grad(loss, a["x"]))


def test_softmax_xent_bwd():
    spec = get_op("softmax_xent")
    s = spec.shape_type(N=4, K=6)
    inp = spec.make_inputs(s, "fwd", seed=5)
    out = np.empty(())

    def loss():
        ref.softmax_xent_fwd(s, inp["logits"], inp["labels"], loss=out)
        return float(out)
    d = np.empty((4, 6))
    ref.softmax_xent_bwd(s, inp["logits"], inp["labels"], dlogits=d)
    assert_close(d, numeric_grad(loss, inp["logits"]))


def test_sigmoid_bce_bwd():
    spec = get_op("sigmoid_bce")
    s = spec.shape_type(N=9)
    inp = spec.make_inputs(s, "fwd", seed=6)
    out = np.empty(())

    def loss():
        ref.sigmoid_bce_fwd(s, inp["logits"], inp["targets"], loss=out)
        return float(out)
    d = np.empty(9)
    ref.sigmoid_bce_bwd(s, inp["logits"], inp["targets"], dlogits=d)
    assert_close(d, numeric_grad(loss, inp["logits"]))


def test_sigmoid_bce_matches_the_textbook_formula():
    spec = get_op("sigmoid_bce")
    s = spec.shape_type(N=50)
    inp = spec.make_inputs(s, "fwd", seed=7)
    p = 1 / (1 + np.exp(-inp["logits"]))
    t = inp["targets"]
    out = np.empty(())
    ref.sigmoid_bce_fwd(s, inp["logits"], t, loss=out)
    assert float(out) == pytest.approx(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), rel=1e-12)


def test_sgd_update():
    s = get_op("sgd").shape_type(N=5, lr=0.25)
    w, dw = np.arange(5.0), np.ones(5)
    ref.sgd_update(s, dw, w=w)
    np.testing.assert_array_equal(w, np.arange(5.0) - 0.25)
