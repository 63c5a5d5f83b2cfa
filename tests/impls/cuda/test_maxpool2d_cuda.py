"""GPU maxpool2d (impls/cuda/maxpool2d.py) against the float64 oracle, the tie rule, every kernel path, per-axis
strides and padding (gpu-marked); which shapes take the vector path (no GPU needed)."""

import numpy as np
import pytest

from harness.ops.maxpool2d import SPEC, Pool2dShape, pool_forward_reference
from harness.registry import get
from harness.testing import assert_matches_oracle
from impls.cuda.maxpool2d import _bwd_kernel, _fwd_kernel, vector_width

gpu = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt")
# one shape per kernel of cupy_opt: 16-byte path (W % 4 == 0), 8-byte path (W % 4 == 2), odd W (the 2×2 cell
# kernels, with an odd and an even H), generic (other windows and strides, overlapping
# windows), each with an odd H (a last row no window covers) unless said
PATHS = [Pool2dShape(2, 3, 9, 12), Pool2dShape(2, 3, 9, 10), Pool2dShape(2, 3, 9, 11), Pool2dShape(2, 3, 10, 11),
         Pool2dShape(2, 2, 11, 11, 3, 3, 2), Pool2dShape(1, 2, 8, 9, 3, 2, 1), Pool2dShape(1, 1, 10, 10, 2, 2, 3)]
# per-axis strides and padding (all on the generic path): 2×2 windows that would be the vector path's but for the
# padding or one stride, padding on one axis or both, ResNet's 3×3/2 pad 1, pad > window/2, one row or column,
# windows that hold padding on both sides, strides larger than the window
PADDED = [Pool2dShape(2, 3, 9, 12, 2, 2, 2, 1), Pool2dShape(2, 3, 8, 12, 2, 2, stride_h=2, stride_w=1),
          Pool2dShape(2, 3, 9, 8, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=1),
          Pool2dShape(2, 4, 15, 15, 3, 3, 2, 1), Pool2dShape(1, 2, 6, 7, 3, 3, 1, pad_h=2, pad_w=0),
          Pool2dShape(2, 2, 1, 7, 1, 3, stride_h=1, stride_w=2, pad_w=1),
          Pool2dShape(1, 2, 6, 1, 3, 1, stride_h=2, stride_w=1, pad_h=2), Pool2dShape(1, 1, 2, 2, 3, 3, 1, 1),
          Pool2dShape(1, 2, 8, 5, 3, 5, stride_h=4, stride_w=5, pad_h=2, pad_w=4)]


@pytest.mark.parametrize("shape", [*PADDED, Pool2dShape(2, 3, 9, 11), Pool2dShape(2, 2, 11, 11, 3, 3, 2)], ids=str)
def test_only_unpadded_2x2_stride_2_takes_the_vector_path(shape):
    assert vector_width(shape) == 0
    assert vector_width(Pool2dShape(2, 3, 9, 12)) == 4 and vector_width(Pool2dShape(2, 3, 9, 10)) == 2


@gpu
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", list(SPEC.passes))
@pytest.mark.parametrize("shape", PADDED, ids=str)
def test_per_axis_strides_and_padding_match_the_oracle(shape, pass_, impl):
    assert_matches_oracle("maxpool2d", pass_, impl, [shape])


def test_odd_width_2x2_takes_the_cell_kernels():
    """2×2/2 unpadded with an odd width (the thesis's 25×25 layer) runs one thread per window / 2×2 cell, not the
    generic per-element window loops; other geometry keeps the generic kernels."""
    odd = Pool2dShape(32, 32, 25, 25)
    assert vector_width(odd) == 0
    assert _bwd_kernel(0, odd) == "maxpool_bwd_2x2_cell" and _fwd_kernel(0, odd) == "maxpool_fwd_2x2_cell"
    for other in (Pool2dShape(2, 2, 11, 11, 3, 3, 2), Pool2dShape(2, 3, 9, 12, 2, 2, 2, 1)):
        assert _bwd_kernel(0, other) == "maxpool_bwd_generic" and _fwd_kernel(0, other) == "maxpool_fwd_generic"


@gpu
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", list(SPEC.passes))
@pytest.mark.parametrize("shape", PATHS, ids=str)
def test_every_kernel_path_matches_the_oracle(shape, pass_, impl):
    assert_matches_oracle("maxpool2d", pass_, impl, [shape])


def _bwd(impl: str, s: Pool2dShape, x: np.ndarray, dy: np.ndarray, offset: int = 0) -> np.ndarray:
    """dx from `impl` on float32 copies of x, its exact forward y and dy (x and dx `offset` elements off an
    aligned allocation)."""
    import cupy

    def on_gpu(a, off=0):
        buf = cupy.full(a.size + off, np.nan, dtype=cupy.float32)
        view = buf[off:].reshape(a.shape)
        view[...] = cupy.asarray(a.astype(np.float32))
        return view

    x32 = x.astype(np.float32)
    dx = on_gpu(np.full(x.shape, np.nan), offset)
    get("maxpool2d", "bwd", impl).fn(s, x=on_gpu(x32, offset), y=on_gpu(pool_forward_reference(s, x32)), dy=on_gpu(dy),
                                     dx=dx)
    return dx.get()


@gpu
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("W", [4, 6, 5], ids=["v4", "v2", "odd-width"])
def test_ties_go_to_the_first_maximum_in_row_major_order(impl, W):
    """Constructed 2×2 windows with ties: the gradient lands on the first maximal element (r, then s)."""
    s = Pool2dShape(1, 1, 2, W)
    # windows (columns 0-1 and 2-3): [[5, 5], [5, 5]] -> (0, 0);  [[1, 7], [7, 7]] -> (0, 3)
    x = np.array([[5, 5, 1, 7, 0, 0], [5, 5, 7, 7, 0, 0]], dtype=np.float64)[:, :W].reshape(1, 1, 2, W)
    dy = np.arange(1, s.Q + 1, dtype=np.float64).reshape(1, 1, 1, s.Q) * 2.0
    dx = _bwd(impl, s, x, dy)[0, 0]
    expected = np.zeros((2, W))
    expected[0, 0], expected[0, 3] = dy[0, 0, 0, 0], dy[0, 0, 0, 1]
    if s.Q == 3:  # the third window (all zeros): its first element
        expected[0, 4] = dy[0, 0, 0, 2]
    np.testing.assert_array_equal(dx, expected)

    # second row pair of windows: [[2, 1], [9, 9]] -> (1, 0); [[3, 3], [3, 8]] -> (1, 3)
    x2 = np.array([[2, 1, 3, 3, 0, 0], [9, 9, 3, 8, 0, 0]], dtype=np.float64)[:, :W].reshape(1, 1, 2, W)
    dx2 = _bwd(impl, s, x2, dy)[0, 0]
    expected2 = np.zeros((2, W))
    expected2[1, 0], expected2[1, 3] = dy[0, 0, 0, 0], dy[0, 0, 0, 1]
    if s.Q == 3:
        expected2[0, 4] = dy[0, 0, 0, 2]
    np.testing.assert_array_equal(dx2, expected2)


@gpu
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [*PATHS, *PADDED, Pool2dShape(2, 3, 7, 7, 7, 7, 1)], ids=str)
def test_many_ties_equal_the_oracle_exactly(shape, impl):
    """Inputs from {0, 1, 2} (ties in almost every window) and integer dy, so every sum is exact: the result must
    equal the oracle's (first maximum by argmax, overlapping windows summed) bit for bit, also at a misaligned x."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(shape.N, shape.C, shape.H, shape.W)).astype(np.float64)
    dy = rng.integers(1, 9, size=(shape.N, shape.C, shape.P, shape.Q)).astype(np.float64)
    ref = np.empty_like(x)
    get("maxpool2d", "bwd", "numpy_ref").fn(shape, x=x, y=pool_forward_reference(shape, x), dy=dy, dx=ref)
    for offset in (0, 1):
        np.testing.assert_array_equal(_bwd(impl, shape, x, dy, offset), ref)


@gpu
@pytest.mark.parametrize("impl", IMPLS)
def test_padding_is_never_the_maximum(impl):
    """3×3 windows, stride 1, pad 1 over a 2×2 image: every window holds the whole image plus padding. All equal
    (also all −inf, which ties the padding's −inf): every window's gradient goes to its first real element (0, 0)."""
    import cupy

    s = Pool2dShape(1, 1, 2, 2, 3, 3, 1, 1)
    dy = np.array([[1.0, 2.0], [4.0, 8.0]]).reshape(1, 1, 2, 2)
    for value in (5.0, -np.inf, 1.0):
        x = np.full((1, 1, 2, 2), value) if value != 1.0 else np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
        y = cupy.full((1, 1, 2, 2), np.nan, dtype=cupy.float32)
        get("maxpool2d", "fwd", impl).fn(s, x=cupy.asarray(x, dtype=cupy.float32), y=y)
        np.testing.assert_array_equal(y.get(), np.full((1, 1, 2, 2), x.max()))
        expected = np.zeros((2, 2))
        expected[(0, 0) if value != 1.0 else (1, 1)] = dy.sum()
        np.testing.assert_array_equal(_bwd(impl, s, x, dy)[0, 0], expected)
