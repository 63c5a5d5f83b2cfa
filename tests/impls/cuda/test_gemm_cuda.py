"""GPU gemm implementations (impls/gemm_cuda.py) against the float64 oracle, and their 64-bit indexing."""

import numpy as np
import pytest

from harness.ops.gemm import GemmShape
from harness.registry import get

pytestmark = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt", "cublas", "cublas_tf32")


def test_tiled_is_exact_on_a_misaligned_operand():
    """An operand that starts 4 bytes off a 16-byte boundary must take the scalar path and give the same Y."""
    import cupy

    s = GemmShape(M=131, N=68, K=36, bias=True)
    rng = np.random.default_rng(0)
    base = cupy.asarray(rng.uniform(-1, 1, s.M * s.K + 1).astype(np.float32))
    x = base[1:].reshape(s.M, s.K)  # misaligned view
    w = cupy.asarray(rng.uniform(-1, 1, (s.K, s.N)).astype(np.float32))
    b = cupy.asarray(rng.uniform(-1, 1, s.N).astype(np.float32))
    y = cupy.full((s.M, s.N), np.nan, dtype=np.float32)
    get("gemm", "fwd", "cupy_opt").fn(s, x, w, b, y=y)
    ref = x.astype(np.float64) @ w.astype(np.float64) + b
    assert float(cupy.abs(y - ref).max()) < 1e-4


@pytest.mark.parametrize("name", ["cupy_naive", "cupy_opt"])
def test_offsets_past_2_31_elements(name):
    """X with M·K > 2^31 (8.6 GB): rows past the int32 range must read and write the right places."""
    import cupy

    s = GemmShape(M=2**31 // 64 + 129, N=4, K=64)
    if cupy.cuda.Device().mem_info[0] < 10 * 2**30:
        pytest.skip("needs 10 GiB of free GPU memory")
    x = cupy.empty((s.M, s.K), dtype=cupy.float32)
    x[...] = cupy.arange(s.M, dtype=cupy.float32)[:, None] % 977 / 977  # row-dependent values
    w = cupy.asarray(np.random.default_rng(1).uniform(-1, 1, (s.K, s.N)).astype(np.float32))
    y = cupy.full((s.M, s.N), np.nan, dtype=np.float32)
    get("gemm", "fwd", name).fn(s, x, w, y=y)
    tail = slice(s.M - 300, s.M)  # the rows whose offsets pass 2^31
    ref = x[tail].astype(np.float64) @ w.astype(np.float64)
    assert float(cupy.abs(y[tail] - ref).max()) < 1e-4
    assert not bool(cupy.isnan(y).any())
