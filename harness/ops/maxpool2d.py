"""maxpool2d: max pooling over R×S windows with a stride, no padding (floor), NCHW; and its backward pass.

Thesis (seed 003, §2.6.2): y[n,c,p,q] = max_{r<R, s<S} x[n,c,p·u+r, q·u+s]; backward routes dy[n,c,p,q] to the
position of that maximum and sums where windows overlap (stride < window).
Ties: the gradient goes to the FIRST maximal element of the window in row-major (r, then s) order (PyTorch's
rule); the project's own implementations follow it and tests/impls pin it on constructed ties. Random float32
inputs have a few exact ties in the largest shapes (about one per 10^7 windows), so a library with another rule
can fail the checker on one element there: a real difference of semantics, reported as such.
FLOPs count one comparison per window element beyond the first (fwd) and per window element (bwd).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import workloads
from harness.errors import UsageError
from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class Pool2dShape:
    N: int
    C: int
    H: int
    W: int
    R: int = 2
    S: int = 2
    stride: int = 2

    def __post_init__(self):
        positive(N=self.N, C=self.C, H=self.H, W=self.W, R=self.R, S=self.S, stride=self.stride)
        if self.R > self.H or self.S > self.W:
            raise UsageError(f"pooling window {self.R}x{self.S} is larger than the input {self.H}x{self.W}")

    @property
    def P(self) -> int:
        return (self.H - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        return (self.W - self.S) // self.stride + 1


def _x(s):
    return Tensor((s.N, s.C, s.H, s.W))


def _y(s):
    return Tensor((s.N, s.C, s.P, s.Q))


def pool_forward_reference(s: Pool2dShape, x: np.ndarray) -> np.ndarray:
    """Max over each window (exact in any precision); used to build the bwd pass's `y` input."""
    y = np.full((s.N, s.C, s.P, s.Q), -np.inf, dtype=x.dtype)
    for r in range(s.R):
        for c in range(s.S):
            win = x[:, :, r:r + s.stride * (s.P - 1) + 1:s.stride, c:c + s.stride * (s.Q - 1) + 1:s.stride]
            np.maximum(y, win, out=y)
    return y


def _bwd_make(s, rng):
    x = signed_uniform(rng, _x(s).shape).astype(np.float32).astype(np.float64)
    # y from the float32-rounded x equals every implementation's forward exactly (OpSpec.make_inputs rounds x too).
    y = pool_forward_reference(s, x)
    return {"x": x, "y": y, "dy": signed_uniform(rng, _y(s).shape)}


def _overlap(s) -> int:
    return -(-s.R // s.stride) * -(-s.S // s.stride)


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
    doc="max pooling, NCHW, R×S window, stride; bwd routes dy to the first maximum of each window",
    shape_sets={
        "smoke": [Pool2dShape(1, 1, 2, 2), Pool2dShape(2, 3, 8, 8), Pool2dShape(2, 3, 7, 9),
                  Pool2dShape(1, 2, 9, 9, 3, 3, 2), Pool2dShape(2, 2, 6, 5, 3, 2, 1)],
        "thesis": _thesis(workloads.BATCH),
        "resnet50": [_resnet50_pool(workloads.BATCH)],
        "edge": [Pool2dShape(1, 3, 13, 13), Pool2dShape(3, 1, 31, 31, 3, 3, 2), Pool2dShape(1, 5, 127, 127, 2, 2, 2),
                 Pool2dShape(2, 3, 7, 7, 7, 7, 1), Pool2dShape(2, 4, 5, 5, 3, 3, 1)],
        "large": [Pool2dShape(64, 64, 128, 128), Pool2dShape(128, 64, 128, 128)],
    },
)
