"""The convolution bias gradient (conv2d_bias_grad.cu, used by cupy_opt's and cudnn's wgrad): the split rule on any
machine, the values and their run-to-run bits on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.check import compare, tolerance
from harness.ops.conv2d import Conv2dShape
from impls.cuda.conv2d import BIAS_MIN_ELEMENTS, bias_splits


@pytest.mark.parametrize(("N", "K", "PQ"), [(256, 32, 2500), (32, 32, 36), (1, 2048, 49), (7, 3, 1), (128, 1, 16384),
                                            (2, 1, 2**31)])
def test_splits_fill_the_gpu_without_tiny_blocks(N, K, PQ):
    sms = 132
    s = bias_splits(N, K, PQ, sms)
    assert 1 <= s <= N
    per_block = N * PQ / s
    assert per_block < 2**30 or s == N  # a block never counts past int32 unless one image alone does
    assert s == 1 or per_block >= BIAS_MIN_ELEMENTS or s * PQ >= 2**30
    assert K * s >= min(4 * sms, K * N, K * max(1, N * PQ // BIAS_MIN_ELEMENTS))  # as many blocks as allowed


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [Conv2dShape(256, 3, 50, 50, 32), Conv2dShape(32, 32, 12, 12, 32),
                                   Conv2dShape(3, 5, 7, 9, 17, 3, 3, 2, 0), Conv2dShape(1, 1, 1, 1, 1, 1, 1, 1, 0)],
                         ids=str)
def test_bias_grad_matches_float64_and_repeats_bit_for_bit(shape):
    import cupy

    from impls.cuda.conv2d import bias_grad

    dy = np.random.default_rng(0).uniform(-1, 1, (shape.N, shape.K, shape.P, shape.Q)).astype(np.float32)
    ref = dy.astype(np.float64).sum(axis=(0, 2, 3))
    runs = []
    for _ in range(3):
        db = cupy.full(shape.K, np.nan, dtype=cupy.float32)
        bias_grad(shape, cupy.asarray(dy), db)
        runs.append(db.get())
    c = compare(runs[0], ref, tolerance("fp32", shape.N * shape.P * shape.Q), np.float32)  # the checker's rule
    assert c.status == "pass", c.reason
    assert all(np.array_equal(r, runs[0]) for r in runs)
