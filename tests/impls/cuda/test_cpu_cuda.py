"""The project's CUDA kernels run from their own source on the CPU (cpu_cuda.py: g++, blocks of fibers for the
kernels with barriers) through their Python wrappers, and are judged against the float64 oracle with the checker's
own bounds: the kernels' index arithmetic, bounds, barriers and math are tested in CI, without a GPU, on the small
cases of the smoke and edge sets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from cpu_cuda import CXX, Executor
from launch_recorder import HostArray, own_gpu_impls, record

from harness.measure.check import ReferenceCache, judge
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.registry import get

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) to build the kernels for the CPU")
SETS = ("smoke", "edge")
MAX_ELEMENTS = 1 << 17  # larger cases take seconds on one core and add nothing the smaller ones do not test
# in-place passes (sgd) take their updated tensor as input and output at once, which run_on_cpu does not pass
IMPLS = [i for i in own_gpu_impls() if not get_op(i.op).pass_spec(i.pass_).inplace]


def run_on_cpu(monkeypatch, impl, shape, seed: int, config=None) -> list:
    """One call of a GPU implementation with its kernels run on the CPU: NaN-poisoned outputs, the harness's
    seeded inputs, every GEMM on `config` (a gemm_tune.Config; None: the heuristic's choice); fails if a kernel
    wrote past a buffer of the call (HostArray's guards), else returns the checker's judgement of each output."""
    spec = get_op(impl.op)
    ps = spec.pass_spec(impl.pass_)
    refs = ReferenceCache(spec, shape, impl.pass_)
    host = refs.inputs(seed)
    inputs = {n: HostArray.of(host[n].astype(t.dtype)) for n, t in ps.inputs(shape).items()}
    outputs = {n: HostArray.of(np.full(t.shape, np.nan, dtype=t.dtype)) for n, t in ps.outputs(shape).items()}
    with monkeypatch.context() as m:
        rec = record(m, config=config, execute=Executor())
        impl.fn(shape, **inputs, **outputs)
        algorithm = impl.algorithm_for(shape)  # the call's (a tuned choice lives in the stand-in's caches)
    buffers = {**inputs, **outputs, **{f"workspace {i}": a for i, a in enumerate(rec.made)}}
    outside = [n for n, a in buffers.items() if not a.intact()]
    assert not outside, f"{impl.name} {shape}: wrote outside the buffers of {', '.join(outside)}"
    got = {n: a.host.reshape(ps.outputs(shape)[n].shape) for n, a in outputs.items()}
    return judge(replace(impl, device="cpu", algorithm=algorithm), refs, seed, got)


def _cases(impl) -> list:
    spec = get_op(impl.op)
    ps = spec.pass_spec(impl.pass_)
    shapes = [s for set_ in SETS if set_ in spec.shape_sets for s in spec.shapes(set_)]
    return [s for s in shapes if not impl.unsupported_reason(s)
            and max(t.numel for t in {**ps.inputs(s), **ps.outputs(s)}.values()) <= MAX_ELEMENTS]


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: f"{i.op}-{i.pass_}-{i.name}")
def test_kernel_source_matches_the_oracle_on_the_cpu(monkeypatch, impl):
    cases = _cases(impl)
    assert cases
    for shape in cases:
        for out, c in run_on_cpu(monkeypatch, impl, shape, seed=0):
            assert c.status == "pass", f"{shape}, {out}: {c.reason}"


def _tile_cases() -> list:
    """Each of cupy_opt's tiles, unsplit and split in 2, on products with partial tiles along M, N and K: one whose
    rows allow the 16-byte copies (extents multiples of 4) and one whose odd extents force the 4-byte ones."""
    from impls.cuda.gemm_tune import TILES, Config

    cases = []
    for t in TILES.values():
        for splits in (1, 2):
            cases.append((Config(t, splits), GemmShape(t.bm + 8, t.bn + 12, 2 * t.bk * splits + 4, bias=True)))
            cases.append((Config(t, splits), GemmShape(t.bm + 3, t.bn + 5, 2 * t.bk * splits + 3, relu=True)))
    return cases


@pytest.mark.parametrize("config,shape", _tile_cases(), ids=lambda v: getattr(v, "name", None) or
                         f"{v.M}x{v.N}x{v.K}")
@pytest.mark.parametrize("pass_", ["fwd", "bwd"])
def test_every_gemm_tile_matches_the_oracle_on_the_cpu(monkeypatch, config, shape, pass_):
    """gemm_warptile.cu's every configuration, forced (nn for fwd, nt and tn for bwd): the copy paths (16- and
    4-byte, transposed or not, zero-filled past the edges), split-K and the epilogue."""
    for out, c in run_on_cpu(monkeypatch, get("gemm", pass_, "cupy_opt"), shape, seed=1, config=config):
        assert c.status == "pass", f"{config.name} {shape}, {out}: {c.reason}"


RESNET_IMPLS = [("cupy_opt", p) for p in ("fprop", "dgrad", "wgrad")] + [
    (n, p) for n in ("cupy_winograd", "cupy_winograd_f4") for p in ("fprop", "dgrad")]


@pytest.mark.parametrize("name,pass_", RESNET_IMPLS, ids=["-".join(c) for c in RESNET_IMPLS])
def test_resnet50_layers_at_batch_1_match_the_oracle_on_the_cpu(monkeypatch, name, pass_):
    """The production paths at their real geometry (channels, planes, strides; one image): the implicit GEMM on
    the v7 kernel, the batched 1x1 products, the lowered stem dgrad, the stride phases, Winograd's 3x3 layers."""
    impl = get("conv2d", pass_, name)
    ran = 0
    for shape in get_op("conv2d").shapes("resnet50"):
        one = replace(shape, N=1)
        if impl.unsupported_reason(one):
            continue
        for out, c in run_on_cpu(monkeypatch, impl, one, seed=0):
            assert c.status == "pass", f"{one}, {out}: {c.reason}"
        ran += 1
    assert ran


WGRAD = {  # (variant, seeds, shape): each of cupy_opt's wgrad variants forced as the layer's only choice
    "direct-thesis-C16-6x6-N2": ("direct", (0, 1), Conv2dShape(2, 16, 6, 6, 32, 3, 3, 1, 1)),  # 1 partial pixel chunk
    "direct-two-pixel-chunks-K20-C3": ("direct", (0, 1), Conv2dShape(3, 3, 14, 13, 20, 3, 3, 1, 1)),  # 546 pixels
    "direct-strided-dilated-K5": ("direct", (0, 1), Conv2dShape(2, 5, 12, 10, 5, 3, 2, stride_h=2, stride_w=1,
                                                                pad_h=2, pad_w=1, dilation_h=2, dilation_w=3)),
    "direct_px-thesis-C16-6x6-N4": ("direct_px", (0, 1), Conv2dShape(4, 16, 6, 6, 32, 3, 3, 1, 1)),  # 144 px: Z 1
    "direct_px-pixels-over-blocks-K20-C3": ("direct_px", (0, 1), Conv2dShape(3, 3, 14, 13, 20, 3, 3, 1, 1)),
    "direct_px-strided-dilated-K5": ("direct_px", (0, 1), Conv2dShape(6, 5, 12, 10, 5, 3, 2, stride_h=2, stride_w=1,
                                                                      pad_h=2, pad_w=1, dilation_h=2, dilation_w=3)),
    "v7-3x3-K64": ("v7", (0,), Conv2dShape(2, 5, 9, 7, 64, 3, 3, 1, 1)),  # partial tiles on both sides
    "v7-strided-dilated": ("v7", (0,), Conv2dShape(2, 3, 13, 12, 70, 3, 2, stride_h=2, stride_w=1, pad_h=2, pad_w=1,
                                                   dilation_h=2, dilation_w=1)),
}


@pytest.mark.parametrize("variant,seeds,shape", list(WGRAD.values()), ids=list(WGRAD))
def test_wgrad_variant_matches_the_oracle_on_the_cpu(monkeypatch, variant, seeds, shape):
    """A wgrad variant from its source on the CPU as the only choice: conv_wgrad_direct (dw and db in one launch:
    partial entry, channel and pixel chunks, two pixel chunks, stride, padding, dilation) and the v7 implicit GEMM
    (dYᵀ copy, the igemm kernel gathering x over the output pixels)."""
    import impls.cuda.conv2d as conv

    monkeypatch.setattr(conv, "variants", lambda s, p: (variant,))
    for seed in seeds:
        for out, c in run_on_cpu(monkeypatch, get("conv2d", "wgrad", "cupy_opt"), shape, seed):
            assert c.status == "pass", f"{shape}, {out}: {c.reason}"
