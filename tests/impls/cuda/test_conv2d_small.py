"""cupy_opt's small-layer kernels (conv_{fprop,dgrad}_128x32_s and conv_wgrad_32x128_s: BK = 32, index table in
shared memory): which shapes take them (CPU, the SM count fixed at the H200's 132), and every split-K of them and
of the BK = 8 choice against the float64 oracle on awkward geometry (gpu-marked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import impls.cuda.conv2d as conv
from harness.ops.conv2d import SPEC, Conv2dShape
from harness.testing import assert_matches_oracle

SMALL = {
    "odd-rows-K-5": Conv2dShape(3, 7, 9, 11, 5, 3, 3, 1, 1),  # 297 rows: a partial 128-row tile, 5 of 32 columns
    "K-32-C-32": Conv2dShape(2, 32, 7, 5, 32, 3, 3, 1, 1),  # the longest thesis table (288 entries)
    "table-full-352": Conv2dShape(1, 22, 6, 6, 16, 4, 4, 1, 2),  # fprop/wgrad table exactly TAB_MAX entries
    "stride-2-phases": Conv2dShape(2, 6, 11, 9, 20, 3, 3, 2, 1),  # dgrad: 4 uneven phases
    "per-axis-dilated": Conv2dShape(2, 5, 12, 10, 7, 3, 2, stride_h=2, stride_w=1, pad_h=2, pad_w=1, dilation_h=2,
                                    dilation_w=3),
    "groups-4": Conv2dShape(2, 16, 8, 8, 24, 3, 3, 1, 1, groups=4),  # 6 columns (wgrad: rows) per group on grid.z
    "C-3-narrow-rival": Conv2dShape(4, 3, 12, 12, 16, 3, 3, 1, 1),  # dgrad: the narrow kernel's territory
    "long-wgrad-reduction": Conv2dShape(8, 3, 30, 30, 16, 3, 3, 1, 1),  # 7200 terms: many splits of 32
}
PASSES = ("fprop", "dgrad", "wgrad")


def test_table_limit_and_tiles_match_the_kernels():
    """The host's TAB_MAX, tiles and slice are the ones conv2d_implicit_gemm.cu compiles in."""
    src = (Path(conv.__file__).parent / conv.IGEMM).read_text()
    assert int(re.search(r"#define TAB_MAX (\d+)", src).group(1)) == conv.TAB_MAX
    for pass_, (bm, bn) in conv.SMALL_TILES.items():
        assert f"{pass_.upper()}(conv_{pass_}_{bm}x{bn}_s, {bm}, {bn}, 4, 4, {conv.SMALL_BK}, true," in src


@pytest.fixture
def h200(monkeypatch):
    monkeypatch.setattr(conv, "_sm_count", lambda: 132)


def test_thesis_layers_take_the_small_kernels_and_resnet50_does_not(h200):
    """Every thesis fprop takes the small kernel (dgrad and wgrad: the model may keep the narrow or BK = 8 kernel
    on some layers); no ResNet-50 layer (K, C ≥ 64 or long tables) changes kernel."""
    thesis = [s for s in SPEC.shape_sets["thesis"] if not conv._depthwise(s)]
    assert thesis
    for s in thesis:
        assert conv._launch_config(s, "fprop").func == "conv_fprop_128x32_s", s
    for s in SPEC.shape_sets["resnet50"]:
        for pass_ in PASSES:
            assert conv._launch_config(s, pass_) == conv._launch_config(s, pass_, small=False), (s, pass_)


@pytest.mark.parametrize("shape", list(SMALL.values()), ids=list(SMALL))
@pytest.mark.parametrize("pass_", PASSES)
def test_small_launches_cover_the_reduction_once(h200, pass_, shape):
    """Each split-K of the small kernel covers every slice of 32 exactly once, no split is empty, and the grid
    stays inside grid.y."""
    rows, cols, red, zdim = conv.gemm_dims(shape, pass_)
    assert conv._small_eligible(pass_, rows, cols, red)
    ktiles = -(-red // conv.SMALL_BK)
    bm, bn = conv.SMALL_TILES[pass_]
    launches = conv.small_launches(pass_, rows, cols, red, zdim)
    assert launches[0].splits == 1
    for c in launches:
        assert c.bk == conv.SMALL_BK and c.splits * c.kt_per >= ktiles > (c.splits - 1) * c.kt_per
        assert c.tiles == -(-rows // bm) * -(-cols // bn) and c.splits <= 65535 and c.phases == zdim


def _variants(shape: Conv2dShape, pass_: str) -> list[conv.Launch]:
    """The BK = 8 choice, the small kernel unsplit and at the most splits, and the chosen launch."""
    rows, cols, red, zdim = conv.gemm_dims(shape, pass_)
    small = conv.small_launches(pass_, rows, cols, red, zdim)
    return [conv._launch_config(shape, pass_, small=False), small[0], small[-1], conv._launch_config(shape, pass_)]


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(SMALL.values()), ids=list(SMALL))
@pytest.mark.parametrize("pass_", PASSES)
def test_every_small_variant_matches_the_oracle(monkeypatch, pass_, shape):
    """Each variant forced through cupy_opt's own wrapper, checked on the oracle's seeds with poisoned outputs."""
    for launch in _variants(shape, pass_):
        monkeypatch.setattr(conv, "_launch_config", lambda s, p, small=True, _l=launch: _l)
        assert_matches_oracle("conv2d", pass_, "cupy_opt", [shape])
        monkeypatch.undo()


@pytest.mark.gpu
@pytest.mark.parametrize("splits", [31, 36, 72])
def test_fprop_with_many_splits_sums_them_with_bias(monkeypatch, splits):
    """Forced split-K on both sides of WARP_REDUCE_SPLITS (splitk_reduce, then splitk_reduce_warp) in fprop, where
    the reduction also adds the bias: 72 slices of 8, one slice per split at 72."""
    shape = Conv2dShape(2, 64, 5, 5, 16, 3, 3, 1, 1)
    ktiles = -(-shape.Cg * shape.R * shape.S // conv.BK)
    kt_per = -(-ktiles // splits)
    tiles = -(-shape.N * shape.P * shape.Q // 256)
    launch = conv.Launch("conv_fprop_256x16", 256, 16, tiles, -(-ktiles // kt_per), kt_per, 1)
    assert (launch.splits >= conv.WARP_REDUCE_SPLITS) == (splits >= conv.WARP_REDUCE_SPLITS)
    monkeypatch.setattr(conv, "_launch_config", lambda s, p, small=True: launch)
    assert_matches_oracle("conv2d", "fprop", "cupy_opt", [shape])
