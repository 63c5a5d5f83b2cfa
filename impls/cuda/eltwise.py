"""cupy_naive and cupy_opt for relu (fwd, bwd), sigmoid (fwd, bwd) and sgd (update): kernels in eltwise.cu.

cupy_naive launches one thread per element; cupy_opt runs a persistent grid-stride loop with 16-byte loads and
stores and several loads in flight per thread (see the header of eltwise.cu). Both are strict IEEE float32.
"""

from __future__ import annotations

import numpy as np

from harness.registry import register
from impls.cuda import common as _cuda
from impls.cuda.bandwidth import FALLBACK, IMPL_NAMES, launch_map, launch_naive

FILE = "eltwise.cu"


def _reg(op: str, pass_: str, variant: str):
    """Register a GPU fp32 implementation IMPL_NAMES[variant] whose one kernel is <op>[_<pass>]_<variant>."""
    func = f"{op}_{variant}" if op == "sgd" else f"{op}_{pass_}_{variant}"
    return register(op, pass_, name=IMPL_NAMES[variant], device="gpu", math="fp32", available=_cuda.available,
                    family="own", fallback=FALLBACK[variant],
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


# ---------------------------------------------------------------- vec: persistent grid, float4, loads in flight
@_reg("relu", "fwd", "vec")
def relu_fwd_vec(s, x, *, y):
    """y = max(x, 0): grid-stride float4 map."""
    launch_map(FILE, "relu_fwd_vec", y.size, (x, y))


@_reg("relu", "bwd", "vec")
def relu_bwd_vec(s, y, dy, *, dx):
    """dx = dy·[y > 0]: grid-stride float4 map."""
    launch_map(FILE, "relu_bwd_vec", dx.size, (y, dy, dx))


@_reg("sigmoid", "fwd", "vec")
def sigmoid_fwd_vec(s, x, *, y):
    """y = 1 / (1 + e^(−x)): grid-stride float4 map."""
    launch_map(FILE, "sigmoid_fwd_vec", y.size, (x, y))


@_reg("sigmoid", "bwd", "vec")
def sigmoid_bwd_vec(s, y, dy, *, dx):
    """dx = dy·y·(1 − y): grid-stride float4 map."""
    launch_map(FILE, "sigmoid_bwd_vec", dx.size, (y, dy, dx))


@_reg("sgd", "update", "vec")
def sgd_vec(s, dw, *, w):
    """W ← W − lr·dW in place: grid-stride float4 map."""
    launch_map(FILE, "sgd_vec", w.size, (w, dw), (np.float32(s.lr),))
