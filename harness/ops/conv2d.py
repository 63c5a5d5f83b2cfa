"""conv2d: 2-D convolution (cross-correlation, as in every DL library), NCHW, its data and weight gradients.

Thesis (seed 003, §2.6.1), with per-axis stride (u_h, u_w), padding and dilation (d_h, d_w), and G groups:
  y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s x[n, g·C/G + c, p·u_h + r·d_h − pad_h, q·u_w + s·d_w − pad_w] · w[k,c,r,s]
(zero outside the image; g = k / (K/G) is output channel k's group, c runs over its C/G input channels; w is
K × C/G × R × S). Output size P = (H + 2·pad_h − d_h·(R−1) − 1) / u_h + 1, likewise Q.
Backward: dx = the transposed convolution of dy with w (dgrad), dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q] · x[...]
with the same index (wgrad), db[k] = Σ_n,p,q dy[n,k,p,q].

As an implicit GEMM per group (CUTLASS's conv profiler): fprop is (N·P·Q) × K/G × (C/G·R·S), dgrad
(N·H·W) × C/G × (K/G·R·S), wgrad K/G × (C/G·R·S) × (N·P·Q); each costs 2·N·P·Q·K·(C/G)·R·S FLOPs in all.
Depthwise convolution is groups = C = K (MobileNet); `stride`, `pad` and `dilation` set both axes.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass

from harness import workloads
from harness.errors import UsageError
from harness.spec import OpSpec, PassSpec, Tensor, axis_keys, both_axes, positive, resolve_axes, signed_uniform


@dataclass(frozen=True)
class Conv2dShape:
    """A convolution problem. Positionally N, C, H, W, K, R, S, stride, pad (both axes, as the thesis writes
    them); by keyword also stride_h/stride_w, pad_h/pad_w, dilation (or dilation_h/dilation_w) and groups.
    Only the per-axis fields are stored, so two spellings of one problem are the same shape."""

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int = 3
    S: int = 3
    stride: InitVar[int | None] = None
    pad: InitVar[int | None] = None
    dilation: InitVar[int | None] = None
    stride_h: int | None = None
    stride_w: int | None = None
    pad_h: int | None = None
    pad_w: int | None = None
    dilation_h: int | None = None
    dilation_w: int | None = None
    groups: int = 1

    def __post_init__(self, stride, pad, dilation):
        resolve_axes(self, stride=(stride, 1), pad=(pad, 1), dilation=(dilation, 1))
        positive(N=self.N, C=self.C, H=self.H, W=self.W, K=self.K, R=self.R, S=self.S, stride_h=self.stride_h,
                 stride_w=self.stride_w, dilation_h=self.dilation_h, dilation_w=self.dilation_w, groups=self.groups)
        if min(self.pad_h, self.pad_w) < 0:
            raise UsageError(f"pad must be >= 0, got pad_h={self.pad_h}, pad_w={self.pad_w}")
        if self.C % self.groups or self.K % self.groups:
            raise UsageError(f"groups={self.groups} must divide C={self.C} and K={self.K}")
        eh, ew = self.dilation_h * (self.R - 1) + 1, self.dilation_w * (self.S - 1) + 1
        if self.H + 2 * self.pad_h < eh or self.W + 2 * self.pad_w < ew:
            raise UsageError(f"kernel {self.R}x{self.S} (extent {eh}x{ew} with dilation) is larger than the padded "
                             f"input {self.H + 2 * self.pad_h}x{self.W + 2 * self.pad_w}")

    @property
    def P(self) -> int:
        return (self.H + 2 * self.pad_h - self.dilation_h * (self.R - 1) - 1) // self.stride_h + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.pad_w - self.dilation_w * (self.S - 1) - 1) // self.stride_w + 1

    @property
    def Cg(self) -> int:
        """Input channels per group (the weights' second dimension)."""
        return self.C // self.groups

    @property
    def Kg(self) -> int:
        """Output channels per group."""
        return self.K // self.groups

    @property
    def square(self) -> bool:
        """One stride, one pad for both axes, no dilation, no groups: the geometry of the thesis's layers."""
        return (self.stride_h == self.stride_w and self.pad_h == self.pad_w and self.dilation_h == self.dilation_w
                == 1 and self.groups == 1)

    @property
    def macs(self) -> int:
        return self.N * self.K * self.P * self.Q * self.Cg * self.R * self.S

    def key_values(self) -> dict[str, int]:
        """Shape-string keys: stride and pad always (one value where the axes agree, so the rows of square layers
        read as before), dilation and groups only where they are not 1."""
        kv = {k: getattr(self, k) for k in ("N", "C", "H", "W", "K", "R", "S")}
        kv |= axis_keys(self, "stride") | axis_keys(self, "pad") | axis_keys(self, "dilation", hide=1)
        return kv | ({"groups": self.groups} if self.groups != 1 else {})


# s.stride, s.pad, s.dilation read both axes where they agree; set after @dataclass, which has taken the names'
# class attributes as the defaults (None) of the constructor's shorthands.
Conv2dShape.stride = both_axes("stride")
Conv2dShape.pad = both_axes("pad")
Conv2dShape.dilation = both_axes("dilation")

def _x(s):
    return Tensor((s.N, s.C, s.H, s.W))


def _w(s):
    return Tensor((s.K, s.Cg, s.R, s.S))


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


def phase_taps(R: int, u: int, d: int, a: int) -> list[int]:
    """The filter taps r < R that reach the input rows of dgrad's stride phase a: tap r reaches the rows h with
    h + pad ≡ r·d (mod u), so phase a (h + pad ≡ a) gets the taps with r·d ≡ a (mod u)."""
    return [r for r in range(R) if r * d % u == a]


def most_phase_taps(R: int, u: int, d: int) -> int:
    """The most taps any one input row receives in dgrad, over the u phases (ceil(R/u) when d = 1)."""
    return max(len(phase_taps(R, u, d, a)) for a in range(u))


FPROP = PassSpec(
    inputs=_fprop_inputs,
    outputs=lambda s: {"y": _y(s)},
    flops=lambda s: 2 * s.macs + s.N * s.K * s.P * s.Q,
    reduction=lambda s: {"y": s.Cg * s.R * s.S},
    make_inputs=_make(_fprop_inputs),
)
DGRAD = PassSpec(
    inputs=_dgrad_inputs,
    outputs=lambda s: {"dx": _x(s)},
    flops=lambda s: 2 * s.macs,
    reduction=lambda s: {"dx": s.Kg * most_phase_taps(s.R, s.stride_h, s.dilation_h)
                         * most_phase_taps(s.S, s.stride_w, s.dilation_w)},
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


def _deepbench() -> list[Conv2dShape]:
    """DeepBench's convolutions (harness.workloads.DEEPBENCH_CONVS), at DeepBench's own batch sizes."""
    return [Conv2dShape(n, c, h, w, k, r, s, stride_h=uh, stride_w=uw, pad_h=ph, pad_w=pw)
            for w, h, c, n, k, s, r, pw, ph, uw, uh in workloads.DEEPBENCH_CONVS.values()]


def _depthwise(batch: int) -> list[Conv2dShape]:
    """MobileNet-v1's depthwise 3x3 (groups = C = K) and pointwise 1x1 layers."""
    dw = [Conv2dShape(batch, c, h, h, c, 3, 3, u, 1, groups=c) for c, h, u in workloads.MOBILENET_DEPTHWISE]
    pw = [Conv2dShape(batch, c, h, h, k, 1, 1, 1, 0) for c, h, k in workloads.MOBILENET_POINTWISE]
    return dw + pw


# Dilated (atrous) 3x3 convolutions as segmentation networks use them: DeepLab's dilated ResNet blocks (dilation
# 2 and 4 at output stride 8), its ASPP branches (dilation 12 and 18 on a 33 x 33 map), a context module layer
# (dilation 8), and one with a different dilation per axis. Padding = dilation keeps the map's size.
DILATED = [Conv2dShape(16, 256, 33, 33, 256, pad=2, dilation=2), Conv2dShape(16, 512, 33, 33, 512, pad=4, dilation=4),
           Conv2dShape(8, 512, 33, 33, 256, pad=12, dilation=12), Conv2dShape(8, 512, 33, 33, 256, pad=18, dilation=18),
           Conv2dShape(16, 64, 64, 64, 64, pad=8, dilation=8),
           Conv2dShape(16, 32, 56, 56, 32, pad_h=2, pad_w=1, dilation_h=2, dilation_w=1)]


SPEC = OpSpec(
    name="conv2d",
    shape_type=Conv2dShape,
    passes={"fprop": FPROP, "dgrad": DGRAD, "wgrad": WGRAD},
    bound="compute",
    doc="2-D convolution, NCHW/K(C/G)RS, per-axis stride/pad, dilation, groups; fprop y = x*w + b, dgrad dx, "
        "wgrad dw, db",
    shape_sets={
        "smoke": [Conv2dShape(1, 1, 5, 5, 1), Conv2dShape(2, 3, 8, 8, 4), Conv2dShape(2, 3, 7, 9, 5, 3, 3, 2, 1),
                  Conv2dShape(1, 2, 6, 6, 3, 1, 1, 1, 0), Conv2dShape(2, 4, 9, 9, 2, 5, 5, 1, 2)],
        "thesis": _thesis(workloads.BATCH),
        "resnet50": _resnet50(workloads.BATCH),
        "resnet50-128": _resnet50(128),
        "edge": [Conv2dShape(1, 3, 13, 13, 8, 1, 1, 1, 0), Conv2dShape(2, 1, 31, 31, 4, 7, 7, 2, 3),
                 Conv2dShape(3, 3, 127, 127, 5, 3, 3, 2, 0), Conv2dShape(1, 5, 3, 3, 7, 3, 3, 1, 0),
                 Conv2dShape(2, 3, 13, 13, 6, 3, 3, 1, 2), Conv2dShape(1, 3, 7, 7, 64, 7, 7, 2, 3),
                 Conv2dShape(4, 33, 5, 5, 65, 3, 3, 1, 1),
                 # the geometry of real models at small sizes: per-axis stride and padding, dilation, groups
                 Conv2dShape(1, 1, 40, 151, 4, 5, 20, stride_h=2, stride_w=8, pad=8),
                 Conv2dShape(2, 4, 9, 11, 6, 3, 3, stride_h=1, stride_w=2, pad_h=0, pad_w=2, dilation_h=2, groups=2),
                 Conv2dShape(2, 5, 9, 7, 5, 3, 3, 2, 1, groups=5), Conv2dShape(1, 3, 8, 8, 6, 3, 3, 1, 1, groups=3),
                 Conv2dShape(2, 3, 1, 17, 4, 1, 5, stride_w=3, pad_h=0, pad_w=2),
                 Conv2dShape(1, 4, 3, 3, 4, 1, 1, 2, 3), Conv2dShape(2, 4, 10, 10, 4, 3, 3, 2, 1, groups=2),
                 Conv2dShape(1, 2, 12, 12, 3, 3, 3, pad=0, dilation=5),
                 Conv2dShape(2, 40, 9, 9, 40, 3, 3, 1, 1, groups=40)],
        "deepbench": _deepbench(),
        "dilated": DILATED,
        "depthwise": _depthwise(workloads.BATCH),
        "grouped": [Conv2dShape(workloads.BATCH, c, h, h, c, 3, 3, 1, 1, groups=32)
                    for c, h in workloads.RESNEXT50_GROUPED],
    },
)
