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
               Conv2dShape(2, 2, 6, 6, 2, 1, 1, 1, 0), Conv2dShape(1, 1, 5, 5, 2, 5, 5, 2, 2)]


@pytest.mark.parametrize("s", CONV_SHAPES, ids=str)
def test_conv2d_dgrad_and_wgrad(s):
    a = rng_arrays(hash(s) % 1000, x=(s.N, s.C, s.H, s.W), w=(s.K, s.C, s.R, s.S), b=(s.K,), g=(s.N, s.K, s.P, s.Q))
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


@pytest.mark.parametrize("s", [Pool2dShape(2, 2, 6, 6), Pool2dShape(1, 2, 7, 7, 3, 3, 2),
                               Pool2dShape(1, 1, 5, 6, 3, 2, 1)], ids=str)
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
