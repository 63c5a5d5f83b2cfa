"""The project's simple kernels (no shared memory, barrier or warp intrinsic) run from their own CUDA source on the
CPU (cpu_cuda.py, compiled by g++) through their Python wrappers, and are judged against the float64 oracle with
the checker's own bounds: the kernels' index arithmetic, bounds and math are tested in CI, without a GPU."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from cpu_cuda import CXX, Executor
from launch_recorder import HostArray, record

from harness.measure.check import ReferenceCache, judge
from harness.ops import get_op
from harness.registry import get

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) to build the kernels for the CPU")
FILES = ("eltwise.cu", "gemm_naive.cu", "conv2d_naive.cu", "maxpool2d.cu", "im2col.cu", "conv2d_winograd_f4.cu")
CASES = [("gemm", "fwd", "cupy_naive"), ("gemm", "bwd", "cupy_naive"),
         ("conv2d", "fprop", "cupy_naive"), ("conv2d", "dgrad", "cupy_naive"), ("conv2d", "wgrad", "cupy_naive"),
         ("conv2d_bias_relu", "fprop", "cupy_naive"),
         ("maxpool2d", "fwd", "cupy_naive"), ("maxpool2d", "bwd", "cupy_naive"),
         ("maxpool2d", "fwd", "cupy_opt"), ("maxpool2d", "bwd", "cupy_opt"),
         ("maxpool2d_relu", "fwd", "cupy_opt"), ("maxpool2d_relu", "bwd", "cupy_opt"),
         ("relu", "fwd", "cupy_naive"), ("relu", "bwd", "cupy_naive"), ("relu", "fwd", "cupy_opt"),
         ("relu", "bwd", "cupy_opt"), ("sigmoid", "fwd", "cupy_naive"), ("sigmoid", "bwd", "cupy_opt"),
         ("conv2d", "fprop", "cupy_winograd_f4"), ("conv2d", "dgrad", "cupy_winograd_f4")]  # its GEMM: by contract


def run_on_cpu(monkeypatch, impl, shape, seed: int) -> list:
    """One call of a GPU implementation with its kernels run on the CPU: NaN-poisoned outputs, the harness's
    seeded inputs; fails if a kernel wrote past a buffer of the call (HostArray's guards), else returns the
    checker's judgement of each output."""
    spec = get_op(impl.op)
    ps = spec.pass_spec(impl.pass_)
    refs = ReferenceCache(spec, shape, impl.pass_)
    host = refs.inputs(seed)
    inputs = {n: HostArray.of(host[n].astype(t.dtype)) for n, t in ps.inputs(shape).items()}
    outputs = {n: HostArray.of(np.full(t.shape, np.nan, dtype=t.dtype)) for n, t in ps.outputs(shape).items()}
    rec = record(monkeypatch, execute=Executor(FILES))
    impl.fn(shape, **inputs, **outputs)
    buffers = {**inputs, **outputs, **{f"workspace {i}": a for i, a in enumerate(rec.made)}}
    outside = [n for n, a in buffers.items() if not a.intact()]
    assert not outside, f"{impl.name} {shape}: wrote outside the buffers of {', '.join(outside)}"
    got = {n: a.host.reshape(ps.outputs(shape)[n].shape) for n, a in outputs.items()}
    return judge(replace(impl, device="cpu"), refs, seed, got)


@pytest.mark.parametrize("op,pass_,name", CASES, ids=["-".join(c) for c in CASES])
def test_kernel_source_matches_the_oracle_on_the_cpu(monkeypatch, op, pass_, name):
    impl = get(op, pass_, name)
    spec = get_op(op)
    ran = 0
    for shape in [s for set_ in ("smoke", "edge") if set_ in spec.shape_sets for s in spec.shapes(set_)]:
        if impl.unsupported_reason(shape):
            continue
        for seed in (0, 1):
            for out, c in run_on_cpu(monkeypatch, impl, shape, seed):
                assert c.status == "pass", f"{shape} seed {seed}, {out}: {c.reason}"
        ran += 1
    assert ran
