"""numpy_ref: the float64 oracle for every op and pass — direct, readable, and array-module generic.

Every function takes NumPy or CuPy arrays (`xp = array_module(x)`), so the same float64 code checks small cases
on the CPU and large ones on the GPU (measure.check runs it on whichever side the data lives). Correctness of the
backward passes is proven by finite differences of the forward passes in tests/impls/reference/test_oracle.py.

Formulas are the thesis's (seed 003): dense §2.5.2/§3.1.2, activations §2.5.3, losses §2.5.5/§3.1.1,
convolution §2.6.1, pooling §2.6.2, SGD §2.5.6. Each writes into the preallocated outputs.
"""

from __future__ import annotations

from harness.device import array_module
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.ops.maxpool2d import Pool2dShape
from harness.registry import register


def reg(op: str, pass_: str):
    return register(op, pass_, name="numpy_ref", device="cpu", math="fp64", family="oracle")


# ---------------------------------------------------------------- gemm: the dense layer
@reg("gemm", "fwd")
def gemm_fwd(s: GemmShape, x, w, b=None, *, y):
    """Y = X·W (+ b) (then ReLU)."""
    xp = array_module(x)
    z = x @ w
    if s.bias:
        z = z + b
    y[...] = xp.maximum(z, 0) if s.relu else z


@reg("gemm", "bwd")
def gemm_bwd(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ_rows dY."""
    dx[...] = dy @ w.T
    dw[...] = x.T @ dy
    db[...] = dy.sum(axis=0)


# ---------------------------------------------------------------- conv2d
# Shared by conv2d and maxpool2d, whose shapes both have P, Q and per-axis stride and padding.
def _strided(a, s, h0: int, w0: int):
    """The (N, ·, P, Q) view a[:, :, h0 + p·u_h, w0 + q·u_w]: what one filter or window tap meets."""
    uh, uw = s.stride_h, s.stride_w
    return a[:, :, h0:h0 + uh * (s.P - 1) + 1:uh, w0:w0 + uw * (s.Q - 1) + 1:uw]


def _pad(a, s, value=0):
    """`a` with pad_h rows and pad_w columns of `value` on each side (no copy without padding)."""
    if not (s.pad_h or s.pad_w):
        return a
    return array_module(a).pad(a, ((0, 0), (0, 0), (s.pad_h, s.pad_h), (s.pad_w, s.pad_w)), constant_values=value)


def _unpad(a, s):
    """The image part of padded `a` (cuts pad_h rows and pad_w columns off each side)."""
    return a[:, :, s.pad_h:s.pad_h + s.H, s.pad_w:s.pad_w + s.W]


def _window(a, s: Conv2dShape, r: int, c: int):
    """The view of padded `a` that filter tap (r, c) meets: a_pad[:, :, p·u_h + r·d_h, q·u_w + c·d_w]."""
    return _strided(a, s, r * s.dilation_h, c * s.dilation_w)


def _mix_channels(a, m):
    """out[n, g·O + o, p, q] = Σ_i a[n, g·I + i, p, q]·m[g, o, i] for each of the G = len(m) groups (a batched
    matrix product over the groups, through BLAS; one group is the plain channel mix of an ungrouped layer)."""
    n, _, p, q = a.shape
    groups = a.reshape(n, m.shape[0], m.shape[2], p * q)  # (N, G, I, P·Q)
    return (m @ groups).reshape(n, -1, p, q)


def _tap(w, s: Conv2dShape, r: int, c: int):
    """Filter tap (r, c) of every group: (G, K/G, C/G), m[g, k, c'] = w[g·K/G + k, c', r, c]."""
    return w[:, :, r, c].reshape(s.groups, s.Kg, s.Cg)


@reg("conv2d", "fprop")
def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
    """y[n,k,p,q] = b[k] + Σ_{c,r,s} x_pad[n,g·Cg+c,p·u_h+r·d_h,q·u_w+s·d_w]·w[k,c,r,s] (g = k's group), summed one
    filter tap at a time."""
    xp = array_module(x)
    xpad = _pad(x, s)
    acc = xp.zeros(y.shape, dtype=x.dtype)
    for r in range(s.R):
        for c in range(s.S):
            acc += _mix_channels(_window(xpad, s, r, c), _tap(w, s, r, c))
    y[...] = acc + b[None, :, None, None]


@reg("conv2d", "dgrad")
def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
    """dx_pad[n,g·Cg+c,p·u_h+r·d_h,q·u_w+s·d_w] += Σ_{k in group g} dy[n,k,p,q]·w[k,c,r,s]; then the padding is cut
    off."""
    xp = array_module(dy)
    dxpad = xp.zeros((s.N, s.C, s.H + 2 * s.pad_h, s.W + 2 * s.pad_w), dtype=dy.dtype)
    for r in range(s.R):
        for c in range(s.S):
            _window(dxpad, s, r, c)[...] += _mix_channels(dy, _tap(w, s, r, c).transpose(0, 2, 1))
    dx[...] = _unpad(dxpad, s)


@reg("conv2d", "wgrad")
def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
    """dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x_pad[n,g·Cg+c,p·u_h+r·d_h,q·u_w+s·d_w]; db[k] = Σ_{n,p,q} dy[n,k,p,q].
    Per tap, one batched product over the groups: (K/G × N·P·Q) · (N·P·Q × C/G)."""
    xpad = _pad(x, s)
    pq = s.P * s.Q
    dyg = dy.reshape(s.N, s.groups, s.Kg, pq).transpose(1, 2, 0, 3).reshape(s.groups, s.Kg, s.N * pq)
    for r in range(s.R):
        for c in range(s.S):
            win = _window(xpad, s, r, c).reshape(s.N, s.groups, s.Cg, pq).transpose(1, 0, 3, 2)
            dw[:, :, r, c] = (dyg @ win.reshape(s.groups, s.N * pq, s.Cg)).reshape(s.K, s.Cg)
    db[...] = dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------- maxpool2d
def _pool_windows(s: Pool2dShape, a):
    """The R·S strided views a_pad[:, :, p·u_h + r, q·u_w + c] of padded `a`, in row-major (r, c) order."""
    return [_strided(a, s, r, c) for r in range(s.R) for c in range(s.S)]


@reg("maxpool2d", "fwd")
def maxpool2d_fwd(s: Pool2dShape, x, *, y):
    """y = max over each R×S window of x padded with −inf."""
    xp = array_module(x)
    y[...] = xp.stack(_pool_windows(s, _pad(x, s, -xp.inf))).max(axis=0)


@reg("maxpool2d", "bwd")
def maxpool2d_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """dx += dy at the first (row-major) real element of each window equal to its maximum (padding never counts,
    even against an all −inf window); overlapping windows add up; the padding of dx is cut off."""
    xp = array_module(x)
    windows = xp.stack(_pool_windows(s, _pad(x, s, -xp.inf)))
    if s.pad_h or s.pad_w:
        real = xp.stack(_pool_windows(s, _pad(xp.ones(x.shape, dtype=bool), s, False)))
        first_max = ((windows == windows.max(axis=0)) & real).argmax(axis=0)  # argmax: the first True
    else:
        first_max = windows.argmax(axis=0)  # argmax returns the first of equal maxima
    dxp = xp.zeros((s.N, s.C, s.H + 2 * s.pad_h, s.W + 2 * s.pad_w), dtype=dx.dtype)
    for i, view in enumerate(_pool_windows(s, dxp)):
        view += xp.where(first_max == i, dy, 0)
    dx[...] = _unpad(dxp, s)


@reg("conv2d_bias_relu", "fprop")
def conv2d_bias_relu_fprop(s: Conv2dShape, x, w, b, *, y):
    """y = ReLU(conv2d fprop(x, w, b)): the composition of the two ops, as written."""
    conv2d_fprop(s, x, w, b, y=y)
    relu_fwd(s, y.copy(), y=y)


@reg("maxpool2d_relu", "fwd")
def maxpool2d_relu_fwd(s: Pool2dShape, x, *, y):
    """y = maxpool(ReLU(x)): the composition of the two ops, as written (ReLU first)."""
    maxpool2d_fwd(s, array_module(x).maximum(x, 0), y=y)


@reg("maxpool2d_relu", "bwd")
def maxpool2d_relu_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """dx = relu_bwd(ReLU(x), maxpool2d_bwd(ReLU(x), y, dy)): the chain rule through both ops, as written."""
    r = array_module(x).maximum(x, 0)
    maxpool2d_bwd(s, r, y, dy, dx=dx)
    relu_bwd(s, r, dx.copy(), dx=dx)


# ---------------------------------------------------------------- activations
@reg("relu", "fwd")
def relu_fwd(s, x, *, y):
    """y = max(x, 0)."""
    y[...] = array_module(x).maximum(x, 0)


@reg("relu", "bwd")
def relu_bwd(s, y, dy, *, dx):
    """dx = dy·[y > 0]."""
    dx[...] = dy * (y > 0)


@reg("sigmoid", "fwd")
def sigmoid_fwd(s, x, *, y):
    """y = 1 / (1 + e^(−x))."""
    y[...] = 1 / (1 + array_module(x).exp(-x))


@reg("sigmoid", "bwd")
def sigmoid_bwd(s, y, dy, *, dx):
    """dx = dy·y·(1 − y)."""
    dx[...] = dy * y * (1 - y)


# ---------------------------------------------------------------- losses
def _log_softmax(logits):
    xp = array_module(logits)
    z = logits - logits.max(axis=1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))


@reg("softmax_xent", "fwd")
def softmax_xent_fwd(s, logits, labels, *, loss):
    """L = −(1/N) Σ_n log softmax(z_n)[label_n]."""
    xp = array_module(logits)
    loss[...] = -_log_softmax(logits)[xp.arange(s.N), labels].mean()


@reg("softmax_xent", "bwd")
def softmax_xent_bwd(s, logits, labels, *, dlogits):
    """∂L/∂z = (softmax(z) − onehot(label)) / N."""
    xp = array_module(logits)
    g = xp.exp(_log_softmax(logits))
    g[xp.arange(s.N), labels] -= 1
    dlogits[...] = g / s.N


@reg("softmax_xent", "fused")
def softmax_xent_fused(s, logits, labels, *, loss, dlogits):
    """The loss and its gradient: the fwd and bwd passes above, one after the other."""
    softmax_xent_fwd(s, logits, labels, loss=loss)
    softmax_xent_bwd(s, logits, labels, dlogits=dlogits)


@reg("sigmoid_bce", "fwd")
def sigmoid_bce_fwd(s, logits, targets, *, loss):
    """L = (1/N) Σ max(z, 0) − z·t + log(1 + e^(−|z|)), the stable form of −[t log σ(z) + (1−t) log(1−σ(z))]."""
    xp = array_module(logits)
    z = logits
    loss[...] = (xp.maximum(z, 0) - z * targets + xp.log1p(xp.exp(-xp.abs(z)))).mean()


@reg("sigmoid_bce", "bwd")
def sigmoid_bce_bwd(s, logits, targets, *, dlogits):
    """∂L/∂z = (σ(z) − t) / N."""
    dlogits[...] = (1 / (1 + array_module(logits).exp(-logits)) - targets) / s.N


# ---------------------------------------------------------------- sgd
@reg("sgd", "update")
def sgd_update(s, dw, *, w):
    """W ← W − lr·dW, in place."""
    w -= s.lr * dw
