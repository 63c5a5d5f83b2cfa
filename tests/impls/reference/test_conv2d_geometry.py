"""Every CPU conv2d implementation (numpy_opt, torch_cpu, ...) against the float64 oracle on the geometry beyond the
thesis's square layers: per-axis stride and padding, dilation, groups and depthwise convolution, and DeepBench's
speech layer (1 channel, 5×20 filter, stride 2×8). The oracle itself is proven in test_oracle.py (finite
differences and a term-by-term loop); tests/impls/cuda/test_conv2d_cuda.py runs the same geometry on the GPU.
An implementation that cannot run here (torch not installed) is skipped with why.
"""

import pytest

from harness.ops.conv2d import SPEC, Conv2dShape
from harness.registry import all_impls
from harness.testing import assert_matches_oracle

GEOMETRY = {
    "deepbench": Conv2dShape(1, 1, 40, 151, 4, 5, 20, stride_h=2, stride_w=8, pad_h=8, pad_w=8),
    "per-axis": Conv2dShape(2, 3, 11, 8, 4, 3, 1, stride_h=1, stride_w=2, pad_h=1, pad_w=0),
    "dilation-2": Conv2dShape(2, 3, 12, 12, 5, 3, 3, 1, 2, dilation=2),
    "dilation-3-stride-2": Conv2dShape(1, 2, 13, 11, 3, 3, 2, 2, 1, dilation=3),  # uneven leftovers
    "groups-4": Conv2dShape(2, 8, 9, 9, 12, 3, 3, 2, 1, groups=4),  # K/G = 3 ≠ C/G = 2
    "depthwise": Conv2dShape(2, 16, 10, 10, 16, 3, 3, 1, 1, groups=16),
    "depthwise-5x5-stride-2": Conv2dShape(1, 8, 9, 9, 8, 5, 5, 2, 2, groups=8),
    "depthwise-multiplier-2": Conv2dShape(1, 4, 7, 7, 8, 3, 3, 1, 1, groups=4),
    "grouped-1x1-stride-2": Conv2dShape(2, 4, 6, 6, 4, 1, 1, 2, 0, groups=2),
    "everything": Conv2dShape(1, 6, 13, 17, 9, 3, 4, stride_h=2, stride_w=3, pad_h=3, pad_w=1, dilation_h=2,
                              dilation_w=3, groups=3),
}
CPU_IMPLS = sorted({i.name for i in all_impls() if i.op == "conv2d" and i.device == "cpu" and i.family != "oracle"})
_refs: dict = {}  # pass -> {shape: ReferenceCache}, one oracle result for every implementation


def test_the_cases_are_beyond_the_square_layers():
    assert not any(s.square for s in GEOMETRY.values())
    assert {"numpy_opt", "torch_cpu"} <= set(CPU_IMPLS)


@pytest.mark.parametrize("shape", list(GEOMETRY.values()), ids=list(GEOMETRY))
@pytest.mark.parametrize("pass_", list(SPEC.passes))
@pytest.mark.parametrize("name", CPU_IMPLS)
def test_cpu_implementations_match_the_oracle(name, pass_, shape):
    assert_matches_oracle("conv2d", pass_, name, [shape], refs=_refs.setdefault(pass_, {}))
