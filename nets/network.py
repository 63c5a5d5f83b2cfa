"""A network: layers, a loss and plain mini-batch SGD, all running on one Backend.

One training step is the thesis's algorithm (seed 003, §2.5.6 and §3): forward through every layer, the loss and
its gradient with respect to the logits, backward through the layers in reverse order (the first layer skips
its input gradient), then W ← W − lr·dW for every parameter through the registered `sgd` op.

The parameters (and their gradients) live in one flat buffer each, every tensor a view at an offset aligned to
ALIGN elements, so that the update of all of them is one `sgd` call: one kernel per step instead of one per tensor
(the multi-tensor update of apex and PyTorch's foreach optimisers; ~1–2 µs a kernel even inside a CUDA graph, more
eagerly). The gaps between the views hold zeros in both buffers and stay zero under W − lr·dW.
"""

from __future__ import annotations

import numpy as np

from harness.device import to_host
from harness.errors import UsageError
from harness.ops.sgd import SgdShape
from nets.backend import Backend
from nets.layers import Layer, Loss, Param

ALIGN = 64  # elements between the starts of two parameter views (256 bytes in float32): vector loads stay aligned


def flatten(params: list[Param], xp, dtype) -> tuple[object, object]:
    """Move every Param's value and grad into views of two flat zero-filled buffers (values copied), each view at
    a multiple of ALIGN; returns (values, grads)."""
    offsets, total = [], 0
    for p in params:
        offsets.append(total)
        total += -(-p.value.size // ALIGN) * ALIGN
    values, grads = xp.zeros(total, dtype=dtype), xp.zeros(total, dtype=dtype)
    for p, off in zip(params, offsets, strict=True):
        n, shape = p.value.size, p.value.shape
        values[off:off + n] = p.value.reshape(-1)
        p.value = values[off:off + n].reshape(shape)
        p.grad = grads[off:off + n].reshape(shape)
    return values, grads


def ops_of(layers: list[Layer], loss: Loss) -> list[str]:
    """The ops a network of these layers needs, in first-use order, sgd last."""
    return list(dict.fromkeys([op for layer in [*layers, loss] for op in layer.ops] + ["sgd"]))


class Network:
    """Layers built for a per-sample input shape on `backend`, followed by `loss`."""

    def __init__(self, layers: list[Layer], loss: Loss, backend: Backend, in_shape: tuple[int, ...]):
        self.layers, self.loss, self.backend = layers, loss, backend
        self.in_shape = tuple(in_shape)
        shape = self.in_shape
        for i, layer in enumerate(layers):
            position = i if layer.position is None else layer.position  # fused layers keep their unfused names
            shape = layer.build(backend, shape, f"{position}.{type(layer).__name__.lower()}")
        loss.build(backend, shape, "loss")
        self.params: list[Param] = [p for layer in layers for p in layer.params]
        self.flat_values, self.flat_grads = flatten(self.params, backend.xp, backend.dtype)

    def init(self, seed: int) -> None:
        """He-normal weights (std sqrt(2/fan_in)) and zero biases, drawn in float64 on the host from `seed`, so
        every backend starts from the same weights (rounded to its dtype)."""
        rng = np.random.default_rng(seed)
        for p in self.params:
            if p.fan_in is None:
                p.value[...] = 0
            else:
                host = rng.normal(0.0, np.sqrt(2.0 / p.fan_in), size=p.value.shape)
                p.value[...] = self.backend.xp.asarray(host.astype(self.backend.dtype))

    def forward(self, x):
        """Logits of a batch (N, *in_shape)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dlogits) -> None:
        """Fill every Param.grad from dL/dlogits."""
        g = dlogits
        for i in range(len(self.layers) - 1, -1, -1):
            g = self.layers[i].backward(g, need_dx=i > 0)

    def state(self) -> dict[str, np.ndarray]:
        """Parameter values as host arrays, by name."""
        return {p.name: to_host(p.value) for p in self.params}

    def load_state(self, state: dict[str, np.ndarray], source: str) -> None:
        """Copy `state` into the parameters; a missing or misshapen tensor is a UsageError naming `source`."""
        for p in self.params:
            if p.name not in state:
                raise UsageError(f"{source}: no tensor '{p.name}' (checkpoint of another model?)")
            if tuple(state[p.name].shape) != tuple(p.value.shape):
                raise UsageError(f"{source}: tensor '{p.name}' has shape {tuple(state[p.name].shape)}, "
                                 f"the model needs {tuple(p.value.shape)}")
            p.value[...] = self.backend.xp.asarray(state[p.name].astype(self.backend.dtype))


class SGD:
    """Plain mini-batch SGD through the registered `sgd` op, counting its steps: one call over the network's flat
    parameter buffer (`shapes`, one per tensor, are for updates of a few tensors at a time: nets.distributed)."""

    def __init__(self, net: Network, lr: float):
        self.net, self.lr, self.steps = net, lr, 0
        self.shapes = [SgdShape(p.value.size, lr) for p in net.params]
        self.flat_shape = SgdShape(net.flat_values.size, lr) if net.params else None  # None: nothing to train
        for s in [*self.shapes, self.flat_shape]:
            if s is not None:
                net.backend.check_shape("sgd", "update", s)

    def step(self) -> None:
        if self.flat_shape is not None:
            self.net.backend.call("sgd", "update", self.flat_shape, {"dw": self.net.flat_grads},
                                  {"w": self.net.flat_values})
        self.steps += 1

    def train_step(self, x, labels):
        """Forward, loss, backward and update on one batch; returns (loss 0-d buffer, logits buffer)."""
        logits = self.net.forward(x)
        loss = self.net.loss.forward_loss(logits, labels)
        self.net.backward(self.net.loss.backward_loss())
        self.step()
        return loss, logits
