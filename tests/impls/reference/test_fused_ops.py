"""The fused ops and passes (maxpool2d_relu, conv2d_bias_relu, softmax_xent's `fused` pass) against the oracle's
composition, and plausible-but-wrong fusions that the checker must catch."""

from __future__ import annotations

import numpy as np
import pytest

from harness import registry
from harness.ops import get_op
from harness.ops.maxpool2d import Pool2dShape
from harness.registry import register
from harness.testing import assert_matches_oracle
from impls.reference import cpu, oracle


@pytest.fixture
def throwaway():
    """add(op, pass_, name, fn) registers a CPU fp32 implementation for this test only."""
    made = []

    def add(op: str, pass_: str, name: str, fn):
        register(op, pass_, name=name, device="cpu", math="fp32")(fn)
        made.append((op, pass_, name))

    yield add
    for key in made:
        registry.unregister(*key)


def test_fused_pool_equals_the_composition_exactly():
    """maxpool(ReLU(x)) = ReLU(maxpool(x)) and the masked backward are exact, not approximate: the float32 CPU
    implementation (pool first) gives the oracle's bits (ReLU first) on every smoke and edge shape."""
    spec = get_op("maxpool2d_relu")
    for s in spec.shape_sets["smoke"] + spec.shape_sets["edge"]:
        for pass_ in ("fwd", "bwd"):
            inputs = spec.make_inputs(s, pass_, seed=3)
            outs = {k: np.full(t.shape, np.nan) for k, t in spec.pass_spec(pass_).outputs(s).items()}
            mine = {k: np.full(t.shape, np.nan, dtype=np.float32) for k, t in spec.pass_spec(pass_).outputs(s).items()}
            getattr(oracle, f"maxpool2d_relu_{pass_}")(s, **inputs, **outs)
            getattr(cpu, f"maxpool2d_relu_{pass_}")(s, **{k: v.astype(np.float32) if v.dtype.kind == "f" else v
                                                           for k, v in inputs.items()}, **mine)
            for k in outs:
                if pass_ == "fwd" or (s.stride_h >= s.R and s.stride_w >= s.S):  # no overlapping sums: exact
                    np.testing.assert_array_equal(mine[k], outs[k].astype(np.float32))


def test_fused_pool_gradient_is_masked_where_every_input_is_negative():
    s = Pool2dShape(1, 1, 2, 4)
    x = np.array([[[[-1.0, -2.0, 3.0, -1.0], [-3.0, -0.5, 1.0, 2.0]]]])
    y, dx = np.empty((1, 1, 1, 2)), np.empty_like(x)
    oracle.maxpool2d_relu_fwd(s, x, y=y)
    assert y.ravel().tolist() == [0.0, 3.0]
    oracle.maxpool2d_relu_bwd(s, x, y, np.array([[[[5.0, 7.0]]]]), dx=dx)
    assert dx.ravel().tolist() == [0, 0, 7, 0, 0, 0, 0, 0]  # the negative window passes nothing


def test_wrong_fusions_are_caught(throwaway):
    def pool_without_relu(s, x, *, y):  # forgets the ReLU
        cpu.maxpool2d_fwd(s, x, y=y)

    def bwd_without_mask(s, x, y, dy, *, dx):  # routes dy to each window's maximum of x, also where ReLU zeroed y
        raw = np.empty_like(y)
        cpu.maxpool2d_fwd(s, x, y=raw)
        cpu.maxpool2d_bwd(s, x, raw, dy, dx=dx)

    def bwd_relu_of_x(s, x, y, dy, *, dx):  # masks by x > 0 everywhere instead of routing to the first maximum
        cpu.maxpool2d_relu_bwd(s, x, y, dy, dx=dx)
        dx += (x > 0) * 1e-3

    def xent_fused_stale_loss(s, logits, labels, *, loss, dlogits):  # gradient right, loss of the first row only
        cpu.softmax_xent_fused(s, logits, labels, loss=loss, dlogits=dlogits)
        z = logits[0] - logits[0].max()
        loss[...] = np.log(np.exp(z).sum()) - z[labels[0]]

    def conv_without_relu(s, x, w, b, *, y):  # the plain convolution
        cpu.conv2d_fprop(s, x, w, b, y=y)

    def relu_before_bias(s, x, w, b, *, y):  # ReLU(conv) + b: right wherever b and conv + b have one sign
        cpu.conv2d_fprop(s, x, w, np.zeros_like(b), y=y)
        np.maximum(y, 0, out=y)
        y += b[None, :, None, None]

    throwaway("maxpool2d_relu", "fwd", "cheat_norelu", pool_without_relu)
    throwaway("conv2d_bias_relu", "fprop", "cheat_norelu", conv_without_relu)
    throwaway("conv2d_bias_relu", "fprop", "cheat_relu_first", relu_before_bias)
    throwaway("maxpool2d_relu", "bwd", "cheat_nomask", bwd_without_mask)
    throwaway("maxpool2d_relu", "bwd", "cheat_xmask", bwd_relu_of_x)
    throwaway("softmax_xent", "fused", "cheat_rowloss", xent_fused_stale_loss)
    for op, pass_, name in [("maxpool2d_relu", "fwd", "cheat_norelu"), ("maxpool2d_relu", "bwd", "cheat_nomask"),
                            ("maxpool2d_relu", "bwd", "cheat_xmask"), ("softmax_xent", "fused", "cheat_rowloss"),
                            ("conv2d_bias_relu", "fprop", "cheat_norelu"),
                            ("conv2d_bias_relu", "fprop", "cheat_relu_first")]:
        with pytest.raises(AssertionError, match="fail"):
            assert_matches_oracle(op, pass_, name)


@pytest.mark.parametrize("name", ["numpy_opt", "torch_cpu"])
def test_cpu_fusions_match_the_oracle(name):
    for op, pass_ in [("maxpool2d_relu", "fwd"), ("maxpool2d_relu", "bwd"), ("softmax_xent", "fused"),
                      ("conv2d_bias_relu", "fprop")]:
        assert_matches_oracle(op, pass_, name)


def test_conv_relu_is_the_composition_and_zeroes_about_half_the_outputs():
    """The oracle's conv2d_bias_relu is ReLU of conv2d's fprop, bit for bit; its random inputs leave outputs of both
    signs before the ReLU (so a missing or misplaced ReLU shows), on every smoke and edge shape."""
    spec, conv = get_op("conv2d_bias_relu"), get_op("conv2d")
    zeros = []
    for s in spec.shape_sets["smoke"] + spec.shape_sets["edge"]:
        inputs = spec.make_inputs(s, "fprop", seed=5)
        y, plain = np.full((s.N, s.K, s.P, s.Q), np.nan), np.full((s.N, s.K, s.P, s.Q), np.nan)
        oracle.conv2d_bias_relu_fprop(s, **inputs, y=y)
        oracle.conv2d_fprop(s, **inputs, y=plain)
        np.testing.assert_array_equal(y, np.maximum(plain, 0))
        zeros.append((y == 0).mean())
    assert 0.3 < np.mean(zeros) < 0.7, zeros
    s = spec.shape_sets["thesis"][0]
    assert spec.flops(s, "fprop") == conv.flops(s, "fprop") + s.N * s.K * s.P * s.Q
    assert spec.bytes(s, "fprop") == conv.bytes(s, "fprop")  # the pre-activation never reaches memory


def test_fused_xent_flops_are_the_backward_pass_plus_the_loss_per_row():
    spec, s = get_op("softmax_xent"), get_op("softmax_xent").shape_sets["thesis"][0]
    assert spec.flops(s, "fused") == spec.flops(s, "bwd") + 2 * s.N
    assert spec.bytes(s, "fused") == spec.bytes(s, "bwd") + 4  # the loss scalar is the only extra traffic
