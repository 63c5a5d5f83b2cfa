"""numpy_opt: the optimised CPU path, float32 throughout, BLAS for every product.

- conv2d: im2col + one BLAS GEMM per pass and group (thesis seed 003, §4 "adaptación": convolution as a matrix
  product). Group g's column matrix cols_g[(c,r,s), (n,p,q)] = x_pad[n, g·Cg + c, p·u_h + r·d_h, q·u_w + s·d_w] is
  a strided view of the padded input (no Python loops over pixels) copied once into a contiguous buffer; then,
  with np.matmul over the group axis (W_g: K/G × C/G·R·S, dY_g: K/G × N·P·Q),
  fprop  Y_g   = W_g · cols_g           (K/G × N·P·Q),
  wgrad  dW_g  = dY_g · cols_gᵀ         (K/G × C/G·R·S),
  dgrad  dcols_g = W_gᵀ · dY_g, folded back by col2im: R·S strided adds into the padded dx.
- gemm: one BLAS call per product, bias and ReLU applied in place on the output (no temporaries).
- maxpool2d, activations, losses, sgd: vectorised NumPy with `out=` buffers, one pass per R·S window tap (maxpool2d:
  each tap clipped to the image, so padding, −inf, is never read or written).
- conv2d_bias_relu: conv2d fprop, then ReLU in place on its output.
- maxpool2d_relu: maxpool2d's passes with the ReLU moved to the pooled side (a max of the window maxima, a mask of
  dy).
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
def _pad(x, s: Conv2dShape):
    return np.pad(x, ((0, 0), (0, 0), (s.pad_h, s.pad_h), (s.pad_w, s.pad_w))) if s.pad_h or s.pad_w else x


def im2col(s: Conv2dShape, x) -> np.ndarray:
    """cols[g, (c,r,s), (n,p,q)] = x_pad[n, g·Cg + c, p·u_h + r·d_h, q·u_w + s·d_w]: one contiguous float32 column
    matrix per group (G × Cg·R·S × N·P·Q), copied once from a strided view of the padded input. (n, p, q) runs
    fastest so that the copy's inner loop is a long row, not the few taps of one filter row."""
    xp = np.ascontiguousarray(_pad(x, s))
    sn, sc, sh, sw = xp.strides
    view = as_strided(xp, shape=(s.groups, s.Cg, s.R, s.S, s.N, s.P, s.Q),
                      strides=(sc * s.Cg, sc, sh * s.dilation_h, sw * s.dilation_w, sn, sh * s.stride_h,
                               sw * s.stride_w), writeable=False)
    return view.reshape(s.groups, s.Cg * s.R * s.S, s.N * s.P * s.Q)


def _w_matrices(s: Conv2dShape, w) -> np.ndarray:
    """w as one Kg × (Cg·R·S) matrix per group (a view)."""
    return w.reshape(s.groups, s.Kg, s.Cg * s.R * s.S)


def _dy_matrices(s: Conv2dShape, dy) -> np.ndarray:
    """dy as one Kg × (N·P·Q) matrix per group, the layout of fprop's GEMM output."""
    return dy.reshape(s.N, s.groups, s.Kg, s.P * s.Q).transpose(1, 2, 0, 3).reshape(s.groups, s.Kg, -1)


@reg("conv2d", "fprop")
def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
    """Y_g = W_g · cols_g for every group g (np.matmul over the group axis: one BLAS GEMM each), + b."""
    out = np.matmul(_w_matrices(s, w), im2col(s, x))  # (G, Kg, N·P·Q) = (K, N, P, Q)
    y[...] = out.reshape(s.K, s.N, s.P, s.Q).transpose(1, 0, 2, 3)
    y += b[None, :, None, None]


@reg("conv2d_bias_relu", "fprop")
def conv2d_bias_relu_fprop(s: Conv2dShape, x, w, b, *, y):
    """conv2d fprop, then ReLU in place on y (the same buffer, no temporary)."""
    conv2d_fprop(s, x, w, b, y=y)
    np.maximum(y, 0, out=y)


@reg("conv2d", "wgrad")
def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
    """dW_g = dY_g · cols_gᵀ for every group g (a transposed view, no copy); db = Σ dy over n, p, q."""
    dw[...] = np.matmul(_dy_matrices(s, dy), im2col(s, x).transpose(0, 2, 1)).reshape(dw.shape)
    np.sum(dy, axis=(0, 2, 3), out=db)


@reg("conv2d", "dgrad")
def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
    """dcols_g = W_gᵀ · dY_g for every group g, then col2im: each filter tap (r, s) adds its slice into the padded dx
    (rows r·d_h + p·u_h, columns s·d_w + q·u_w)."""
    dcols = np.matmul(_w_matrices(s, w).transpose(0, 2, 1), _dy_matrices(s, dy))  # (G, Cg·R·S, N·P·Q)
    dcols = dcols.reshape(s.C, s.R, s.S, s.N, s.P, s.Q)
    dxp = np.zeros((s.N, s.C, s.H + 2 * s.pad_h, s.W + 2 * s.pad_w), dtype=np.float32)
    uh, uw = s.stride_h, s.stride_w
    for r in range(s.R):
        for c in range(s.S):
            h0, w0 = r * s.dilation_h, c * s.dilation_w
            tap = dcols[:, r, c].transpose(1, 0, 2, 3)  # (N, C, P, Q)
            dxp[..., h0:h0 + uh * (s.P - 1) + 1:uh, w0:w0 + uw * (s.Q - 1) + 1:uw] += tap
    dx[...] = dxp[:, :, s.pad_h:s.pad_h + s.H, s.pad_w:s.pad_w + s.W]


# ---------------------------------------------------------------- maxpool2d
def _axis_taps(n_out: int, u: int, pad: int, size: int, k: int) -> list:
    """For each window offset r < k along one axis: (the outputs o whose tap o·u + r − pad lies in [0, size), the
    input positions those taps read) as two slices, or None where no output's tap r does (it is all padding)."""
    taps = []
    for r in range(k):
        lo, hi = max(0, -((r - pad) // u)), min(n_out - 1, (size - 1 + pad - r) // u)  # ceil((pad − r)/u) ≤ o ≤ hi
        taps.append((slice(lo, hi + 1), slice(lo * u + r - pad, hi * u + r - pad + 1, u)) if lo <= hi else None)
    return taps


def _taps(s: Pool2dShape) -> list:
    """The R·S window taps in row-major (r, c) order, clipped to the image (padding is −inf: never the max, so a
    tap's padded part is simply skipped): (output index, input index) pairs of basic slices, hence views."""
    rows = _axis_taps(s.P, s.stride_h, s.pad_h, s.H, s.R)
    cols = _axis_taps(s.Q, s.stride_w, s.pad_w, s.W, s.S)
    return [((Ellipsis, row[0], col[0]), (Ellipsis, row[1], col[1])) for row in rows if row for col in cols if col]


@reg("maxpool2d", "fwd")
def maxpool2d_fwd(s: Pool2dShape, x, *, y):
    """y = running maximum over the R·S taps, each clipped to the image, in place (R·S vectorised passes, no
    padded or stacked copy)."""
    taps = _taps(s)
    yo, xi = taps[0]
    if s.pad_h or s.pad_w:
        y.fill(-np.inf)
        np.maximum(y[yo], x[xi], out=y[yo])
    else:  # tap (0, 0) covers every window
        np.copyto(y, x[xi])
    for yo, xi in taps[1:]:
        np.maximum(y[yo], x[xi], out=y[yo])


@reg("maxpool2d", "bwd")
def maxpool2d_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """Route dy to the first tap (row-major, real elements only) equal to the window max y; `taken` stops later
    equal taps (ties) from also receiving it. Overlapping windows add up through the strided views; the padding
    is never read or written."""
    dx.fill(0)
    taken = np.zeros(y.shape, dtype=bool)
    for yo, xi in _taps(s):
        hit = (x[xi] == y[yo]) & ~taken[yo]
        dx[xi] += np.where(hit, dy[yo], 0)
        taken[yo] |= hit


@reg("maxpool2d_relu", "fwd")
def maxpool2d_relu_fwd(s: Pool2dShape, x, *, y):
    """Pool first, then ReLU on the window maxima in place (maxpool(ReLU(x)) = ReLU(maxpool(x))): no full-size copy."""
    maxpool2d_fwd(s, x, y=y)
    np.maximum(y, 0, out=y)


@reg("maxpool2d_relu", "bwd")
def maxpool2d_relu_bwd(s: Pool2dShape, x, y, dy, *, dx):
    """maxpool2d's backward pass of dy·[y > 0] (the ReLU's mask on the pooled side, a quarter of the elements)."""
    maxpool2d_bwd(s, x, y, dy * (y > 0), dx=dx)


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


@reg("softmax_xent", "fused")
def softmax_xent_fused(s, logits, labels, *, loss, dlogits):
    """The loss and (softmax(z) − onehot)/N from one shifted exponential sum: log p in dlogits, the loss gathered
    from it, then exp in place."""
    z, lse = _shifted_exp_sum(logits)
    np.subtract(z, lse, out=dlogits)
    rows = np.arange(s.N)
    loss[...] = -np.mean(dlogits[rows, labels])
    np.exp(dlogits, out=dlogits)
    dlogits[rows, labels] -= 1
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
