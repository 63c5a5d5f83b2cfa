"""cupy_opt's 1x1 layers as a batched GEMM per image (impls/cuda/conv2d.py: pointwise, gemm_warptile.cu's bnn/btn
kernels): which layers take it and the products they run (CPU), the tuner never splitting a batch (CPU), and the
layers against the float64 oracle, aligned and not, fused ReLU included (gpu-marked)."""

from __future__ import annotations

import pytest

import impls.cuda.conv2d as conv
from harness.ops.conv2d import SPEC, Conv2dShape
from harness.testing import assert_matches_oracle
from impls.cuda import gemm_tune as tune

H200 = {"sms": 132, "smem_limit": 227 * 1024}


def test_resnet50_1x1_stride_1_layers_take_the_batched_gemm_and_nothing_else_does():
    for s in SPEC.shapes("resnet50"):
        one = (s.R, s.S, s.stride) == (1, 1, 1)
        assert conv.pointwise(s, "fprop") == one and conv.pointwise(s, "dgrad") == one, s
        assert not conv.pointwise(s, "wgrad")
        for pass_ in ("fprop", "dgrad"):  # the plan says so, with or without the small-layer kernels
            for small in (True, False):
                assert (conv._plan(s, pass_, small, 132).func == conv.POINTWISE) == one, (s, pass_, small)
    for set_name in ("thesis", "smoke", "edge"):  # small K or C, padding, strides, groups: the implicit GEMM
        assert not any(conv.pointwise(s, "fprop") for s in SPEC.shapes(set_name)), set_name
    assert not conv.pointwise(Conv2dShape(2, 64, 8, 8, 63, 1, 1, 1, 0), "fprop")  # fewer rows than a 64-row tile
    assert conv.pointwise(Conv2dShape(2, 64, 8, 8, 63, 1, 1, 1, 0), "dgrad")  # dgrad's rows are C = 64


def test_pointwise_products_are_the_per_image_gemms():
    s = Conv2dShape(32, 256, 14, 14, 1024, 1, 1, 1, 0)
    assert conv._pointwise_product(s, "fprop") == ("bnn", 1024, 196, 256)  # Y_n = W·X_n: K × HW × C
    assert conv._pointwise_product(s, "dgrad") == ("btn", 256, 196, 1024)  # dX_n = Wᵀ·dY_n: C × HW × K
    assert SPEC.flops(s, "fprop") - s.N * s.K * s.P * s.Q == 2 * 32 * 1024 * 196 * 256  # the same FLOPs


def test_a_batch_of_products_is_never_split_and_has_its_own_cache_key():
    few_tiles = (512, 49, 2048)  # ResNet-50's last 1x1 layers: 4 tiles per image, a long reduction
    assert any(c.splits > 1 for c in tune.candidates(*few_tiles, **H200))
    assert all(c.splits == 1 for c in tune.candidates(*few_tiles, **H200, batch=32))
    assert tune.heuristic(*few_tiles, **H200, batch=32).splits == 1
    base = ("bnn", *few_tiles, True, False, (True, False, False))
    assert tune.key(*base, 32) != tune.key(*base, 128) != tune.key(*base)
    assert tune.key(*base) == tune.key(*base, 1)  # unbatched keys are as before (cached choices stay valid)


POINTWISE = {
    "aligned": Conv2dShape(3, 64, 8, 8, 128, 1, 1, 1, 0),  # H·W = 64: float4 copies of X and Y
    "odd-plane": Conv2dShape(2, 70, 7, 7, 96, 1, 1, 1, 0),  # H·W = 49: 4-byte copies, partial tiles both ways
    "resnet50-res5-like": Conv2dShape(2, 512, 7, 7, 256, 1, 1, 1, 0),  # a long reduction over 512 channels
    "dgrad-only": Conv2dShape(2, 96, 5, 9, 33, 1, 1, 1, 0),  # fprop keeps the implicit GEMM (K = 33 rows)
}


@pytest.mark.gpu
@pytest.mark.parametrize("shape", list(POINTWISE.values()), ids=list(POINTWISE))
@pytest.mark.parametrize("pass_", list(SPEC.passes))
def test_pointwise_layers_match_the_oracle(pass_, shape):
    from impls.cuda import gemm

    assert_matches_oracle("conv2d", pass_, "cupy_opt", [shape])
    if conv.pointwise(shape, pass_):
        layout, m, n, k = conv._pointwise_product(shape, pass_)
        assert (False, layout, m, n, k, pass_ == "fprop", False, shape.N) in gemm._CHOSEN  # it ran batched


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [POINTWISE["aligned"], POINTWISE["odd-plane"]], ids=["aligned", "odd-plane"])
def test_pointwise_fprop_with_relu_matches_the_oracle(shape):
    assert_matches_oracle("conv2d_bias_relu", "fprop", "cupy_opt", [shape])
