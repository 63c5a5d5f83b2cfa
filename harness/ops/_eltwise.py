"""What the elementwise ops (relu, sigmoid) share: an NCHW shape and the shape sets of the thesis models."""

from __future__ import annotations

from dataclasses import dataclass

from harness import workloads
from harness.ops.conv2d import conv_shape
from harness.spec import Tensor, positive


@dataclass(frozen=True)
class TensorShape:
    """An NCHW float32 tensor; a dense layer's activations are N×C with H = W = 1."""

    N: int
    C: int
    H: int = 1
    W: int = 1

    def __post_init__(self):
        positive(N=self.N, C=self.C, H=self.H, W=self.W)

    @property
    def numel(self) -> int:
        return self.N * self.C * self.H * self.W


def tensor(s: TensorShape) -> Tensor:
    return Tensor((s.N, s.C, s.H, s.W))


def _thesis(batch: int) -> list[TensorShape]:
    """Activations of thesis-0..4 at `batch` (harness.workloads): every conv output (ReLU follows each) and the
    hidden dense layers."""
    shapes: list[TensorShape] = []
    for m in workloads.THESIS_MODELS:
        shapes += [TensorShape(batch, c.K, c.H, c.W) for c in workloads.thesis_convs(m)]
        shapes += [TensorShape(batch, d) for d in m.hidden]
    return workloads.unique(shapes)


def _resnet50(batch: int) -> list[TensorShape]:
    """The outputs of the ResNet-50 layers named in harness.workloads.RESNET50_ACTIVATIONS."""
    convs = [conv_shape(batch, workloads.RESNET50_CONVS[name]) for name in workloads.RESNET50_ACTIVATIONS]
    return [TensorShape(batch, c.K, c.P, c.Q) for c in convs]


SHAPE_SETS = {
    "smoke": [TensorShape(1, 1), TensorShape(3, 5, 7, 1), TensorShape(2, 3, 8, 8), TensorShape(1, 1, 1, 1023)],
    "thesis": _thesis(workloads.BATCH),
    "resnet50": _resnet50(workloads.BATCH),
    "edge": [TensorShape(1, 1, 1, 1), TensorShape(1, 3, 13, 13), TensorShape(7, 1, 31, 127), TensorShape(1, 1, 1, 5)],
    "large": [TensorShape(64, 64, 128, 128), TensorShape(128, 64, 128, 128)],  # 256 MiB and 512 MiB
}
