"""Layer fusion: rewrite a model's layer list so that fewer, larger kernels run per step, computing the same function.

Three rules for the layers, applied left to right (each fused op is a registered op or pass, checked against the
oracle's composition like any other), and a third for the loss (ModelSpec.loss_layer(fuse=True)):
- ReLU, MaxPool2d -> ReLUMaxPool2d: the maxpool2d_relu op (harness/ops/maxpool2d_relu.py). ReLU moves behind the
  max (they commute), so the full-size activation of every conv -> ReLU -> pool block is neither written by a relu
  fwd kernel nor re-read by a relu bwd kernel: two launches and ~3 full-size passes over memory fewer per block.
- Conv2d, ReLU -> Conv2d(relu=True), where no max pool follows the ReLU (there the rule above saves more): the
  conv2d_bias_relu op, the ReLU in the convolution's epilogue, so its full-size input is never written by conv2d
  nor re-read by a relu fwd kernel; the backward pass keeps a relu bwd call. (The zoo's convolutions are all
  followed by a pool.)
- Dense, ReLU -> Dense(relu=True): the ReLU becomes the gemm's epilogue (GemmShape.relu); the backward pass keeps a
  relu bwd call, so one launch fewer per hidden dense layer.
- SoftmaxCrossEntropy(fused=True): softmax_xent's `fused` pass, the loss and its gradient in one call (cupy_opt:
  one kernel instead of three).
Every layer keeps `position`, its index in the unfused list, so parameters are named as without fusion and a
checkpoint loads either way.
"""

from __future__ import annotations

from nets.layers import Conv2d, Dense, Layer, MaxPool2d, ReLU, ReLUMaxPool2d


def fuse(layers: list[Layer]) -> list[Layer]:
    """The fused equivalent of `layers` (not yet built); layers no rule matches are kept as they are."""
    out: list[Layer] = []
    i = 0
    while i < len(layers):
        layer, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        after = layers[i + 2] if i + 2 < len(layers) else None
        fused = None
        if isinstance(layer, ReLU) and type(nxt) is MaxPool2d:
            fused = ReLUMaxPool2d(nxt.size, nxt.stride)
        elif type(layer) is Conv2d and not layer.relu and isinstance(nxt, ReLU) and type(after) is not MaxPool2d:
            fused = Conv2d(layer.filters, layer.kernel, layer.stride, layer.pad, relu=True)
        elif type(layer) is Dense and not layer.relu and isinstance(nxt, ReLU):
            fused = Dense(layer.units, relu=True)
        if fused is None:
            layer.position = i if layer.position is None else layer.position
            out.append(layer)
            i += 1
        else:
            fused.position = i
            out.append(fused)
            i += 2
    return out
