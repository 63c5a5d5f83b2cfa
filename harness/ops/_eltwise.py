"""What the elementwise ops (relu, sigmoid) share: an NCHW shape and the shape sets of the thesis models."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Activations of thesis-0..4 at `batch`: every conv output (ReLU follows each) and the hidden dense layers."""
    models = [(12, [16, 32], [100]), (32, [16, 32], [100]), (40, [16, 32], [100]), (40, [16, 32, 32], [128, 50]),
              (50, [32, 32, 32], [200, 50])]
    shapes: list[TensorShape] = []
    for hw, filters, dense in models:
        for k in filters:
            shapes.append(TensorShape(batch, k, hw, hw))
            hw //= 2
        shapes += [TensorShape(batch, d) for d in dense]
    return list(dict.fromkeys(shapes))


SHAPE_SETS = {
    "smoke": [TensorShape(1, 1), TensorShape(3, 5, 7, 1), TensorShape(2, 3, 8, 8), TensorShape(1, 1, 1, 1023)],
    "thesis": _thesis(32),
    "resnet50": [TensorShape(32, 64, 112, 112), TensorShape(32, 256, 56, 56), TensorShape(32, 512, 28, 28)],
    "edge": [TensorShape(1, 1, 1, 1), TensorShape(1, 3, 13, 13), TensorShape(7, 1, 31, 127), TensorShape(1, 1, 1, 5)],
    "large": [TensorShape(64, 64, 128, 128), TensorShape(128, 64, 128, 128)],  # 256 MiB and 512 MiB
}
