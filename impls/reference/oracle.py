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
def _window(a, s: Conv2dShape, r: int, c: int):
    """The (N, ·, P, Q) view of padded `a` that filter tap (r, c) meets: a_pad[:, :, p·u + r, q·u + c]."""
    u = s.stride
    return a[:, :, r:r + u * (s.P - 1) + 1:u, c:c + u * (s.Q - 1) + 1:u]


def _pad(a, p: int):
    xp = array_module(a)
    return xp.pad(a, ((0, 0), (0, 0), (p, p), (p, p))) if p else a


def _mix_channels(a, m):
    """out[n, k, p, q] = Σ_c a[n, c, p, q]·m[k, c]  (einsum "ncpq,kc->nkpq", through BLAS via tensordot)."""
    xp = array_module(a)
    return xp.moveaxis(xp.tensordot(a, m, axes=([1], [1])), 3, 1)


@reg("conv2d", "fprop")
def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
    """y[n,k,p,q] = b[k] + Σ_{c,r,s} x_pad[n,c,p·u+r,q·u+s]·w[k,c,r,s], summed one filter tap at a time."""
    xp = array_module(x)
    xpad = _pad(x, s.pad)
    acc = xp.zeros(y.shape, dtype=x.dtype)
    for r in range(s.R):
        for c in range(s.S):
            acc += _mix_channels(_window(xpad, s, r, c), w[:, :, r, c])
    y[...] = acc + b[None, :, None, None]


@reg("conv2d", "dgrad")
def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
    """dx_pad[n,c,p·u+r,q·u+s] += Σ_k dy[n,k,p,q]·w[k,c,r,s]; then the padding is cut off."""
    xp = array_module(dy)
    dxpad = xp.zeros((s.N, s.C, s.H + 2 * s.pad, s.W + 2 * s.pad), dtype=dy.dtype)
    for r in range(s.R):
        for c in range(s.S):
            _window(dxpad, s, r, c)[...] += _mix_channels(dy, w[:, :, r, c].T)
    dx[...] = dxpad[:, :, s.pad:s.pad + s.H, s.pad:s.pad + s.W]


@reg("conv2d", "wgrad")
def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
    """dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x_pad[n,c,p·u+r,q·u+s]; db[k] = Σ_{n,p,q} dy[n,k,p,q]."""
    xp = array_module(x)
    xpad = _pad(x, s.pad)
    for r in range(s.R):
        for c in range(s.S):
            dw[:, :, r, c] = xp.tensordot(dy, _window(xpad, s, r, c), axes=([0, 2, 3], [0, 2, 3]))
    db[...] = dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------- maxpool2d
def _pool_windows(s: Pool2dShape, x):
    """The R·S strided views x[:, :, p·u + r, q·u + c], in row-major (r, c) order."""
    u = s.stride
    return [x[:, :, r:r + u * (s.P - 1) + 1:u, c:c + u * (s.Q - 1) + 1:u] for r in range(s.R) for c in range(s.S)]


@reg("maxpool2d", "fwd")
def maxpool2d_fwd(s: Pool2dShape, x, *, y):
    """y = max over each R×S window."""
    xp = array_module(x)
    y[...] = xp.stack(_pool_windows(s, x)).max(axis=0)


@reg("maxpool2d", "bwd")
def maxpool2d_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """dx += dy at the first (row-major) maximum of each window; overlapping windows add up."""
    xp = array_module(x)
    first_max = xp.stack(_pool_windows(s, x)).argmax(axis=0)  # argmax returns the first of equal maxima
    dx[...] = 0
    for i, view in enumerate(_pool_windows(s, dx)):
        view += xp.where(first_max == i, dy, 0)


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
