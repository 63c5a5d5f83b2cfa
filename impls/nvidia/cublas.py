"""cuBLAS through cupy.matmul (cublasGemmEx) for gemm, fwd and bwd: cublas (strict FP32) and cublas_tf32.

CuPy chooses the cuBLAS compute type per dtype from a process-wide setting
(cupy._core._routines_linalg.set_compute_type; CUPY_TF32=1 only seeds its default), so `cublas_math` sets it
explicitly around every call and restores it: the fp32 entries are strict FP32 (CUBLAS_COMPUTE_32F) whatever the
environment says, and only cublas_tf32 uses CUBLAS_COMPUTE_32F_FAST_TF32. conv2d's cupy_im2col_cublas uses it too.
"""

from __future__ import annotations

import contextlib

import numpy as np

from harness.ops.gemm import GemmShape
from harness.registry import register
from impls.cuda import common as _cuda


@contextlib.contextmanager
def cublas_math(math: str):
    """Run cupy.matmul calls inside with cuBLAS compute type FP32 (math="fp32") or TF32 (math="tf32").

    The setting is process-wide in CuPy, so the previous value is restored on exit.
    """
    from cupy._core import _routines_linalg as linalg

    wanted = {"fp32": linalg.COMPUTE_TYPE_FP32, "tf32": linalg.COMPUTE_TYPE_TF32}[math]
    before = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, wanted)
    try:
        yield
    finally:
        linalg.set_compute_type(np.float32, before)



def _cublas_fwd(math: str):
    def fwd(s: GemmShape, x, w, b=None, *, y):
        import cupy

        with cublas_math(math):
            cupy.matmul(x, w, out=y)
        if s.bias:
            y += b
        if s.relu:
            cupy.maximum(y, 0, out=y)

    fwd.__doc__ = f"Y = X·W through cupy.matmul (cuBLAS, {math} compute), then += b and ReLU in place."
    return fwd


def _cublas_bwd(math: str):
    def bwd(s: GemmShape, x, w, dy, *, dx, dw, db):
        import cupy

        with cublas_math(math):
            cupy.matmul(dy, w.T, out=dx)
            cupy.matmul(x.T, dy, out=dw)
        cupy.sum(dy, axis=0, out=db)

    bwd.__doc__ = f"dX = dY·Wᵀ, dW = Xᵀ·dY through cupy.matmul (cuBLAS, {math} compute), db = cupy.sum."
    return bwd


for _name, _math in (("cublas", "fp32"), ("cublas_tf32", "tf32")):
    register("gemm", "fwd", name=_name, device="gpu", math=_math, available=_cuda.available, family="vendor",
             group="cublas")(_cublas_fwd(_math))
    register("gemm", "bwd", name=_name, device="gpu", math=_math, available=_cuda.available, family="vendor",
             group="cublas")(_cublas_bwd(_math))
