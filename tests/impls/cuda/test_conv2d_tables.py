"""cupy_opt's dgrad tables, checked on the CPU: a NumPy emulation of the Dgrad GEMM of conv2d_implicit_gemm.cu,
driven by the very tables the host builds (impls.cuda.conv2d.dgrad_tables), must equal a brute-force scatter of
the dgrad formula for per-axis stride and padding, dilation and groups. A wrong tap set, phase origin or offset
fails here, in CI, before any GPU run."""

from __future__ import annotations

import numpy as np
import pytest

from harness.ops.conv2d import Conv2dShape
from impls.cuda.conv2d import dgrad_tables

SHAPES = [
    Conv2dShape(2, 3, 7, 9, 5, 3, 3, 2, 1),
    Conv2dShape(1, 1, 12, 31, 2, 5, 7, stride_h=2, stride_w=3, pad_h=2, pad_w=3),
    Conv2dShape(2, 4, 11, 10, 6, 3, 3, stride=2, pad=2, dilation=2, groups=2),
    Conv2dShape(1, 6, 9, 13, 6, 3, 2, stride_h=3, stride_w=1, pad_h=1, pad_w=0, dilation_h=2, dilation_w=3, groups=3),
    Conv2dShape(2, 4, 8, 8, 4, 1, 1, stride=2, pad=0),  # phases that no tap reaches: dx is 0 there
    Conv2dShape(1, 2, 10, 10, 4, 3, 3, stride=4, pad=1, dilation=2),
]


def emulate_dgrad(s: Conv2dShape, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What the Dgrad struct computes: per group g and phase z, rows (n, hq, wq), columns c < C/G, reduction over
    the table entries {k·P·Q, t.y, t.z, weight offset} of phase z."""
    tab, info = dgrad_tables(s)
    dx = np.full((s.N, s.C, s.H, s.W), np.nan)
    for g in range(s.groups):
        dyg = dy[:, g * s.Kg:(g + 1) * s.Kg].reshape(s.N, -1)
        wg = w[g * s.Kg:(g + 1) * s.Kg].ravel()
        for z, (hq0, hph, wq0, wph, offset, red, rows, _) in enumerate(info):
            a, b = divmod(z, s.stride_w)
            assert rows == s.N * hph * wph
            if rows == 0:
                continue
            hq = hq0 + np.arange(hph)[:, None]
            wq = wq0 + np.arange(wph)[None, :]
            acc = np.zeros((s.N, s.Cg, hph, wph))
            for tx, ty, tz, tw in tab[offset:offset + red]:
                p, q = hq - ty, wq - tz
                ok = (p >= 0) & (p < s.P) & (q >= 0) & (q < s.Q)
                a_el = np.where(ok, dyg[:, tx + np.clip(p, 0, s.P - 1) * s.Q + np.clip(q, 0, s.Q - 1)], 0)
                b_el = wg[tw + np.arange(s.Cg) * s.R * s.S]
                acc += a_el[:, None] * b_el[None, :, None, None]
            h = s.stride_h * hq + a - s.pad_h
            x = s.stride_w * wq + b - s.pad_w
            assert h.min() >= 0 and h.max() < s.H and x.min() >= 0 and x.max() < s.W
            dx[:, g * s.Cg:(g + 1) * s.Cg, h, x] = acc
    return dx


def scatter_dgrad(s: Conv2dShape, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx[n, g·Cg + c, p·uh + r·dh − ph, q·uw + s·dw − pw] += dy[n,k,p,q]·w[k,c,r,s], term by term."""
    dx = np.zeros((s.N, s.C, s.H, s.W))
    for k in range(s.K):
        g = k // s.Kg
        for c in range(s.Cg):
            for r in range(s.R):
                for t in range(s.S):
                    for p in range(s.P):
                        h = p * s.stride_h + r * s.dilation_h - s.pad_h
                        for q in range(s.Q):
                            x = q * s.stride_w + t * s.dilation_w - s.pad_w
                            if 0 <= h < s.H and 0 <= x < s.W:
                                dx[:, g * s.Cg + c, h, x] += dy[:, k, p, q] * w[k, c, r, t]
    return dx


@pytest.mark.parametrize("s", SHAPES, ids=str)
def test_dgrad_tables_reproduce_the_oracle(s: Conv2dShape):
    rng = np.random.default_rng(0)
    dy = rng.uniform(-1, 1, (s.N, s.K, s.P, s.Q))
    w = rng.uniform(-1, 1, (s.K, s.Cg, s.R, s.S))
    want = scatter_dgrad(s, dy, w)
    got = emulate_dgrad(s, dy, w)
    assert not np.isnan(got).any(), "some dx pixels belong to no phase"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
