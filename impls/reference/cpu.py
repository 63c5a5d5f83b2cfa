"""numpy_opt: the optimised CPU path, float32 throughout, BLAS for every product.

- conv2d: im2col + one BLAS GEMM per pass (thesis seed 003, §4 "adaptación": convolution as a matrix product).
  The column matrix cols[(n,p,q), (c,r,s)] = x_pad[n, c, p·u + r, q·u + s] is a strided view of the padded input
  (no Python loops over pixels) copied once into a contiguous buffer; then
  fprop  Y   = cols · W_matᵀ            (N·P·Q × K),
  wgrad  dW  = dY_matᵀ · cols           (K × C·R·S),
  dgrad  dcols = dY_mat · W_mat, folded back by col2im: R·S strided adds into the padded dx.
- gemm: one BLAS call per product, bias and ReLU applied in place on the output (no temporaries).
- maxpool2d, activations, losses, sgd: vectorised NumPy with `out=` buffers, one pass per R·S window tap.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.ops.maxpool2d import Pool2dShape
from harness.registry import register


def reg(op: str, pass_: str):
    return register(op, pass_, name="numpy_opt", device="cpu", math="fp32", family="own", fallback=1)


# ---------------------------------------------------------------- gemm
@reg("gemm", "fwd")
def gemm_fwd(s: GemmShape, x, w, b=None, *, y):
    """Y = X·W (BLAS sgemm straight into y), then += b and ReLU in place."""
    np.matmul(x, w, out=y)
    if s.bias:
        y += b
    if s.relu:
        np.maximum(y, 0, out=y)


@reg("gemm", "bwd")
def gemm_bwd(s: GemmShape, x, w, dy, *, dx, dw, db):
    """dX = dY·Wᵀ, dW = Xᵀ·dY (BLAS with transposed views, no copies), db = column sums."""
    np.matmul(dy, w.T, out=dx)
    np.matmul(x.T, dy, out=dw)
    np.sum(dy, axis=0, out=db)


# ---------------------------------------------------------------- conv2d
def _pad(x, p: int):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def im2col(s: Conv2dShape, x) -> np.ndarray:
    """cols[(n,p,q), (c,r,s)] = x_pad[n, c, p·u + r, q·u + s], as one contiguous float32 matrix."""
    xp = np.ascontiguousarray(_pad(x, s.pad))
    sn, sc, sh, sw = xp.strides
    u = s.stride
    view = as_strided(xp, shape=(s.N, s.P, s.Q, s.C, s.R, s.S),
                      strides=(sn, sh * u, sw * u, sc, sh, sw), writeable=False)
    return view.reshape(s.N * s.P * s.Q, s.C * s.R * s.S)


def _dy_matrix(s: Conv2dShape, dy) -> np.ndarray:
    """dy as (N·P·Q) × K, the layout of the GEMM's output rows."""
    return dy.transpose(0, 2, 3, 1).reshape(s.N * s.P * s.Q, s.K)


@reg("conv2d", "fprop")
def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
    """Y = im2col(x) · W_matᵀ + b."""
    out = im2col(s, x) @ w.reshape(s.K, -1).T  # (N·P·Q, K)
    out += b
    y[...] = out.reshape(s.N, s.P, s.Q, s.K).transpose(0, 3, 1, 2)


@reg("conv2d", "wgrad")
def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
    """dW = dY_matᵀ · im2col(x); db = Σ dy over n, p, q."""
    dw[...] = (_dy_matrix(s, dy).T @ im2col(s, x)).reshape(dw.shape)
    np.sum(dy, axis=(0, 2, 3), out=db)


@reg("conv2d", "dgrad")
def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
    """dcols = dY_mat · W_mat, then col2im: each filter tap (r, s) adds its slice into the padded dx."""
    dcols = (_dy_matrix(s, dy) @ w.reshape(s.K, -1)).reshape(s.N, s.P, s.Q, s.C, s.R, s.S)
    dxp = np.zeros((s.N, s.C, s.H + 2 * s.pad, s.W + 2 * s.pad), dtype=np.float32)
    u = s.stride
    for r in range(s.R):
        for c in range(s.S):
            dxp[:, :, r:r + u * (s.P - 1) + 1:u, c:c + u * (s.Q - 1) + 1:u] += dcols[..., r, c].transpose(0, 3, 1, 2)
    dx[...] = dxp[:, :, s.pad:s.pad + s.H, s.pad:s.pad + s.W]


# ---------------------------------------------------------------- maxpool2d
def _taps(s: Pool2dShape, a):
    """The R·S strided views a[:, :, p·u + r, q·u + c] in row-major (r, c) order."""
    u = s.stride
    return [a[:, :, r:r + u * (s.P - 1) + 1:u, c:c + u * (s.Q - 1) + 1:u] for r in range(s.R) for c in range(s.S)]


@reg("maxpool2d", "fwd")
def maxpool2d_fwd(s: Pool2dShape, x, *, y):
    """y = running maximum over the R·S taps, in place (R·S vectorised passes, no stacked copy)."""
    taps = _taps(s, x)
    np.copyto(y, taps[0])
    for t in taps[1:]:
        np.maximum(y, t, out=y)


@reg("maxpool2d", "bwd")
def maxpool2d_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """Route dy to the first tap equal to the window max y; `taken` stops later equal taps (ties) from also
    receiving it. Overlapping windows add up through the strided views."""
    dx.fill(0)
    taken = np.zeros(y.shape, dtype=bool)
    for xt, dxt in zip(_taps(s, x), _taps(s, dx), strict=True):
        hit = (xt == y) & ~taken
        dxt += np.where(hit, dy, 0)
        taken |= hit


# ---------------------------------------------------------------- activations
@reg("relu", "fwd")
def relu_fwd(s, x, *, y):
    """y = max(x, 0) in one pass."""
    np.maximum(x, 0, out=y)


@reg("relu", "bwd")
def relu_bwd(s, y, dy, *, dx):
    """dx = dy where y > 0, else 0."""
    np.multiply(dy, y > 0, out=dx)


@reg("sigmoid", "fwd")
def sigmoid_fwd(s, x, *, y):
    """y = 1 / (1 + e^(−x)), computed in place in y."""
    np.negative(x, out=y)
    np.exp(y, out=y)
    y += 1
    np.reciprocal(y, out=y)


@reg("sigmoid", "bwd")
def sigmoid_bwd(s, y, dy, *, dx):
    """dx = dy·y·(1 − y), in place in dx."""
    np.subtract(1, y, out=dx)
    dx *= y
    dx *= dy


# ---------------------------------------------------------------- losses
def _shifted_exp_sum(logits):
    """z − max(z) per row and log Σ exp(z − max(z)) per row (float32, stable)."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z, np.log(np.exp(z).sum(axis=1, keepdims=True))


@reg("softmax_xent", "fwd")
def softmax_xent_fwd(s, logits, labels, *, loss):
    """L = mean_n (log Σ exp(z_n − m_n) − (z_n[label_n] − m_n))."""
    z, lse = _shifted_exp_sum(logits)
    loss[...] = np.mean(lse[:, 0] - z[np.arange(s.N), labels])


@reg("softmax_xent", "bwd")
def softmax_xent_bwd(s, logits, labels, *, dlogits):
    """(softmax(z) − onehot)/N, computed in place in dlogits."""
    z, lse = _shifted_exp_sum(logits)
    np.subtract(z, lse, out=dlogits)
    np.exp(dlogits, out=dlogits)
    dlogits[np.arange(s.N), labels] -= 1
    dlogits /= s.N


@reg("sigmoid_bce", "fwd")
def sigmoid_bce_fwd(s, logits, targets, *, loss):
    """mean(max(z, 0) − z·t + log1p(e^(−|z|)))."""
    loss[...] = np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))


@reg("sigmoid_bce", "bwd")
def sigmoid_bce_bwd(s, logits, targets, *, dlogits):
    """(σ(z) − t)/N, in place in dlogits."""
    sigmoid_fwd(s, logits, y=dlogits)
    dlogits -= targets
    dlogits /= s.N


# ---------------------------------------------------------------- sgd
@reg("sgd", "update")
def sgd_update(s, dw, *, w):
    """W ← W − lr·dW, in place (one fused multiply-subtract pass would need a compiled kernel)."""
    w -= np.float32(s.lr) * dw
