"""torch (GPU, strict fp32), torch_tf32 (GPU, tf32; gemm and conv2d) and torch_cpu (CPU, fp32): PyTorch as the peer.

Every op and pass is what a PyTorch user would write: torch.nn.functional, the explicit convolution gradients of
torch.nn.grad, the aten backward functions autograd itself calls, and autograd for the fused losses. Results go
into the harness's buffers through `out=` forms where PyTorch has one; elsewhere (conv2d, max pooling forward,
the losses) PyTorch returns a new tensor and one device copy into the buffer is part of the measured call.

Zero-copy: NumPy arrays through torch.from_numpy, CuPy arrays through DLPack. GPU calls run on CuPy's current
stream (wrapped as torch.cuda.ExternalStream; CuPy's null stream is torch's default stream), so DLPack needs no
synchronisation and the harness's timer sees the work on its stream.

Precision: around each GPU gemm/conv2d call TF32 is switched off (torch) or on (torch_tf32) for both cuBLAS and
cuDNN, and the previous setting restored. On PyTorch >= 2.9 that is torch.backends.cuda.matmul.fp32_precision and
torch.backends.cudnn.conv.fp32_precision ("ieee" / "tf32"), the replacements of the deprecated
torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32, which older versions get instead.

Where a pass's inputs are not what PyTorch's backward needs, the missing piece is recomputed inside the call:
max pooling backward recomputes the argmax indices (the pass gives y, PyTorch wants indices), and the loss
gradients run the loss forward under autograd before differentiating it. int32 labels are widened to int64
(PyTorch's cross_entropy requires it) inside the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from harness.device import gpu_unavailable_reason
from harness.registry import register

_streams: dict[tuple[int, int], object] = {}  # (device, CuPy stream pointer) -> torch stream


# ---------------------------------------------------------------- availability
def available_cpu() -> str | None:
    try:
        import torch  # noqa: F401
    except Exception as exc:
        return f"torch not installed ({type(exc).__name__}); pip install .[torch]"
    return None


def available_gpu() -> str | None:
    reason = gpu_unavailable_reason() or available_cpu()
    if reason is None:
        import torch

        if not torch.cuda.is_available():
            reason = f"torch {torch.__version__} sees no CUDA device (a CPU-only build?)"
    return reason


# ---------------------------------------------------------------- calling convention
def _torch_stream():
    """CuPy's current stream as a torch stream."""
    import cupy
    import torch

    dev, ptr = cupy.cuda.Device().id, cupy.cuda.get_current_stream().ptr
    key = (dev, ptr)
    if key not in _streams:
        _streams[key] = torch.cuda.default_stream(dev) if ptr == 0 else torch.cuda.ExternalStream(ptr, device=dev)
    return _streams[key]


@contextlib.contextmanager
def _precision(tf32: bool):
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions, restored afterwards."""
    import torch

    mm, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(mm, "fp32_precision"):
        saved = (mm.fp32_precision, cudnn.conv.fp32_precision)
        mm.fp32_precision = cudnn.conv.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            mm.fp32_precision, cudnn.conv.fp32_precision = saved
    else:
        saved = (mm.allow_tf32, cudnn.allow_tf32)
        mm.allow_tf32 = cudnn.allow_tf32 = tf32
        try:
            yield
        finally:
            mm.allow_tf32, cudnn.allow_tf32 = saved


def _wrap(body: Callable, device: str, tf32: bool | None) -> Callable:
    """The harness-facing function: arrays to torch tensors (zero copy), the right stream and precision."""
    def fn(shape, **arrays):
        import torch

        if device == "cpu":
            return body(shape, **{k: torch.from_numpy(a) for k, a in arrays.items()})
        with torch.cuda.stream(_torch_stream()):
            tensors = {k: torch.from_dlpack(a) for k, a in arrays.items()}
            with _precision(tf32) if tf32 is not None else contextlib.nullcontext():
                body(shape, **tensors)

    fn.__doc__ = body.__doc__
    fn.__name__ = body.__name__
    return fn


# ---------------------------------------------------------------- gemm and conv2d (precision-sensitive)
def gemm_fwd(s, x, w, b=None, *, y):
    """torch.addmm (or torch.mm) into y, then clamp_min_ for the ReLU."""
    import torch

    if s.bias:
        torch.addmm(b, x, w, out=y)
    else:
        torch.mm(x, w, out=y)
    if s.relu:
        y.clamp_min_(0)


def gemm_bwd(s, x, w, dy, *, dx, dw, db):
    """torch.mm for dy·wᵀ and xᵀ·dy, torch.sum for db."""
    import torch

    torch.mm(dy, w.t(), out=dx)
    torch.mm(x.t(), dy, out=dw)
    torch.sum(dy, dim=0, out=db)


def _conv_geometry(s) -> dict:
    """F.conv2d's and torch.nn.grad's geometry keywords, per axis (weights are K × C/groups × R × S)."""
    return {"stride": (s.stride_h, s.stride_w), "padding": (s.pad_h, s.pad_w),
            "dilation": (s.dilation_h, s.dilation_w), "groups": s.groups}


def conv2d_fprop(s, x, w, b, *, y):
    """torch.nn.functional.conv2d (with bias), copied into y."""
    import torch.nn.functional as F

    y.copy_(F.conv2d(x, w, b, **_conv_geometry(s)))


def conv2d_bias_relu_fprop(s, x, w, b, *, y):
    """torch.nn.functional.conv2d (with bias) copied into y, then ReLU in place on y (eager PyTorch runs them as two
    kernels: its cheapest composition)."""
    import torch.nn.functional as F

    y.copy_(F.conv2d(x, w, b, **_conv_geometry(s))).relu_()


def conv2d_dgrad(s, dy, w, *, dx):
    """torch.nn.grad.conv2d_input, copied into dx."""
    import torch.nn.grad

    dx.copy_(torch.nn.grad.conv2d_input((s.N, s.C, s.H, s.W), w, dy, **_conv_geometry(s)))


def conv2d_wgrad(s, x, dy, *, dw, db):
    """torch.nn.grad.conv2d_weight (copied into dw) and torch.sum for db."""
    import torch.nn.grad

    dw.copy_(torch.nn.grad.conv2d_weight(x, (s.K, s.Cg, s.R, s.S), dy, **_conv_geometry(s)))
    torch.sum(dy, dim=(0, 2, 3), out=db)


# ---------------------------------------------------------------- the other ops
def _pool_geometry(s) -> tuple[list[int], list[int], list[int]]:
    """max_pool2d's kernel, stride and padding, per axis (PyTorch pads with −inf: padding is never the max)."""
    return [s.R, s.S], [s.stride_h, s.stride_w], [s.pad_h, s.pad_w]


def maxpool2d_supports(s) -> str | None:
    """PyTorch rejects padding beyond half the window ("pad should be at most half of effective kernel size")."""
    if s.pad_h > s.R // 2 or s.pad_w > s.S // 2:
        return (f"PyTorch max_pool2d needs pad <= window/2 per axis (pad {s.pad_h}x{s.pad_w}, window "
                f"{s.R}x{s.S})")
    return None


def maxpool2d_fwd(s, x, *, y):
    """torch.nn.functional.max_pool2d, copied into y."""
    import torch.nn.functional as F

    kernel, stride, padding = _pool_geometry(s)
    y.copy_(F.max_pool2d(x, kernel, stride=stride, padding=padding))


def maxpool2d_bwd(s, x, y, dy, *, dx):
    """aten max_pool2d_with_indices (for the indices), then its backward into dx."""
    import torch

    kernel, stride, padding = _pool_geometry(s)
    _, idx = torch.ops.aten.max_pool2d_with_indices(x, kernel, stride, padding)
    torch.ops.aten.max_pool2d_with_indices_backward.grad_input(dy, x, kernel, stride, padding, [1, 1], False, idx,
                                                               grad_input=dx)


def maxpool2d_relu_fwd(s, x, *, y):
    """max_pool2d into y, then relu_ in place on the pooled side (= max_pool2d(relu(x)), a quarter of the work)."""
    maxpool2d_fwd(s, x, y=y)
    y.relu_()


def maxpool2d_relu_bwd(s, x, y, dy, *, dx):
    """max_pool2d's backward (maxpool2d_bwd above) of dy masked by y > 0 (threshold_backward on the pooled side)."""
    import torch

    maxpool2d_bwd(s, x, y, torch.ops.aten.threshold_backward(dy, y, 0), dx=dx)


def relu_fwd(s, x, *, y):
    """torch.clamp_min(x, 0) into y."""
    import torch

    torch.clamp_min(x, 0, out=y)


def relu_bwd(s, y, dy, *, dx):
    """aten threshold_backward(dy, y, 0) into dx (what autograd runs for relu)."""
    import torch

    torch.ops.aten.threshold_backward.grad_input(dy, y, 0, grad_input=dx)


def sigmoid_fwd(s, x, *, y):
    """torch.sigmoid into y."""
    import torch

    torch.sigmoid(x, out=y)


def sigmoid_bwd(s, y, dy, *, dx):
    """aten sigmoid_backward(dy, y) into dx (what autograd runs for sigmoid)."""
    import torch

    torch.ops.aten.sigmoid_backward.grad_input(dy, y, grad_input=dx)


def _grad_of(loss_fn: Callable, z):
    """∂loss_fn(z)/∂z by autograd, z taken as a fresh leaf (no copy of its data)."""
    import torch

    leaf = z.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(leaf), leaf)
    return g


def softmax_xent_fwd(s, logits, labels, *, loss):
    """torch.nn.functional.cross_entropy (mean), copied into loss."""
    import torch.nn.functional as F

    loss.copy_(F.cross_entropy(logits, labels.long()))


def softmax_xent_bwd(s, logits, labels, *, dlogits):
    """autograd through torch.nn.functional.cross_entropy, copied into dlogits."""
    import torch.nn.functional as F

    target = labels.long()
    dlogits.copy_(_grad_of(lambda z: F.cross_entropy(z, target), logits))


def softmax_xent_fused(s, logits, labels, *, loss, dlogits):
    """cross_entropy and its autograd gradient from one forward graph, copied into loss and dlogits."""
    import torch
    import torch.nn.functional as F

    leaf = logits.detach().requires_grad_(True)
    value = F.cross_entropy(leaf, labels.long())
    (g,) = torch.autograd.grad(value, leaf)
    loss.copy_(value.detach())
    dlogits.copy_(g)


def sigmoid_bce_fwd(s, logits, targets, *, loss):
    """torch.nn.functional.binary_cross_entropy_with_logits (mean), copied into loss."""
    import torch.nn.functional as F

    loss.copy_(F.binary_cross_entropy_with_logits(logits, targets))


def sigmoid_bce_bwd(s, logits, targets, *, dlogits):
    """autograd through binary_cross_entropy_with_logits, copied into dlogits."""
    import torch.nn.functional as F

    dlogits.copy_(_grad_of(lambda z: F.binary_cross_entropy_with_logits(z, targets), logits))


def sgd_update(s, dw, *, w):
    """w.add_(dw, alpha=−lr), in place."""
    w.add_(dw, alpha=-s.lr)


PRECISION_SENSITIVE = {("gemm", "fwd"): gemm_fwd, ("gemm", "bwd"): gemm_bwd, ("conv2d", "fprop"): conv2d_fprop,
                       ("conv2d_bias_relu", "fprop"): conv2d_bias_relu_fprop,
                       ("conv2d", "dgrad"): conv2d_dgrad, ("conv2d", "wgrad"): conv2d_wgrad}
OTHERS = {("maxpool2d", "fwd"): maxpool2d_fwd, ("maxpool2d", "bwd"): maxpool2d_bwd,
          ("maxpool2d_relu", "fwd"): maxpool2d_relu_fwd, ("maxpool2d_relu", "bwd"): maxpool2d_relu_bwd,
          ("relu", "fwd"): relu_fwd,
          ("relu", "bwd"): relu_bwd, ("sigmoid", "fwd"): sigmoid_fwd, ("sigmoid", "bwd"): sigmoid_bwd,
          ("softmax_xent", "fwd"): softmax_xent_fwd, ("softmax_xent", "bwd"): softmax_xent_bwd,
          ("softmax_xent", "fused"): softmax_xent_fused,
          ("sigmoid_bce", "fwd"): sigmoid_bce_fwd, ("sigmoid_bce", "bwd"): sigmoid_bce_bwd,
          ("sgd", "update"): sgd_update}
SUPPORTS = {(op, p): maxpool2d_supports for op in ("maxpool2d", "maxpool2d_relu") for p in ("fwd", "bwd")}  # limits


def _register_all() -> None:
    for (op, pass_), body in PRECISION_SENSITIVE.items():
        register(op, pass_, name="torch", device="gpu", math="fp32", available=available_gpu,
                 family="peer")(
            _wrap(body, "gpu", tf32=False))
        register(op, pass_, name="torch_tf32", device="gpu", math="tf32", available=available_gpu,
                 family="peer", group="torch")(
            _wrap(body, "gpu", tf32=True))
    for (op, pass_), body in OTHERS.items():
        register(op, pass_, name="torch", device="gpu", math="fp32", available=available_gpu,
                 family="peer", supports=SUPPORTS.get((op, pass_)))(
            _wrap(body, "gpu", tf32=None))
    for (op, pass_), body in {**PRECISION_SENSITIVE, **OTHERS}.items():
        register(op, pass_, name="torch_cpu", device="cpu", math="fp32", available=available_cpu,
                 family="peer", supports=SUPPORTS.get((op, pass_)))(
            _wrap(body, "cpu", tf32=None))


_register_all()
