"""GPU conv2d implementations (impls/conv2d_cuda.py) against the float64 oracle, and 64-bit indexing."""

import numpy as np
import pytest

from harness.ops.conv2d import SPEC, Conv2dShape
from harness.registry import get
from harness.testing import assert_matches_oracle
from tests.impls.reference.test_conv2d_geometry import GEOMETRY

pytestmark = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt", "cupy_im2col_cublas")


TILED_CASES = {
    "wide-K": Conv2dShape(3, 40, 9, 11, 200, 3, 3, 1, 1),  # 128×128 tiles
    "split-K-stride-2": Conv2dShape(2, 512, 7, 7, 40, 3, 3, 2, 1),
    "many-images": Conv2dShape(64, 8, 5, 5, 24, 1, 1, 1, 0),
    "stride-3-pad-2": Conv2dShape(1, 6, 10, 7, 3, 3, 3, 3, 2),  # 9 dgrad phases, uneven
    "1x1-stride-2": Conv2dShape(2, 5, 9, 9, 20, 1, 1, 2, 0),  # dgrad phases with no tap: dx = 0 there
    "narrow-stride-3": Conv2dShape(1, 2, 10, 7, 3, 3, 3, 3, 2),  # dgrad's C ≤ 4 kernel, 9 phases
    "narrow-K-65": Conv2dShape(2, 3, 9, 8, 65, 3, 3, 1, 1),  # its weight staging in chunks of 32 channels
}


@pytest.mark.parametrize("shape", list(TILED_CASES.values()), ids=list(TILED_CASES))
@pytest.mark.parametrize("pass_", list(SPEC.passes))
def test_tiled_tile_configurations_and_split_k(pass_, shape):
    """Shapes that take the 128×128 tile, split-K with stride 2, a 1×1 kernel over many small images, the stride
    phases of dgrad (uneven, and empty), and dgrad's narrow (C ≤ 4) kernel."""
    for name in IMPLS:
        assert_matches_oracle("conv2d", pass_, name, [shape])


# the CPU test's geometry (per-axis, dilated, grouped, depthwise, DeepBench's speech layer) and two larger ones
GEOMETRY_CASES = {
    **GEOMETRY,
    "deepbench-batch-8": Conv2dShape(8, 1, 40, 151, 8, 5, 20, stride_h=2, stride_w=8, pad_h=8, pad_w=8),
    "groups-32-resnext": Conv2dShape(2, 128, 14, 14, 128, 3, 3, 1, 1, groups=32),
}


@pytest.mark.parametrize("shape", list(GEOMETRY_CASES.values()), ids=list(GEOMETRY_CASES))
@pytest.mark.parametrize("pass_", list(SPEC.passes))
@pytest.mark.parametrize("name", ["cupy_naive", "cupy_opt", "cupy_im2col_cublas"])
def test_kernels_on_per_axis_dilation_and_groups(name, pass_, shape):
    """The project's kernels (direct, implicit GEMM per group with its depthwise kernels, im2col + cuBLAS) on
    per-axis stride/pad, dilation, groups and depthwise layers (the CPU implementations run the same cases in
    tests/impls/reference/test_conv2d_geometry.py)."""
    assert_matches_oracle("conv2d", pass_, name, [shape])


@pytest.mark.parametrize("name", ["cupy_naive", "cupy_opt"])
def test_fprop_offsets_past_2_31_elements(name):
    """x and y with more than 2^31 elements (8.6 GB each): the last image must land in the right place."""
    import cupy

    s = Conv2dShape(N=2**31 // (4 * 64 * 64) + 3, C=4, H=64, W=64, K=4, R=3, S=3, stride=1, pad=1)
    if cupy.cuda.Device().mem_info[0] < 20 * 2**30:
        pytest.skip("needs 20 GiB of free GPU memory")
    rng = np.random.default_rng(2)
    one = rng.uniform(-1, 1, (1, s.C, s.H, s.W)).astype(np.float32)
    x = cupy.empty((s.N, s.C, s.H, s.W), dtype=cupy.float32)
    x[...] = cupy.asarray(one)  # every image equal: the last one's output equals the first one's
    w = cupy.asarray(rng.uniform(-1, 1, (s.K, s.C, s.R, s.S)).astype(np.float32))
    b = cupy.asarray(rng.uniform(-1, 1, s.K).astype(np.float32))
    y = cupy.full((s.N, s.K, s.P, s.Q), np.nan, dtype=np.float32)
    get("conv2d", "fprop", name).fn(s, x, w, b, y=y)
    small = Conv2dShape(1, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad)
    ref = cupy.full((1, s.K, s.P, s.Q), np.nan, dtype=np.float64)
    get("conv2d", "fprop", "numpy_ref").fn(small, x[:1].astype(np.float64), w.astype(np.float64),
                                           b.astype(np.float64), y=ref)
    assert float(cupy.abs(y[-1] - ref[0]).max()) < 1e-4
    assert float(cupy.abs(y[0] - ref[0]).max()) < 1e-4
