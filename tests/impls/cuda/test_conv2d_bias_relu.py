"""conv2d_bias_relu on cupy_opt: conv2d fprop's kernels from their -DCONV_RELU=1 modules. Every launch configuration
(each fprop tile, split-K through both reductions, the small-layer and direct kernels, depthwise, groups) forced
through the registered wrapper against the oracle's composition (gpu-marked); on the CPU, that the cases cover every
fprop kernel and that the ReLU epilogue costs no register and no spill (NVRTC + ptxas)."""

from __future__ import annotations

import re

import pytest

import impls.cuda.conv2d as conv
from harness.ops.conv2d import Conv2dShape
from harness.testing import assert_matches_oracle
from impls.cuda.common import cuda_files


def forced(shape: Conv2dShape, func: str, bm: int, bn: int, splits: int, bk: int = conv.BK) -> conv.Launch:
    """An implicit-GEMM fprop launch of `func` with (about) `splits` reduction splits, as _plan would build it."""
    rows, cols, red, zdim = conv.gemm_dims(shape, "fprop")
    ktiles = conv._cuda.blocks(red, bk)
    kt_per = conv._cuda.blocks(ktiles, splits)
    tiles = conv._cuda.blocks(rows, bm) * conv._cuda.blocks(cols, bn)
    return conv.Launch(func, bm, bn, tiles, conv._cuda.blocks(ktiles, kt_per), kt_per, zdim, bk)


WIDE, DEEP = Conv2dShape(3, 40, 9, 11, 200, 3, 3, 1, 1), Conv2dShape(2, 512, 7, 7, 40, 3, 3, 2, 1)
NARROW, SMALL = Conv2dShape(2, 64, 5, 5, 16, 3, 3, 1, 1), Conv2dShape(2, 16, 12, 12, 32, 3, 3, 1, 1)
GROUPED = Conv2dShape(2, 16, 8, 8, 24, 3, 3, 1, 1, groups=4)
CASES = {  # id: (shape, the launch forced; None: the one cupy_opt chooses)
    "128x128": (WIDE, forced(WIDE, "conv_fprop_128x128", 128, 128, 1)),
    "128x128-split-5": (WIDE, forced(WIDE, "conv_fprop_128x128", 128, 128, 5)),
    "128x64-split-72-warp-reduce": (DEEP, forced(DEEP, "conv_fprop_128x64", 128, 64, 72)),
    "256x16": (NARROW, forced(NARROW, "conv_fprop_256x16", 256, 16, 1)),
    "256x16-split-9": (NARROW, forced(NARROW, "conv_fprop_256x16", 256, 16, 9)),
    "128x32_s": (SMALL, forced(SMALL, "conv_fprop_128x32_s", 128, 32, 1, conv.SMALL_BK)),
    "128x32_s-split-2": (SMALL, forced(SMALL, "conv_fprop_128x32_s", 128, 32, 2, conv.SMALL_BK)),
    "direct": (Conv2dShape(2, 3, 13, 11, 20, 3, 3, 1, 1), conv.direct_launch(Conv2dShape(2, 3, 13, 11, 20))),
    "direct-split": (Conv2dShape(4, 32, 12, 12, 32), conv.direct_split_launch(Conv2dShape(4, 32, 12, 12, 32))),
    "groups-4": (GROUPED, forced(GROUPED, "conv_fprop_128x32_s", 128, 32, 1, conv.SMALL_BK)),
    "depthwise": (Conv2dShape(2, 8, 9, 9, 8, 3, 3, 2, 1, groups=8), None),
}


def test_the_cases_cover_every_fprop_kernel_and_both_reductions():
    funcs = set(re.findall(r"FPROP\((conv_fprop_\w+),", cuda_files()[conv.IGEMM].read_text()))
    funcs |= set(re.findall(r"^(conv_fprop_\w+)\(", cuda_files()[conv.DIRECT].read_text(), re.M))
    launches = [launch for _, launch in CASES.values() if launch is not None]
    assert funcs == {launch.func for launch in launches}, funcs
    splits = {launch.splits for launch in launches}
    assert 1 in splits and any(1 < n < conv.WARP_REDUCE_SPLITS for n in splits)
    assert max(splits) >= conv.WARP_REDUCE_SPLITS
    assert conv._depthwise(CASES["depthwise"][0])


pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")
from test_gemm_resources import ptxas_report  # noqa: E402


@pytest.mark.parametrize("name", [conv.NAIVE, conv.IGEMM, conv.DIRECT])
def test_the_relu_epilogue_costs_no_register(name: str):
    plain, relu = ptxas_report(name, "sm_90"), ptxas_report(name, "sm_90", conv.RELU)
    fprop = [k for k in plain if "fprop" in k or "splitk" in k]
    assert fprop and all(relu[k] == plain[k] for k in fprop), {k: (plain[k], relu[k]) for k in fprop}


@pytest.mark.gpu
@pytest.mark.parametrize(("shape", "launch"), list(CASES.values()), ids=list(CASES))
def test_every_fprop_configuration_applies_the_relu(monkeypatch, shape, launch):
    """The launch forced through cupy_opt's conv2d_bias_relu wrapper, on the oracle's seeds with poisoned outputs
    (a ReLU missing, or applied to split-K partials, fails the check: about half the outputs are negative)."""
    with monkeypatch.context() as m:
        if launch is not None:
            m.setattr(conv, "_launch_config", lambda s, p, small=True: launch)
        assert_matches_oracle("conv2d_bias_relu", "fprop", "cupy_opt", [shape])
