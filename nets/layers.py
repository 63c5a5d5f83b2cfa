"""Layers whose forward and backward passes are calls of the registered implementations of one backend.

Each layer is built once for a per-sample input shape (C, H, W) or (features,) and then allocates, per batch
size, the op's shape object and its output buffers (the registry's calling contract: outputs preallocated,
written in place). Those buffers are reused at every step, so a training step allocates nothing on the device
and never copies to the host. `forward` keeps what `backward` needs (the layer's input and output); `backward`
writes the parameter gradients into each Param's `grad` buffer and returns dL/d(input).

The chain rule is the thesis's (seed 003): dense §2.5.2/§3.1.2, activations §2.5.3, losses §2.5.5/§3.1.1,
convolution §2.6.1, max pooling §2.6.2, flattening §2.6.3.

Fused layers (made by nets.fusion from the plain ones, same parameters and same function): Dense(relu=True), the
dense layer with its ReLU as the gemm's epilogue, Conv2d(relu=True), the convolution's fprop with bias and ReLU as
one conv2d_bias_relu op, and ReLUMaxPool2d, a ReLU and the max pool after it as one maxpool2d_relu op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.ops._eltwise import TensorShape
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.ops.maxpool2d import Pool2dShape
from harness.ops.sigmoid_bce import BceShape
from harness.ops.softmax_xent import XentShape
from nets.backend import PASSES, Backend


@dataclass
class Param:
    """A trainable tensor, its gradient buffer, and its initialisation: He-normal with std sqrt(2 / fan_in)
    (seed 003, §2.5.7) when fan_in is set, zeros (biases) otherwise."""

    name: str
    value: object
    grad: object
    fan_in: int | None


class Layer:
    """Base class: build() fixes the per-sample shapes and parameters; _at_batch(n) the per-batch shapes and buffers."""

    ops: tuple[str, ...] = ()

    def __init__(self):
        self.params: list[Param] = []
        self.backend: Backend | None = None
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()
        self._by_batch: dict[int, dict] = {}
        self.position: int | None = None  # index in the unfused layer list (nets.fusion), which names the params

    def build(self, backend: Backend, in_shape: tuple[int, ...], prefix: str) -> tuple[int, ...]:
        """Bind to `backend`, create the parameters for `in_shape`, return the per-sample output shape."""
        self.backend, self.in_shape = backend, tuple(in_shape)
        self.out_shape = self.output_shape(self.in_shape)
        self.params = [Param(f"{prefix}.{name}", backend.xp.zeros(shape, dtype=backend.dtype),
                             backend.xp.zeros(shape, dtype=backend.dtype), fan_in)
                       for name, shape, fan_in in self.param_specs()]
        return self.out_shape

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape

    def param_specs(self) -> list[tuple[str, tuple[int, ...], int | None]]:
        """(name, shape, fan_in or None) of each parameter."""
        return []

    def at_batch(self, n: int) -> dict:
        """The op shape ("shape") and output buffers of batch size n, made once and checked against the
        implementations' limits."""
        if n not in self._by_batch:
            setup = self._at_batch(n)
            self.check_shapes(setup)
            self._by_batch[n] = setup
        return self._by_batch[n]

    def _at_batch(self, n: int) -> dict:
        return {}

    def check_shapes(self, setup: dict) -> None:
        """Refuse, before training, a batch shape that one of the layer's implementations cannot run."""
        for op in self.ops:
            for pass_ in PASSES[op]:
                self.backend.check_shape(op, pass_, setup["shape"])

    def _empty(self, *shape: int):
        return self.backend.xp.empty(shape, dtype=self.backend.dtype)

    def _relu_backward(self, p: dict, dy):
        """dY·[y > 0] for a layer whose ReLU is fused into its forward call (Dense(relu=True), Conv2d(relu=True)):
        relu bwd on the NCHW view of the batch's "dz" buffer (shape "relu"), returned in dy's shape."""
        nchw = p["dz"].shape
        return self.backend.call("relu", "bwd", p["relu"], {"y": self.y.reshape(nchw), "dy": dy.reshape(nchw)},
                                 {"dx": p["dz"]})["dx"].reshape(dy.shape)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool = True):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.in_shape}->{self.out_shape}"


class Dense(Layer):
    """y = x·W + b (gemm fwd); backward dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ dY (gemm bwd). W is in×out.
    With relu=True, y = ReLU(x·W + b) in the gemm's epilogue, and the backward pass first masks dY by y > 0 (relu
    bwd): one launch fewer per step than Dense + ReLU, the same function."""

    def __init__(self, units: int, relu: bool = False):
        super().__init__()
        self.units, self.relu = units, relu
        self.ops = ("gemm", "relu") if relu else ("gemm",)

    def output_shape(self, in_shape):
        return (self.units,)

    def param_specs(self):
        (k,) = self.in_shape
        return [("w", (k, self.units), k), ("b", (self.units,), None)]

    def _at_batch(self, n):
        (k,) = self.in_shape
        setup = {"shape": GemmShape(M=n, N=self.units, K=k, bias=True, relu=self.relu),
                 "y": self._empty(n, self.units), "dx": self._empty(n, k)}
        if self.relu:  # the relu op sees the output as an N×units×1×1 tensor
            setup |= {"relu": TensorShape(n, self.units), "dz": self._empty(n, self.units, 1, 1)}
        return setup

    def check_shapes(self, setup: dict) -> None:
        for pass_ in PASSES["gemm"]:
            self.backend.check_shape("gemm", pass_, setup["shape"])
        if self.relu:
            self.backend.check_shape("relu", "bwd", setup["relu"])

    def forward(self, x):
        p = self.at_batch(x.shape[0])
        w, b = (q.value for q in self.params)
        self.x = x
        self.y = self.backend.call("gemm", "fwd", p["shape"], {"x": x, "w": w, "b": b}, {"y": p["y"]})["y"]
        return self.y

    def backward(self, dy, need_dx=True):
        p = self.at_batch(dy.shape[0])
        w, b = self.params
        if self.relu:
            dy = self._relu_backward(p, dy)
        self.backend.call("gemm", "bwd", p["shape"], {"x": self.x, "w": w.value, "dy": dy},
                          {"dx": p["dx"], "dw": w.grad, "db": b.grad})
        return p["dx"]


class Conv2d(Layer):
    """NCHW convolution (conv2d fprop); backward: wgrad for dW and db, dgrad for dX (skipped for the first layer).
    With relu=True, y = ReLU(conv + b) in one conv2d_bias_relu fprop, and the backward pass first masks dY by y > 0
    (relu bwd), as Dense(relu=True) does."""

    def __init__(self, filters: int, kernel: int = 3, stride: int = 1, pad: int = 1, relu: bool = False):
        super().__init__()
        self.filters, self.kernel, self.stride, self.pad, self.relu = filters, kernel, stride, pad, relu
        self.ops = ("conv2d_bias_relu", "conv2d", "relu") if relu else ("conv2d",)

    def _shape(self, n: int) -> Conv2dShape:
        c, h, w = self.in_shape
        return Conv2dShape(n, c, h, w, self.filters, self.kernel, self.kernel, self.stride, self.pad)

    def output_shape(self, in_shape):
        s = self._shape(1)
        return (s.K, s.P, s.Q)

    def param_specs(self):
        c = self.in_shape[0]
        return [("w", (self.filters, c, self.kernel, self.kernel), c * self.kernel**2), ("b", (self.filters,), None)]

    def _at_batch(self, n):
        setup = {"shape": self._shape(n), "y": self._empty(n, *self.out_shape), "dx": self._empty(n, *self.in_shape)}
        if self.relu:
            setup |= {"relu": TensorShape(n, *self.out_shape), "dz": self._empty(n, *self.out_shape)}
        return setup

    def check_shapes(self, setup: dict) -> None:
        if not self.relu:
            return super().check_shapes(setup)
        for op, pass_ in (("conv2d_bias_relu", "fprop"), ("conv2d", "dgrad"), ("conv2d", "wgrad")):
            self.backend.check_shape(op, pass_, setup["shape"])
        self.backend.check_shape("relu", "bwd", setup["relu"])

    def forward(self, x):
        p = self.at_batch(x.shape[0])
        w, b = (q.value for q in self.params)
        self.x = x
        op = "conv2d_bias_relu" if self.relu else "conv2d"
        self.y = self.backend.call(op, "fprop", p["shape"], {"x": x, "w": w, "b": b}, {"y": p["y"]})["y"]
        return self.y

    def backward(self, dy, need_dx=True):
        p = self.at_batch(dy.shape[0])
        w, b = self.params
        if self.relu:
            dy = self._relu_backward(p, dy)
        self.backend.call("conv2d", "wgrad", p["shape"], {"x": self.x, "dy": dy}, {"dw": w.grad, "db": b.grad})
        if not need_dx:
            return None
        return self.backend.call("conv2d", "dgrad", p["shape"], {"dy": dy, "w": w.value}, {"dx": p["dx"]})["dx"]


class MaxPool2d(Layer):
    """Max pooling (maxpool2d fwd); backward routes dY to each window's first maximum (maxpool2d bwd)."""

    ops: tuple[str, ...] = ("maxpool2d",)

    def __init__(self, size: int = 2, stride: int = 2):
        super().__init__()
        self.size, self.stride = size, stride

    def _shape(self, n: int) -> Pool2dShape:
        c, h, w = self.in_shape
        return Pool2dShape(n, c, h, w, self.size, self.size, self.stride)

    def output_shape(self, in_shape):
        s = self._shape(1)
        return (s.C, s.P, s.Q)

    def _at_batch(self, n):
        return {"shape": self._shape(n), "y": self._empty(n, *self.out_shape), "dx": self._empty(n, *self.in_shape)}

    def forward(self, x):
        p = self.at_batch(x.shape[0])
        self.x = x
        self.y = self.backend.call(self.ops[0], "fwd", p["shape"], {"x": x}, {"y": p["y"]})["y"]
        return self.y

    def backward(self, dy, need_dx=True):
        p = self.at_batch(dy.shape[0])
        return self.backend.call(self.ops[0], "bwd", p["shape"], {"x": self.x, "y": self.y, "dy": dy},
                                 {"dx": p["dx"]})["dx"]


class ReLUMaxPool2d(MaxPool2d):
    """ReLU then max pooling as one op (maxpool2d_relu): y = maxpool(ReLU(x)); backward dY·[y > 0] to each
    window's first maximum. The full-size ReLU output is neither written nor read again (harness/ops/
    maxpool2d_relu.py)."""

    ops = ("maxpool2d_relu",)


class _Activation(Layer):
    """An elementwise op with fwd x -> y and bwd (y, dy) -> dx, on NCHW views ((N, C) is N×C×1×1)."""

    def _nchw(self, n: int) -> tuple[int, ...]:
        return (n, self.in_shape[0], 1, 1) if len(self.in_shape) == 1 else (n, *self.in_shape)

    def _at_batch(self, n):
        nchw = self._nchw(n)
        return {"shape": TensorShape(*nchw), "y": self._empty(*nchw), "dx": self._empty(*nchw)}

    def forward(self, x):
        n = x.shape[0]
        p = self.at_batch(n)
        self.y = self.backend.call(self.ops[0], "fwd", p["shape"], {"x": x.reshape(self._nchw(n))}, {"y": p["y"]})["y"]
        return self.y.reshape(x.shape)

    def backward(self, dy, need_dx=True):
        n = dy.shape[0]
        p = self.at_batch(n)
        dx = self.backend.call(self.ops[0], "bwd", p["shape"], {"y": self.y, "dy": dy.reshape(self._nchw(n))},
                               {"dx": p["dx"]})["dx"]
        return dx.reshape(dy.shape)


class ReLU(_Activation):
    """max(x, 0); backward dy·[y > 0] (seed 003, §2.5.3)."""

    ops = ("relu",)


class Sigmoid(_Activation):
    """1 / (1 + e^(−x)); backward dy·y·(1 − y) (seed 003, §2.5.3)."""

    ops = ("sigmoid",)


class Flatten(Layer):
    """(C, H, W) -> (C·H·W,) in NCHW order (seed 003, §2.6.3): a view both ways, no op involved."""

    def output_shape(self, in_shape):
        return (math.prod(in_shape),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(dy.shape[0], *self.in_shape)


class Loss(Layer):
    """A loss over (N, classes) logits and int32 labels: forward -> 0-d loss buffer, backward -> dL/dlogits."""

    def forward_loss(self, logits, labels):
        raise NotImplementedError

    def backward_loss(self):
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Mean softmax cross-entropy against integer labels; gradient (softmax − onehot)/N (seed 003, §3.1.1).
    With fused=True the forward call is the op's `fused` pass, which also writes the gradient, and the backward
    call only returns it: one read of the logits per step instead of two."""

    ops = ("softmax_xent",)

    def __init__(self, fused: bool = False):
        super().__init__()
        self.fused = fused

    def _at_batch(self, n):
        (k,) = self.in_shape
        return {"shape": XentShape(n, k), "loss": self._empty(), "dlogits": self._empty(n, k)}

    def forward_loss(self, logits, labels):
        p = self.at_batch(logits.shape[0])
        self.inputs = {"logits": logits, "labels": labels}
        if self.fused:
            out = self.backend.call("softmax_xent", "fused", p["shape"], self.inputs,
                                    {"loss": p["loss"], "dlogits": p["dlogits"]})
            self.dlogits = out["dlogits"]
            return out["loss"]
        return self.backend.call("softmax_xent", "fwd", p["shape"], self.inputs, {"loss": p["loss"]})["loss"]

    def backward_loss(self):
        if self.fused:
            return self.dlogits
        p = self.at_batch(self.inputs["logits"].shape[0])
        return self.backend.call("softmax_xent", "bwd", p["shape"], self.inputs, {"dlogits": p["dlogits"]})["dlogits"]


class SigmoidBCE(Loss):
    """Sigmoid + binary cross-entropy per output against one-hot targets (one-vs-rest; seed 000/003 §2.5.5),
    mean over all N·classes pairs; gradient (σ(z) − t)/(N·classes). The prediction is the largest logit."""

    ops = ("sigmoid_bce",)

    def _at_batch(self, n):
        (k,) = self.in_shape
        xp = self.backend.xp
        return {"shape": BceShape(n * k), "loss": self._empty(), "dlogits": self._empty(n * k),
                "targets": self._empty(n, k), "eye": xp.eye(k, dtype=self.backend.dtype)}

    def forward_loss(self, logits, labels):
        n = logits.shape[0]
        p = self.at_batch(n)
        self.backend.xp.take(p["eye"], labels, axis=0, out=p["targets"])
        self.inputs = {"logits": logits.reshape(-1), "targets": p["targets"].reshape(-1)}
        return self.backend.call("sigmoid_bce", "fwd", p["shape"], self.inputs, {"loss": p["loss"]})["loss"]

    def backward_loss(self):
        n = self.inputs["logits"].shape[0] // self.in_shape[0]
        p = self.at_batch(n)
        g = self.backend.call("sigmoid_bce", "bwd", p["shape"], self.inputs, {"dlogits": p["dlogits"]})["dlogits"]
        return g.reshape(n, -1)
