"""maxpool2d: max pooling over R×S windows, per-axis stride and padding (floor), NCHW; and its backward pass.

Thesis (seed 003, §2.6.2), with per-axis strides u_h, u_w and padding pad_h, pad_w:
y[n,c,p,q] = max_{r<R, s<S} x[n,c,p·u_h+r−pad_h, q·u_w+s−pad_w], where positions outside the image are padding,
counted as −inf: ignored, never a window's maximum (pad < window, so every window holds a real element);
P = (H + 2·pad_h − R)//u_h + 1, Q = (W + 2·pad_w − S)//u_w + 1. The backward pass routes dy[n,c,p,q] to the
position of that maximum and sums where windows overlap (stride < window); nothing lands in the padding.
Ties: the gradient goes to the FIRST maximal element of the window in row-major (r, then s) order (PyTorch's
rule); the project's own implementations follow it and tests/impls pin it on constructed ties. Random float32
inputs have a few exact ties in the largest shapes (about one per 10^7 windows), so a library with another rule
can fail the checker on one element there: a real difference of semantics, reported as such.
FLOPs count one comparison per window element beyond the first (fwd) and per window element (bwd), padding
positions included (the window size is the op's, whatever part of it lies outside the image).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass

import numpy as np

from harness import workloads
from harness.errors import UsageError
from harness.spec import OpSpec, PassSpec, Tensor, axis_keys, both_axes, positive, resolve_axes, signed_uniform


@dataclass(frozen=True)
class Pool2dShape:
    """A pooling problem. Positionally N, C, H, W, R, S, stride (both axes), pad (both axes); by keyword also
    stride_h/stride_w and pad_h/pad_w. Padding counts as −inf: it is never a window's maximum."""

    N: int
    C: int
    H: int
    W: int
    R: int = 2
    S: int = 2
    stride: InitVar[int | None] = None
    pad: InitVar[int | None] = None
    stride_h: int | None = None
    stride_w: int | None = None
    pad_h: int | None = None
    pad_w: int | None = None

    def __post_init__(self, stride, pad):
        resolve_axes(self, stride=(stride, 2), pad=(pad, 0))
        positive(N=self.N, C=self.C, H=self.H, W=self.W, R=self.R, S=self.S, stride_h=self.stride_h,
                 stride_w=self.stride_w)
        if min(self.pad_h, self.pad_w) < 0:
            raise UsageError(f"pad must be >= 0, got pad_h={self.pad_h}, pad_w={self.pad_w}")
        if self.pad_h >= self.R or self.pad_w >= self.S:
            raise UsageError(f"padding {self.pad_h}x{self.pad_w} must be smaller than the window {self.R}x{self.S} "
                             "(else a window can hold padding only)")
        if self.H + 2 * self.pad_h < self.R or self.W + 2 * self.pad_w < self.S:
            raise UsageError(f"pooling window {self.R}x{self.S} is larger than the padded input "
                             f"{self.H + 2 * self.pad_h}x{self.W + 2 * self.pad_w}")

    @property
    def P(self) -> int:
        return (self.H + 2 * self.pad_h - self.R) // self.stride_h + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.pad_w - self.S) // self.stride_w + 1

    def key_values(self) -> dict[str, int]:
        """Shape-string keys: stride always (one value where the axes agree), pad only where it is not 0, so the
        rows of unpadded square pools read as before."""
        kv = {k: getattr(self, k) for k in ("N", "C", "H", "W", "R", "S")}
        return kv | axis_keys(self, "stride") | axis_keys(self, "pad", hide=0)


# s.stride and s.pad read both axes where they agree (see Conv2dShape).
Pool2dShape.stride = both_axes("stride")
Pool2dShape.pad = both_axes("pad")


def _x(s):
    return Tensor((s.N, s.C, s.H, s.W))


def _y(s):
    return Tensor((s.N, s.C, s.P, s.Q))


def pool_forward_reference(s: Pool2dShape, x: np.ndarray) -> np.ndarray:
    """Max over each window, padding as −inf (exact in any precision); used to build the bwd pass's `y` input."""
    uh, uw = s.stride_h, s.stride_w
    xp = np.pad(x, ((0, 0), (0, 0), (s.pad_h, s.pad_h), (s.pad_w, s.pad_w)), constant_values=-np.inf)
    y = np.full((s.N, s.C, s.P, s.Q), -np.inf, dtype=x.dtype)
    for r in range(s.R):
        for c in range(s.S):
            np.maximum(y, xp[:, :, r:r + uh * (s.P - 1) + 1:uh, c:c + uw * (s.Q - 1) + 1:uw], out=y)
    return y


def _bwd_make(s, rng):
    x = signed_uniform(rng, _x(s).shape).astype(np.float32).astype(np.float64)
    # y from the float32-rounded x equals every implementation's forward exactly (OpSpec.make_inputs rounds x too).
    y = pool_forward_reference(s, x)
    return {"x": x, "y": y, "dy": signed_uniform(rng, _y(s).shape)}


def _overlap(s) -> int:
    """The most windows one input element belongs to: ceil(R/u_h)·ceil(S/u_w)."""
    return -(-s.R // s.stride_h) * -(-s.S // s.stride_w)


FWD = PassSpec(
    inputs=lambda s: {"x": _x(s)},
    outputs=lambda s: {"y": _y(s)},
    flops=lambda s: _y(s).numel * (s.R * s.S - 1),
    reduction=lambda s: {"y": 1},
    make_inputs=lambda s, rng: {"x": signed_uniform(rng, _x(s).shape)},
)
BWD = PassSpec(
    inputs=lambda s: {"x": _x(s), "y": _y(s), "dy": _y(s)},
    outputs=lambda s: {"dx": _x(s)},
    flops=lambda s: _y(s).numel * s.R * s.S,
    reduction=lambda s: {"dx": _overlap(s)},
    make_inputs=_bwd_make,
)


def _thesis(batch: int) -> list[Pool2dShape]:
    """The 2x2/2 pools of thesis-0..4 (harness.workloads): after each conv, on its output (K, H, W)."""
    return workloads.unique(Pool2dShape(batch, c.K, c.H, c.W) for m in workloads.THESIS_MODELS
                            for c in workloads.thesis_convs(m))


def _resnet50_pool(batch: int) -> Pool2dShape:
    c, h, w, window, stride = workloads.RESNET50_POOL
    return Pool2dShape(batch, c, h, w, window, window, stride)


SPEC = OpSpec(
    name="maxpool2d",
    shape_type=Pool2dShape,
    passes={"fwd": FWD, "bwd": BWD},
    bound="memory",
    doc="max pooling, NCHW, R×S window, per-axis stride and padding (−inf); bwd routes dy to the first maximum of "
        "each window",
    shape_sets={
        "smoke": [Pool2dShape(1, 1, 2, 2), Pool2dShape(2, 3, 8, 8), Pool2dShape(2, 3, 7, 9),
                  Pool2dShape(1, 2, 9, 9, 3, 3, 2), Pool2dShape(2, 2, 6, 5, 3, 2, 1)],
        "thesis": _thesis(workloads.BATCH),
        "resnet50": [_resnet50_pool(workloads.BATCH)],
        "edge": [Pool2dShape(1, 3, 13, 13), Pool2dShape(3, 1, 31, 31, 3, 3, 2), Pool2dShape(1, 5, 127, 127, 2, 2, 2),
                 Pool2dShape(2, 3, 7, 7, 7, 7, 1), Pool2dShape(2, 4, 5, 5, 3, 3, 1),
                 # per-axis stride, non-square window, padding on both axes
                 Pool2dShape(2, 3, 9, 8, 3, 2, stride_h=2, stride_w=1, pad_h=1, pad_w=1),
                 Pool2dShape(2, 4, 15, 15, 3, 3, 2, 1),  # ResNet's stem pool (3×3/2, pad 1) at an odd size
                 Pool2dShape(2, 2, 1, 7, 1, 3, stride_h=1, stride_w=2, pad_w=1),  # one row, R = 1
                 # one column, pad_h = 2 > R/2 (beyond PyTorch's limit: its rows are skipped with the reason)
                 Pool2dShape(1, 2, 6, 1, 3, 1, stride_h=2, stride_w=1, pad_h=2)],
        "large": [Pool2dShape(64, 64, 128, 128), Pool2dShape(128, 64, 128, 128)],
    },
)
