"""The checker: tolerances, and deliberately broken implementations that it must flag."""

import math

import numpy as np
import pytest

from harness.measure.check import ReferenceCache, check, compare, tolerance
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import Impl, get
from impls.reference import cpu as numpy_opt


def _impl(fn, op="conv2d", pass_="fprop", math_mode="fp32"):
    return Impl(op, pass_, "broken", fn, "cpu", math_mode)


def _check(fn, shape, op="conv2d", pass_="fprop"):
    return check(_impl(fn, op, pass_), ReferenceCache(get_op(op), shape, pass_))


SHAPE = Conv2dShape(N=2, C=3, H=9, W=9, K=4, R=3, S=3, stride=2, pad=1)


def test_tolerance_grows_with_reduction_length_and_precision():
    assert tolerance("fp32", 1) == pytest.approx(8 * 2**-24 * 2)
    assert tolerance("fp32", 10_000) > tolerance("fp32", 100) > tolerance("fp32", 1)
    assert tolerance("tf32", 100) > 8 * 2**-11  # TF32 rounds the inputs
    assert tolerance("fp32", 1, transcendental=True) > tolerance("fp32", 1)
    assert tolerance("fp64", 10_000) < 1e-12


def test_good_implementation_passes():
    r = _check(numpy_opt.conv2d_fprop, SHAPE)
    assert r.status == "pass" and r.err < r.rtol and r.seeds == 3


def test_returns_zeros():
    def zeros(s, x, w, b, *, y):
        y[...] = 0
    r = _check(zeros, SHAPE)
    assert r.status == "fail" and r.err == pytest.approx(1.0)


def test_leaves_a_corner_unwritten():
    def corner(s, x, w, b, *, y):
        full = np.empty_like(y)
        numpy_opt.conv2d_fprop(s, x, w, b, y=full)
        y[:, :, 1:, :] = full[:, :, 1:, :]
        y[:, :, 0, 1:] = full[:, :, 0, 1:]  # y[:, :, 0, 0] stays NaN
    r = _check(corner, SHAPE)
    assert r.status == "nan" and "non-finite" in r.reason


def test_off_by_one_padding():
    def pad_off(s, x, w, b, *, y):
        xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))[:, :, :s.H, :s.W]  # shifted by one pixel
        xp = np.concatenate([np.zeros_like(xp[:, :, :1]), xp[:, :, :-1]], axis=2)
        numpy_opt.conv2d_fprop(s, xp, w, b, y=y)
    assert _check(pad_off, SHAPE).status == "fail"


def test_ignores_stride():
    def no_stride(s, x, w, b, *, y):
        s1 = Conv2dShape(s.N, s.C, s.H, s.W, s.K, s.R, s.S, 1, s.pad)
        full = np.empty((s.N, s.K, s1.P, s1.Q), np.float32)
        numpy_opt.conv2d_fprop(s1, x, w, b, y=full)
        y[...] = full[:, :, :s.P, :s.Q]
    assert _check(no_stride, SHAPE).status == "fail"


def test_transposed_weights():
    def transposed(s, x, w, b, *, y):
        numpy_opt.conv2d_fprop(s, x, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), b, y=y)
    assert _check(transposed, SHAPE).status == "fail"


def test_wrong_shape_and_dtype_have_their_own_status():
    def wrong_shape(s, x, w, b, *, y):
        return {"y": np.zeros((1, 2, 3), np.float32)}

    def wrong_dtype(s, x, w, b, *, y):
        out = np.empty(y.shape, np.float64)
        numpy_opt.conv2d_fprop(s, x, w, b, y=out)
        return {"y": out}
    assert _check(wrong_shape, SHAPE).status == "bad-shape"
    assert _check(wrong_dtype, SHAPE).status == "bad-dtype"


def test_an_exception_is_an_error_row_with_the_message():
    def raises(s, x, w, b, *, y):
        raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS\nmore lines")
    r = _check(raises, SHAPE)
    assert r.status == "error" and r.reason == "RuntimeError: CUDA_ERROR_ILLEGAL_ADDRESS"


def test_skipped_sgd_update_is_caught():
    def no_update(s, dw, *, w):
        pass
    r = _check(no_update, get_op("sgd").shapes("smoke")[2], op="sgd", pass_="update")
    assert r.status == "fail"


def test_wrong_tie_or_small_error_in_loss_is_caught():
    shape = get_op("softmax_xent").shapes("smoke")[2]

    def off_by_eps(s, logits, labels, *, loss):
        numpy_opt.softmax_xent_fwd(s, logits, labels, loss=loss)
        loss[...] = loss * (1 + 1e-4)  # far above fp32 rounding, far below what a glance would notice
    assert _check(off_by_eps, shape, "softmax_xent", "fwd").status == "fail"


def test_compare_judges_near_zero_elements_at_the_output_scale():
    ref = np.array([1.0, -1.0, 1e-9])
    out = ref + np.array([0.0, 0.0, 1e-7])  # large relative, tiny against the output's scale
    c = compare(out.astype(np.float32), ref, rtol=tolerance("fp32", 100), expected_dtype=np.float32)
    assert c.status == "pass"
    c = compare(out.astype(np.float32) + np.float32(1e-3), ref, rtol=tolerance("fp32", 100), expected_dtype=np.float32)
    assert c.status == "fail" and not math.isinf(c.viol)


def test_oracle_row_is_labelled_not_checked_against_itself():
    r = check(get("conv2d", "fprop", "numpy_ref"), ReferenceCache(get_op("conv2d"), SHAPE, "fprop"))
    assert r.status == "oracle"


def test_an_oracle_that_fails_is_named_and_not_blamed_on_the_implementation(monkeypatch):
    from harness import registry
    from harness.measure.check import ReferenceCache, check
    from harness.ops import get_op

    registry.discover()
    calls = []

    def oracle_out_of_memory(s, x, *, y):
        calls.append(1)
        raise MemoryError("cannot allocate 80 GiB")
    oracle = registry.oracle("relu", "fwd")
    monkeypatch.setitem(registry._REGISTRY, oracle.key,
                        registry.Impl("relu", "fwd", oracle.name, oracle_out_of_memory, "cpu", "fp64", family="oracle"))
    spec = get_op("relu")
    refs = ReferenceCache(spec, spec.shapes("smoke")[0], "fwd")
    for name in ("numpy_opt", "numpy_opt"):  # the second implementation does not retry the oracle
        result = check(registry.get("relu", "fwd", name), refs)
        assert result.status == "skipped"
        assert "the float64 oracle failed on this case (MemoryError: cannot allocate 80 GiB)" in result.reason
    assert len(calls) == 1
