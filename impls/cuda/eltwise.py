"""cupy_naive and cupy_tiled for relu (fwd, bwd), sigmoid (fwd, bwd) and sgd (update): kernels in eltwise.cu.

cupy_naive launches one thread per element; cupy_tiled runs a persistent grid-stride loop with 16-byte loads and
stores and several loads in flight per thread (see the header of eltwise.cu). Both are strict IEEE float32.
"""

from __future__ import annotations

import numpy as np

from harness.registry import register
from impls.cuda import common as _cuda
from impls.cuda.bandwidth import launch_map, launch_naive

FILE = "eltwise.cu"


def _reg(op: str, pass_: str, variant: str):
    """Register a GPU fp32 implementation named cupy_<variant> whose one kernel is <op>[_<pass>]_<variant>."""
    func = f"{op}_{variant}" if op == "sgd" else f"{op}_{pass_}_{variant}"
    return register(op, pass_, name=f"cupy_{variant}", device="gpu", math="fp32", available=_cuda.available,
                    details=lambda s: _cuda.attributes(FILE, [func]))


# ---------------------------------------------------------------- naive: one thread per element
@_reg("relu", "fwd", "naive")
def relu_fwd_naive(s, x, *, y):
    """y = max(x, 0), one thread per element."""
    launch_naive(FILE, "relu_fwd_naive", y.size, (x, y))


@_reg("relu", "bwd", "naive")
def relu_bwd_naive(s, y, dy, *, dx):
    """dx = dy·[y > 0], one thread per element."""
    launch_naive(FILE, "relu_bwd_naive", dx.size, (y, dy, dx))


@_reg("sigmoid", "fwd", "naive")
def sigmoid_fwd_naive(s, x, *, y):
    """y = 1 / (1 + e^(−x)), one thread per element."""
    launch_naive(FILE, "sigmoid_fwd_naive", y.size, (x, y))


@_reg("sigmoid", "bwd", "naive")
def sigmoid_bwd_naive(s, y, dy, *, dx):
    """dx = dy·y·(1 − y), one thread per element."""
    launch_naive(FILE, "sigmoid_bwd_naive", dx.size, (y, dy, dx))


@_reg("sgd", "update", "naive")
def sgd_naive(s, dw, *, w):
    """W ← W − lr·dW in place, one thread per element."""
    launch_naive(FILE, "sgd_naive", w.size, (w, dw), (np.float32(s.lr),))


# ---------------------------------------------------------------- tiled: persistent grid, float4, loads in flight
@_reg("relu", "fwd", "tiled")
def relu_fwd_tiled(s, x, *, y):
    """y = max(x, 0): grid-stride float4 map."""
    launch_map(FILE, "relu_fwd_tiled", y.size, (x, y))


@_reg("relu", "bwd", "tiled")
def relu_bwd_tiled(s, y, dy, *, dx):
    """dx = dy·[y > 0]: grid-stride float4 map."""
    launch_map(FILE, "relu_bwd_tiled", dx.size, (y, dy, dx))


@_reg("sigmoid", "fwd", "tiled")
def sigmoid_fwd_tiled(s, x, *, y):
    """y = 1 / (1 + e^(−x)): grid-stride float4 map."""
    launch_map(FILE, "sigmoid_fwd_tiled", y.size, (x, y))


@_reg("sigmoid", "bwd", "tiled")
def sigmoid_bwd_tiled(s, y, dy, *, dx):
    """dx = dy·y·(1 − y): grid-stride float4 map."""
    launch_map(FILE, "sigmoid_bwd_tiled", dx.size, (y, dy, dx))


@_reg("sgd", "update", "tiled")
def sgd_tiled(s, dw, *, w):
    """W ← W − lr·dW in place: grid-stride float4 map."""
    launch_map(FILE, "sgd_tiled", w.size, (w, dw), (np.float32(s.lr),))
