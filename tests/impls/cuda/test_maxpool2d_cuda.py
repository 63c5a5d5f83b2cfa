"""GPU maxpool2d (impls/maxpool2d_cuda.py) against the float64 oracle, the tie rule, every kernel path."""

import numpy as np
import pytest

from harness.ops.maxpool2d import SPEC, Pool2dShape, pool_forward_reference
from harness.registry import get
from harness.testing import assert_matches_oracle

pytestmark = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt")
# one shape per kernel of cupy_opt: 16-byte path (W % 4 == 0), 8-byte path (W % 4 == 2), generic (odd W,
# other windows and strides, overlapping windows), each with an odd H (a last row no window covers)
PATHS = [Pool2dShape(2, 3, 9, 12), Pool2dShape(2, 3, 9, 10), Pool2dShape(2, 3, 9, 11),
         Pool2dShape(2, 2, 11, 11, 3, 3, 2), Pool2dShape(1, 2, 8, 9, 3, 2, 1), Pool2dShape(1, 1, 10, 10, 2, 2, 3)]


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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("W", [4, 6, 5], ids=["v4", "v2", "generic"])
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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [*PATHS, Pool2dShape(2, 3, 7, 7, 7, 7, 1)], ids=str)
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
