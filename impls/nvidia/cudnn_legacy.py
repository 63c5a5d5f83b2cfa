"""cudnn (fp32): max pooling, ReLU, sigmoid and softmax cross-entropy through cuDNN's legacy descriptor API.

These have no node in the cuDNN Frontend graph API, so they go through impls/nvidia/cudnn_ctypes.py (ctypes). One cuDNN
handle per device, its stream set to CuPy's current stream before every call; descriptors are cached per shape
(they are host objects, cheap but not free to build).

- maxpool2d fwd/bwd: cudnnPoolingForward/Backward, CUDNN_POOLING_MAX, window, padding and stride per axis
  (cudnnSetPooling2dDescriptor); the padding is left out of the windows, as the spec's −inf. The backward pass
  finds each window's maximum again from x and y, as the op's bwd pass expects.
- maxpool2d_relu fwd/bwd: cuDNN has no fused pooling + activation, so its entry is the cheapest composition of its
  calls: fwd pools then applies ReLU in place on the pooled y (cudnnActivationForward; ReLU commutes with max);
  bwd masks dy by y > 0 (cudnnActivationBackward on the pooled side, into a scratch buffer) and pools it back.
- relu, sigmoid fwd/bwd: cudnnActivationForward/Backward. The backward call also takes the forward input x, which
  these passes do not have (they read y): for ReLU y itself is passed as x (relu(y) = y and y > 0 exactly where
  x > 0); sigmoid's gradient is computed from y alone (dy·y·(1 − y)), so y is passed there too and the checker
  proves the result.
- softmax_xent: cuDNN's CUDNN_SOFTMAX_LOG forward gives log p. fwd: a one-block kernel (cudnn_xent.cu) gathers
  log p[n, label_n] and writes −mean. bwd: a kernel writes the seed −onehot(label)/N, the gradient of L with
  respect to log p, and cuDNN's log-softmax backward turns it into (p − onehot)/N — the chain rule, exactly the
  fused gradient of the thesis. Both use a scratch N×K buffer from CuPy's pool (bwd: two).
- sigmoid_bce and sgd have no cuDNN equivalent (cuDNN has no loss and no optimizer call). They are listed as
  `cudnn` entries that are never available, so `list`, every run table and the report say so instead of
  leaving a silent gap; nothing stands in for cuDNN there.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.ops.maxpool2d import Pool2dShape
from harness.registry import register
from impls.cuda import common as _cuda
from impls.nvidia import cudnn_ctypes as cl

XENT_THREADS = 256  # must match XENT_THREADS in cudnn_xent.cu
_handles: dict[int, list] = {}  # device id -> [cudnnHandle_t, stream it was last set to]


def reg(op: str, pass_: str):
    return register(op, pass_, name="cudnn", device="gpu", math="fp32", available=cl.unavailable_reason,
                    family="vendor")


def _handle() -> int:
    """This device's cuDNN handle, bound to CuPy's current stream."""
    import cupy

    lib = cl.library()
    dev = cupy.cuda.Device().id
    entry = _handles.get(dev)
    if entry is None:
        entry = _handles[dev] = [lib.create_handle(), None]
    stream = cupy.cuda.get_current_stream().ptr
    if entry[1] != stream:
        lib.set_stream(entry[0], stream)
        entry[1] = stream
    return entry[0]


@functools.cache
def _tensor(n: int, c: int, h: int, w: int) -> int:
    return cl.library().tensor_4d(n, c, h, w)


@functools.cache
def _pool(r: int, s: int, pad_h: int, pad_w: int, stride_h: int, stride_w: int) -> int:
    return cl.library().max_pooling_2d(r, s, pad_h, pad_w, stride_h, stride_w)


def _pool_desc(s: Pool2dShape) -> int:
    """The pooling descriptor of `s`: window R×S, padding pad_h×pad_w, stride stride_h×stride_w."""
    return _pool(s.R, s.S, s.pad_h, s.pad_w, s.stride_h, s.stride_w)


@functools.cache
def _activation(mode: int) -> int:
    return cl.library().activation(mode)


def _eltwise_desc(s) -> int:
    return _tensor(s.N, s.C, s.H, s.W)


# ---------------------------------------------------------------- maxpool2d
@reg("maxpool2d", "fwd")
def maxpool2d_fwd(s: Pool2dShape, x, *, y):
    """cudnnPoolingForward, CUDNN_POOLING_MAX (padding excluded from the windows)."""
    cl.library().pooling_forward(_handle(), _pool_desc(s), _tensor(s.N, s.C, s.H, s.W), x.data.ptr,
                                 _tensor(s.N, s.C, s.P, s.Q), y.data.ptr)


@reg("maxpool2d", "bwd")
def maxpool2d_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """cudnnPoolingBackward, CUDNN_POOLING_MAX (dy to each window's maximum, overlaps summed)."""
    cl.library().pooling_backward(_handle(), _pool_desc(s), _tensor(s.N, s.C, s.P, s.Q), y.data.ptr,
                                  dy.data.ptr, _tensor(s.N, s.C, s.H, s.W), x.data.ptr, dx.data.ptr)


@reg("maxpool2d_relu", "fwd")
def maxpool2d_relu_fwd(s: Pool2dShape, x, *, y):
    """cudnnPoolingForward, then cudnnActivationForward (ReLU) in place on y: two calls, cuDNN has no fused one."""
    maxpool2d_fwd(s, x, y=y)
    pooled = _tensor(s.N, s.C, s.P, s.Q)
    cl.library().activation_forward(_handle(), _activation(cl.CUDNN_ACTIVATION_RELU), pooled, y.data.ptr, y.data.ptr)


@reg("maxpool2d_relu", "bwd")
def maxpool2d_relu_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """cudnnActivationBackward (ReLU: dy·[y > 0], pooled side, scratch buffer), then cudnnPoolingBackward."""
    import cupy

    masked = cupy.empty_like(dy)
    pooled = _tensor(s.N, s.C, s.P, s.Q)
    cl.library().activation_backward(_handle(), _activation(cl.CUDNN_ACTIVATION_RELU), pooled, y.data.ptr,
                                     dy.data.ptr, y.data.ptr, masked.data.ptr)
    maxpool2d_bwd(s, x, y, masked, dx=dx)


# ---------------------------------------------------------------- activations
def _act_fwd(mode: int, doc: str):
    def fwd(s, x, *, y):
        cl.library().activation_forward(_handle(), _activation(mode), _eltwise_desc(s), x.data.ptr, y.data.ptr)
    fwd.__doc__ = doc
    return fwd


def _act_bwd(mode: int, doc: str):
    def bwd(s, y, dy, *, dx):
        # y stands in for x: see the module docstring.
        cl.library().activation_backward(_handle(), _activation(mode), _eltwise_desc(s), y.data.ptr, dy.data.ptr,
                                         y.data.ptr, dx.data.ptr)
    bwd.__doc__ = doc
    return bwd


relu_fwd = reg("relu", "fwd")(_act_fwd(cl.CUDNN_ACTIVATION_RELU, "cudnnActivationForward, CUDNN_ACTIVATION_RELU."))
relu_bwd = reg("relu", "bwd")(_act_bwd(cl.CUDNN_ACTIVATION_RELU,
                                       "cudnnActivationBackward, CUDNN_ACTIVATION_RELU (y passed as x)."))
sigmoid_fwd = reg("sigmoid", "fwd")(_act_fwd(cl.CUDNN_ACTIVATION_SIGMOID,
                                             "cudnnActivationForward, CUDNN_ACTIVATION_SIGMOID."))
sigmoid_bwd = reg("sigmoid", "bwd")(_act_bwd(cl.CUDNN_ACTIVATION_SIGMOID,
                                             "cudnnActivationBackward, CUDNN_ACTIVATION_SIGMOID (from y)."))


# ---------------------------------------------------------------- softmax cross-entropy
def _log_softmax(s, logits):
    """log p = cudnnSoftmaxForward(CUDNN_SOFTMAX_LOG) of the N×K logits, into a scratch buffer."""
    import cupy

    logp = cupy.empty_like(logits)
    cl.library().softmax_forward(_handle(), cl.CUDNN_SOFTMAX_LOG, _tensor(s.N, s.K, 1, 1), logits.data.ptr,
                                 logp.data.ptr)
    return logp


@reg("softmax_xent", "fwd")
def softmax_xent_fwd(s, logits, labels, *, loss):
    """cuDNN log-softmax + a one-block label gather/mean kernel (cudnn_xent.cu)."""
    logp = _log_softmax(s, logits)
    _cuda.kernel("cudnn_xent.cu", "xent_nll_mean")((1,), (XENT_THREADS,),
                                                   (logp, labels, np.int32(s.N), np.int32(s.K), loss))


@reg("softmax_xent", "bwd")
def softmax_xent_bwd(s, logits, labels, *, dlogits):
    """cuDNN log-softmax forward, a −onehot/N seed kernel, cuDNN log-softmax backward: (p − onehot)/N."""
    import cupy

    logp = _log_softmax(s, logits)
    seed = cupy.empty_like(logits)
    threads = 256
    _cuda.kernel("cudnn_xent.cu", "xent_onehot_seed")((_cuda.blocks(s.N * s.K, threads),), (threads,),
                                                      (labels, np.int32(s.N), np.int32(s.K), seed))
    cl.library().softmax_backward(_handle(), cl.CUDNN_SOFTMAX_LOG, _tensor(s.N, s.K, 1, 1), logp.data.ptr,
                                  seed.data.ptr, dlogits.data.ptr)


def _no_equivalent(why: str):
    def available() -> str:
        return f"no cuDNN equivalent ({why})"
    return available


def _not_in_cudnn(s, **tensors):
    """Never runs: listed so that tables say cuDNN has no such routine (its availability check says so)."""
    raise NotImplementedError("no cuDNN equivalent")


for _op, _passes, _why in (("sigmoid_bce", ("fwd", "bwd"), "cuDNN has no loss functions"),
                           ("sgd", ("update",), "cuDNN has no optimizer updates")):
    for _pass in _passes:
        register(_op, _pass, name="cudnn", device="gpu", math="fp32", family="vendor",
                 available=_no_equivalent(_why))(_not_in_cudnn)
