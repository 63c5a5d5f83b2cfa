"""cupy_naive and cupy_opt for maxpool2d and maxpool2d_relu (fwd, bwd): kernels in maxpool2d.cu.

cupy_naive: one thread per output element (forward) or per input element gathering from the windows that contain
it (backward: no atomics, even with overlapping windows). cupy_opt: for 2×2 windows with stride 2 on both axes, no
padding and an even width, vector loads of V = 4 (or 2) consecutive columns of a row pair on a persistent
grid-stride loop; 2×2/2 unpadded with an odd width (or unaligned tensors): one thread per output window
(maxpool_fwd_2x2_cell) or per 2×2 cell of dx (maxpool_bwd_2x2_cell); any other window, per-axis stride or
padding takes the same per-element bodies as the naive kernels in a grid-stride loop. Every kernel clips its windows
to the image (padding is −inf: never read, never the max, never given a gradient). The backward passes give each
window's gradient to its first maximum in row-major order among its real elements (the spec's tie rule).
maxpool2d_relu runs the same kernels with their ReLU flag set: ReLU applied to each window's maximum, dy masked by
y > 0 before it is routed (maxpool2d.cu's header).
"""

from __future__ import annotations

import numpy as np

from harness.ops.maxpool2d import Pool2dShape
from harness.registry import register
from impls.cuda import common as _cuda
from impls.cuda.bandwidth import FALLBACK, IMPL_NAMES, THREADS, persistent_blocks, require_contiguous

FILE = "maxpool2d.cu"


def _geometry(s: Pool2dShape, relu: bool) -> tuple:
    """The eleven unsigned scalars every kernel takes (POOL_ARGS in maxpool2d.cu): the geometry and the ReLU flag."""
    return tuple(np.uint32(v) for v in (s.H, s.W, s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.P, s.Q, relu))


def vector_width(s: Pool2dShape, full: tuple = (), half: tuple = ()) -> int:
    """Columns per item of the 2×2/2 vector path (no padding, stride 2 on both axes): 4 or 2 when the shape and the
    alignment of the `full` (x-shaped) and `half` (y-shaped) arrays allow it, 0 for the generic path."""
    if (s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w) != (2, 2, 2, 2, 0, 0):
        return 0
    for v in (4, 2):
        if s.W % v == 0 and all(a.data.ptr % (4 * v) == 0 for a in full) and all(
                a.data.ptr % (2 * v) == 0 for a in half):
            return v
    return 0


def _is_2x2(s: Pool2dShape) -> bool:
    """2×2 windows, stride 2 on both axes, no padding: non-overlapping windows, whatever the width."""
    return (s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w) == (2, 2, 2, 2, 0, 0)


def _fwd_kernel(v: int, s: Pool2dShape) -> str:
    """The vector path, else the cell kernel for 2×2/2 (odd width), else the generic window loop."""
    return f"maxpool_fwd_2x2_v{v}" if v else "maxpool_fwd_2x2_cell" if _is_2x2(s) else "maxpool_fwd_generic"


def _bwd_kernel(v: int, s: Pool2dShape) -> str:
    """The vector path, else the cell kernel for 2×2/2 (odd width), else the generic gather."""
    return f"maxpool_bwd_2x2_v{v}" if v else "maxpool_bwd_2x2_cell" if _is_2x2(s) else "maxpool_bwd_generic"


def bwd_items(s: Pool2dShape, v: int) -> int:
    """Work items of the backward kernel: V-column row-pair pieces, 2×2 cells, or dx elements."""
    if v:
        return s.N * s.C * ((s.H + 1) // 2) * (s.W // v)
    if _is_2x2(s):
        return s.N * s.C * ((s.H + 1) // 2) * ((s.W + 1) // 2)
    return s.N * s.C * s.H * s.W


def _details(kernel_for):
    """details(shape): attributes of the kernel the shape takes (assuming aligned tensors, as the harness gives)."""
    return lambda s: _cuda.attributes(FILE, [kernel_for(s)])


def _reg(pass_: str, variant: str, kernel_for):
    """Register the decorated function, fn(shape, **tensors, relu=...), as `variant` of maxpool2d (relu off) and of
    maxpool2d_relu (relu on): one kernel body serves both ops."""
    def deco(fn):
        for op, relu in (("maxpool2d", False), ("maxpool2d_relu", True)):
            def impl(s, _relu=relu, **tensors):
                return fn(s, relu=_relu, **tensors)
            impl.__name__ = f"{fn.__name__}{'_relu' * relu}"
            impl.__doc__ = fn.__doc__ + (" ReLU fused (maxpool2d.cu's header)." if relu else "")
            register(op, pass_, name=IMPL_NAMES[variant], device="gpu", math="fp32", available=_cuda.available,
                     family="own", fallback=FALLBACK[variant], details=_details(kernel_for))(impl)
        return fn
    return deco


def _launch(func: str, grid: int, arrays: tuple, s: Pool2dShape, count: int, relu: bool) -> None:
    require_contiguous(*arrays)
    _cuda.kernel(FILE, func)((grid,), (THREADS,), (*arrays, *_geometry(s, relu), np.uint64(count)))


@_reg("fwd", "naive", lambda s: "maxpool_fwd_naive")
def maxpool_fwd_naive(s: Pool2dShape, x, *, y, relu: bool):
    """One thread per output: the max of its R×S window, clipped to the image."""
    _launch("maxpool_fwd_naive", _cuda.blocks(y.size, THREADS), (x, y), s, y.size, relu)


@_reg("bwd", "naive", lambda s: "maxpool_bwd_naive")
def maxpool_bwd_naive(s: Pool2dShape, x, y, dy, *, dx, relu: bool):
    """One thread per input element: Σ dy over the windows whose first maximum it is."""
    _launch("maxpool_bwd_naive", _cuda.blocks(dx.size, THREADS), (x, y, dy, dx), s, dx.size, relu)


@_reg("fwd", "vec", lambda s: _fwd_kernel(vector_width(s), s))
def maxpool_fwd_vec(s: Pool2dShape, x, *, y, relu: bool):
    """2×2/2 unpadded: V-wide loads of a row pair per item; otherwise one output per grid-stride step."""
    v = vector_width(s, (x,), (y,))
    items = s.N * s.C * s.P * (s.W // v) if v else y.size
    func = _fwd_kernel(v, s)
    _launch(func, persistent_blocks(FILE, func, items), (x, y), s, items, relu)


@_reg("bwd", "vec", lambda s: _bwd_kernel(vector_width(s), s))
def maxpool_bwd_vec(s: Pool2dShape, x, y, dy, *, dx, relu: bool):
    """2×2/2 unpadded: V-wide loads and stores of a row pair per item, or (odd width) one 2×2 cell per item;
    otherwise one input element per grid-stride step."""
    v = vector_width(s, (x, dx), (y, dy))
    items = bwd_items(s, v)
    func = _bwd_kernel(v, s)
    _launch(func, persistent_blocks(FILE, func, items), (x, y, dy, dx), s, items, relu)
