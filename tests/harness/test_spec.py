"""Op specs: FLOP and byte counts, seeded inputs, shape parsing and validation."""

import numpy as np
import pytest

from harness.errors import UsageError
from harness.ops import all_ops, get_op
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.ops.maxpool2d import Pool2dShape
from harness.spec import parse_shape, shape_str


def test_conv2d_counts_follow_the_implicit_gemm_sizes():
    s = Conv2dShape(N=2, C=3, H=8, W=8, K=4, R=3, S=3, stride=2, pad=1)
    assert (s.P, s.Q) == (4, 4)
    spec = get_op("conv2d")
    macs = 2 * 4 * 4 * 4 * 3 * 3 * 3  # N·P·Q · K · C·R·S
    assert spec.flops(s, "dgrad") == 2 * macs
    assert spec.flops(s, "fprop") == 2 * macs + 2 * 4 * 4 * 4  # + bias adds
    # fprop reads x, w, b and writes y, 4 bytes each
    assert spec.bytes(s, "fprop") == 4 * (2 * 3 * 8 * 8 + 4 * 3 * 3 * 3 + 4 + 2 * 4 * 4 * 4)


def test_gemm_counts_and_fp64_bytes():
    s = GemmShape(M=5, N=7, K=3, bias=True, relu=True)
    spec = get_op("gemm")
    assert spec.flops(s, "fwd") == 2 * 5 * 7 * 3 + 2 * 5 * 7
    assert spec.bytes(s, "fwd", float_bytes=8) == 8 * (5 * 3 + 3 * 7 + 7 + 5 * 7)
    assert spec.flops(s, "bwd") == 4 * 5 * 7 * 3 + 5 * 7


def test_inplace_sgd_counts_w_read_and_written_once():
    spec = get_op("sgd")
    s = spec.shapes("smoke")[2]
    assert spec.bytes(s, "update") == 3 * 4 * s.N


@pytest.mark.parametrize("op", list(all_ops()))
def test_inputs_are_seeded_signed_and_never_all_zero(op):
    spec = get_op(op)
    for p in spec.passes:
        for shape in spec.shapes("smoke"):
            a = spec.make_inputs(shape, p, seed=1)
            b = spec.make_inputs(shape, p, seed=1)
            c = spec.make_inputs(shape, p, seed=2)
            for name, arr in a.items():
                np.testing.assert_array_equal(arr, b[name])
                if name in ("labels", "targets"):  # class indices and 0/1 targets may legitimately be 0
                    continue
                assert np.any(arr != 0), (op, p, name)
                if arr.size > 8 and name != "y":
                    assert (arr < 0).any() and (arr > 0).any(), (op, p, name)
                    assert not np.array_equal(arr, c[name])


def test_every_op_has_the_named_sets():
    for name, spec in all_ops().items():
        assert {"smoke", "thesis", "edge"} <= set(spec.shape_sets), name


def test_thesis_sets_follow_workloads():
    convs = get_op("conv2d").shapes("thesis")
    assert Conv2dShape(32, 3, 32, 32, 16) in convs  # thesis-1 first conv
    assert Conv2dShape(32, 32, 12, 12, 32) in convs  # thesis-4 third conv: 50 -> 25 -> 12
    assert GemmShape(32, 100, 2048, bias=True) in get_op("gemm").shapes("thesis")  # 32 x 2048 x 100
    assert Pool2dShape(32, 16, 32, 32) in get_op("maxpool2d").shapes("thesis")


def test_parse_shape_round_trips():
    s = Conv2dShape(1, 3, 13, 13, 8, 1, 1, 1, 0)
    assert parse_shape(Conv2dShape, shape_str(s)) == s
    assert parse_shape(GemmShape, "M=2,N=3,K=4,relu=1") == GemmShape(2, 3, 4, relu=True)


@pytest.mark.parametrize("text, message", [
    ("N=1,C=1,H=2,W=2,K=1,R=5,S=5,pad=0", "larger than the padded input"),
    ("N=0,C=1,H=2,W=2,K=1", "N must be >= 1"),
    ("N=1,C=1,H=2,W=2,K=1,pad=-1", "pad must be >= 0"),
    ("N=1,C=1,H=2,W=2,K=1,Z=3", "unknown shape key 'Z'"),
    ("N=1,C=1", "missing H, W, K"),
    ("N=one,C=1,H=2,W=2,K=1", "bad value 'one'"),
    ("N", "expected KEY=VALUE"),
])
def test_impossible_or_malformed_shapes_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError, match=message) as info:
        parse_shape(Conv2dShape, text)
    assert "\n" not in str(info.value)


def test_pool_window_larger_than_input():
    with pytest.raises(UsageError, match="larger than the padded input 2x2"):
        Pool2dShape(1, 1, 2, 2, 3, 3, 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"R": 2, "S": 2, "pad": 2}, "padding 2x2 must be smaller than the window 2x2"),
    ({"R": 3, "S": 2, "pad_h": 1, "pad_w": 2}, "padding 1x2 must be smaller than the window 3x2"),
    ({"R": 1, "S": 3, "pad_h": 1}, "padding 1x0 must be smaller than the window 1x3"),
    ({"R": 3, "S": 3, "pad_w": -1}, "pad must be >= 0"),
    ({"R": 8, "S": 2, "pad_h": 1}, "window 8x2 is larger than the padded input 7x5"),
    ({"R": 2, "S": 6, "pad_h": 1}, "window 2x6 is larger than the padded input 7x5"),
    ({"stride_h": 0}, "stride_h"),
    ({"stride": 2, "stride_w": 1}, "disagree"),
])
def test_invalid_pool_shapes_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Pool2dShape(1, 1, 5, 5, **kwargs)


def test_pool_shape_per_axis_geometry_and_strings():
    s = Pool2dShape(2, 3, 9, 8, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=1)
    assert (s.P, s.Q) == ((9 + 2 - 3) // 2 + 1, (8 + 2 - 2) // 1 + 1)
    assert shape_str(s) == "N=2,C=3,H=9,W=8,R=3,S=2,stride_h=2,stride_w=1,pad=1"
    assert parse_shape(Pool2dShape, shape_str(s)) == s
    assert shape_str(Pool2dShape(1, 2, 9, 9, 3, 3, 2)) == "N=1,C=2,H=9,W=9,R=3,S=3,stride=2"  # rows as before
    with pytest.raises(UsageError, match="stride differs per axis"):
        _ = s.stride
    assert Pool2dShape(1, 1, 5, 5, 3, 3, 2, 1).pad == 1


def test_byte_and_flop_counts_of_huge_shapes_do_not_overflow():
    from harness.ops._eltwise import TensorShape

    n = 99_999_999_999
    spec = get_op("relu")
    assert spec.bytes(TensorShape(n, n), "fwd") == 2 * 4 * n * n  # past int64: Python ints, exact
    assert spec.flops(TensorShape(n, n), "fwd") >= n * n
