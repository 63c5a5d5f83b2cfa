"""The model zoo and each model's default training settings.

| model    | input         | layers (each conv 3x3/1 pad 1 + ReLU + 2x2 max pool) | loss    | epochs | lr   | batch |
| -------- | ------------- | ---------------------------------------------------- | ------- | ------ | ---- | ----- |
| mlp1     | dataset's own | dense 128 + ReLU, dense classes                      | softmax | 30     | 0.1  | 32    |
| mlp2     | dataset's own | dense 128 + ReLU, dense 64 + ReLU, dense classes     | softmax | 30     | 0.1  | 32    |
| mlp1-bce | dataset's own | as mlp1                                              | sigmoid | 30     | 1.0  | 32    |
| mlp2-bce | dataset's own | as mlp2                                              | sigmoid | 30     | 1.0  | 32    |
| thesis-0 | 3 x 12 x 12   | conv 16, conv 32, dense 100                          | softmax | 15     | 0.01 | 32    |
| thesis-1 | 3 x 32 x 32   | conv 16, conv 32, dense 100                          | softmax | 15     | 0.01 | 32    |
| thesis-2 | 3 x 40 x 40   | conv 16, conv 32, dense 100                          | softmax | 15     | 0.01 | 32    |
| thesis-3 | 3 x 40 x 40   | conv 16, conv 32, conv 32, dense 128, dense 50       | softmax | 15     | 0.01 | 32    |
| thesis-4 | 3 x 50 x 50   | conv 32, conv 32, conv 32, dense 200, dense 50       | softmax | 15     | 0.01 | 32    |
| lenet    | dataset's own | conv5x5 16, conv5x5 32 (pad 2), dense 120, dense 84  | softmax | 30     | 0.05 | 32    |
| vgg-small| 3 x 64 x 64   | conv 64, conv 128, conv 256, dense 512               | softmax | 10     | 0.01 | 32    |

mlp1/mlp2 are the seed's fully connected networks with one and two hidden ReLU layers (seed 000 §3.1, seed 003
§3.1.2-§3.1.3); the seed draws them 2-3-1 and 2-3-3-1 for a toy problem, here they are as wide as a 10-class image
task needs (`--hidden` sets the widths, `--hidden 3` gives the seed's). The `-bce` variants end in the seed's
sigmoid + binary cross-entropy, one output per class (one-vs-rest against one-hot targets). thesis-0..4 are
../shared/WORKLOADS.md's models, as harness/workloads.py writes them. The thesis trained thesis-2 at lr 0.001 and
thesis-3/4 at 1e-5 on its own data; those rates barely move a He-initialised network in a few epochs of 1,438
digits, so the defaults here are 0.01 for all five (`--lr` restores the thesis's). lenet is LeNet-5's layout (two
5x5 convolutions, each + ReLU + 2x2 max pool, dense 120 and 84) with "same" padding, so that 8x8 digits survive two
pools, and with 16 and 32 filters instead of 6 and 16: on digits that lifts the test accuracy over five seeds from
97.2-98.6% to 98.3-99.2%. Models marked "dataset's own" take the images at their native size and channels; the
others get the data resized and channel-fitted (nets.data.fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness import workloads
from harness.errors import choices_error
from nets import fusion
from nets.layers import Conv2d, Dense, Flatten, Layer, Loss, MaxPool2d, ReLU, SigmoidBCE, SoftmaxCrossEntropy


@dataclass(frozen=True)
class ModelSpec:
    """A model: its fixed input shape (None: the dataset's), how to build its layers, loss and defaults."""

    name: str
    doc: str
    input_shape: tuple[int, int, int] | None
    build: Callable[[tuple[int, ...], int], list[Layer]]  # (hidden widths, classes) -> layers
    hidden: tuple[int, ...]
    loss: str  # "softmax" or "sigmoid"
    epochs: int
    lr: float
    batch: int = 32

    def layers(self, classes: int, hidden: tuple[int, ...] | None = None, fuse: bool = False) -> list[Layer]:
        """The model's layers; with `fuse`, ReLU + max pool and dense + ReLU as fused layers (nets.fusion)."""
        layers = self.build(tuple(hidden) if hidden else self.hidden, classes)
        return fusion.fuse(layers) if fuse else layers

    def loss_layer(self, fuse: bool = False) -> Loss:
        """The loss layer; with `fuse`, softmax cross-entropy computes its gradient in the same call as the loss."""
        return SoftmaxCrossEntropy(fused=fuse) if self.loss == "softmax" else SigmoidBCE()


def _mlp(hidden: tuple[int, ...], classes: int) -> list[Layer]:
    layers: list[Layer] = [Flatten()]
    for units in hidden:
        layers += [Dense(units), ReLU()]
    return [*layers, Dense(classes)]


def _cnn(filters: tuple[int, ...], kernel: int = 3, pad: int = 1):
    """Convolutions (each + ReLU + 2x2/2 max pool), then the hidden dense layers (each + ReLU), then the output."""
    def build(hidden: tuple[int, ...], classes: int) -> list[Layer]:
        layers: list[Layer] = []
        for k in filters:
            layers += [Conv2d(k, kernel, 1, pad), ReLU(), MaxPool2d(2, 2)]
        return [*layers, *_mlp(hidden, classes)]
    return build


_THESIS = {m.name: (m.input, m.filters, m.hidden) for m in workloads.THESIS_MODELS}  # (input, filters, hidden)

MODELS: dict[str, ModelSpec] = {
    "mlp1": ModelSpec("mlp1", "one hidden ReLU layer, softmax output", None, _mlp, (128,), "softmax", 30, 0.1),
    "mlp2": ModelSpec("mlp2", "two hidden ReLU layers, softmax output", None, _mlp, (128, 64), "softmax", 30, 0.1),
    "mlp1-bce": ModelSpec("mlp1-bce", "one hidden ReLU layer, sigmoid + binary cross-entropy per class", None, _mlp,
                          (128,), "sigmoid", 30, 1.0),
    "mlp2-bce": ModelSpec("mlp2-bce", "two hidden ReLU layers, sigmoid + binary cross-entropy per class", None,
                          _mlp, (128, 64), "sigmoid", 30, 1.0),
    **{name: ModelSpec(name, f"thesis CNN: convs {filters}, dense {hidden}", shape, _cnn(filters), hidden, "softmax",
                       15, 0.01)
       for name, (shape, filters, hidden) in _THESIS.items()},
    "lenet": ModelSpec("lenet", "LeNet-5-like: conv5x5 16, conv5x5 32 (same padding), dense 120, 84", None,
                       _cnn((16, 32), kernel=5, pad=2), (120, 84), "softmax", 30, 0.05),
}
MODELS["vgg-small"] = ModelSpec("vgg-small", "VGG-style: convs 64, 128, 256 on 3x64x64, dense 512; compute-heavy, "
                                "for data-parallel scaling", (3, 64, 64), _cnn((64, 128, 256)), (512,), "softmax",
                                10, 0.01)
THESIS_MODELS = tuple(_THESIS)


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise choices_error("model", name, MODELS)
    return MODELS[name]
