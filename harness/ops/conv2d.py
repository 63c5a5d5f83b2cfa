"""conv2d: 2-D convolution (cross-correlation, as in every DL library), NCHW, its data and weight gradients.

Thesis (seed 003, §2.6.1): y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s x[n,c,p·u+r−pad, q·u+s−pad] · w[k,c,r,s]
(zero outside the image; u = stride). Backward: dx = the transposed convolution of dy with w (dgrad),
dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q] · x[n,c,p·u+r−pad, q·u+s−pad] (wgrad), db[k] = Σ_n,p,q dy[n,k,p,q].

As an implicit GEMM (CUTLASS's conv profiler): fprop is (N·P·Q) × K × (C·R·S), dgrad (N·H·W) × C × (K·R·S),
wgrad K × (C·R·S) × (N·P·Q); each costs 2·N·P·Q·K·C·R·S FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import workloads
from harness.errors import UsageError
from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class Conv2dShape:
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int = 3
    S: int = 3
    stride: int = 1
    pad: int = 1

    def __post_init__(self):
        positive(N=self.N, C=self.C, H=self.H, W=self.W, K=self.K, R=self.R, S=self.S, stride=self.stride)
        if self.pad < 0:
            raise UsageError(f"pad must be >= 0, got {self.pad}")
        if self.H + 2 * self.pad < self.R or self.W + 2 * self.pad < self.S:
            raise UsageError(f"kernel {self.R}x{self.S} is larger than the padded input "
                             f"{self.H + 2 * self.pad}x{self.W + 2 * self.pad}")

    @property
    def P(self) -> int:
        return (self.H + 2 * self.pad - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.pad - self.S) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.N * self.K * self.P * self.Q * self.C * self.R * self.S


def _x(s):
    return Tensor((s.N, s.C, s.H, s.W))


def _w(s):
    return Tensor((s.K, s.C, s.R, s.S))


def _y(s):
    return Tensor((s.N, s.K, s.P, s.Q))


def _make(shapes):
    def make(s, rng):
        return {name: signed_uniform(rng, t.shape) for name, t in shapes(s).items()}
    return make


def _fprop_inputs(s):
    return {"x": _x(s), "w": _w(s), "b": Tensor((s.K,))}


def _dgrad_inputs(s):
    return {"dy": _y(s), "w": _w(s)}


def _wgrad_inputs(s):
    return {"x": _x(s), "dy": _y(s)}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


FPROP = PassSpec(
    inputs=_fprop_inputs,
    outputs=lambda s: {"y": _y(s)},
    flops=lambda s: 2 * s.macs + s.N * s.K * s.P * s.Q,
    reduction=lambda s: {"y": s.C * s.R * s.S},
    make_inputs=_make(_fprop_inputs),
)
DGRAD = PassSpec(
    inputs=_dgrad_inputs,
    outputs=lambda s: {"dx": _x(s)},
    flops=lambda s: 2 * s.macs,
    reduction=lambda s: {"dx": s.K * _ceil_div(s.R, s.stride) * _ceil_div(s.S, s.stride)},
    make_inputs=_make(_dgrad_inputs),
)
WGRAD = PassSpec(
    inputs=_wgrad_inputs,
    outputs=lambda s: {"dw": _w(s), "db": Tensor((s.K,))},
    flops=lambda s: 2 * s.macs + s.N * s.K * s.P * s.Q,
    reduction=lambda s: {"dw": s.N * s.P * s.Q, "db": s.N * s.P * s.Q},
    make_inputs=_make(_wgrad_inputs),
)


def conv_shape(batch: int, c: workloads.ConvLayer) -> Conv2dShape:
    return Conv2dShape(batch, *c)


def _thesis(batch: int) -> list[Conv2dShape]:
    """Every convolution layer of thesis-0..4 (harness.workloads), each once."""
    return workloads.unique(conv_shape(batch, c) for m in workloads.THESIS_MODELS for c in workloads.thesis_convs(m))


def _resnet50(batch: int) -> list[Conv2dShape]:
    """The ResNet-50 convolutions of harness.workloads."""
    return [conv_shape(batch, c) for c in workloads.RESNET50_CONVS.values()]


SPEC = OpSpec(
    name="conv2d",
    shape_type=Conv2dShape,
    passes={"fprop": FPROP, "dgrad": DGRAD, "wgrad": WGRAD},
    bound="compute",
    doc="2-D convolution, NCHW/KCRS; fprop y = x*w + b, dgrad dx, wgrad dw and db",
    shape_sets={
        "smoke": [Conv2dShape(1, 1, 5, 5, 1), Conv2dShape(2, 3, 8, 8, 4), Conv2dShape(2, 3, 7, 9, 5, 3, 3, 2, 1),
                  Conv2dShape(1, 2, 6, 6, 3, 1, 1, 1, 0), Conv2dShape(2, 4, 9, 9, 2, 5, 5, 1, 2)],
        "thesis": _thesis(workloads.BATCH),
        "resnet50": _resnet50(workloads.BATCH),
        "resnet50-128": _resnet50(128),
        "edge": [Conv2dShape(1, 3, 13, 13, 8, 1, 1, 1, 0), Conv2dShape(2, 1, 31, 31, 4, 7, 7, 2, 3),
                 Conv2dShape(3, 3, 127, 127, 5, 3, 3, 2, 0), Conv2dShape(1, 5, 3, 3, 7, 3, 3, 1, 0),
                 Conv2dShape(2, 3, 13, 13, 6, 3, 3, 1, 2), Conv2dShape(1, 3, 7, 7, 64, 7, 7, 2, 3),
                 Conv2dShape(4, 33, 5, 5, 65, 3, 3, 1, 1)],
    },
)
