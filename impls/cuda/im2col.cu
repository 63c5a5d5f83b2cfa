// im2col.cu: the lowering kernels of the im2col + cuBLAS convolution (Caffe's scheme).
//
// Formula (seed 003, §2.6.1), per-axis stride (uh, uw), padding (ph, pw) and dilation (dh, dw): with
// col[(c,r,s), (n,p,q)] = x[n, c, p·uh+r·dh−ph, q·uw+s·dw−pw] (0 in the padding), fprop is y_n = W·col_n (W as
// K × C·R·S), wgrad dw = Σ_n dy_n·col_nᵀ, and dgrad computes col_n = Wᵀ·dy_n and folds it back with col2im:
// dx[n,c,h,w] = Σ of the col entries whose tap (r, s) of output (p, q) lands on (h, w).
// Groups: c counts all C channels, so the rows (c, r, s) of group g are the contiguous block g·Cg·R·S ..
// (g+1)·Cg·R·S − 1 of col, and the caller's GEMMs run per group on those blocks (y_n,g = W_g·col_n,g, W_g as
// K/G × Cg·R·S); these kernels never see the groups (G is in CONV_GEOMETRY for the common argument list only).
//
// Strategy: one thread per element, 1-D grid-stride loop with 64-bit indices.
// - im2col writes col element (n, crs, pq) at n·ld_n + crs·ld_crs + pq; the strides select the layout:
//   [N][C·R·S][P·Q] (batched GEMM per image, fprop and dgrad) or [C·R·S][N][P·Q] (one GEMM over N·P·Q, wgrad).
//   Consecutive threads take consecutive q, so the writes are coalesced and the reads stride by uw.
// - col2im gathers (each dx element sums its R·S candidates, no atomics); the col buffer is [N][C·R·S][P·Q].
//   Without dilation it visits only the taps of the pixel's stride phase (about R·S / (uh·uw) of them, no
//   division inside the loop: the stem's 7x7 stride-2 dgrad visits 12 of 49), in the same (r, s) order.

// The common int arguments, in impls/cuda/conv2d.py's _args order (C and K count all groups).
#define CONV_GEOMETRY int N, int C, int H, int W, int K, int R, int S, int P, int Q, int uh, int uw, int ph, int pw, \
                      int dh, int dw, int G

extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col, CONV_GEOMETRY,
                                  long long ld_n, long long ld_crs)
{
    const long long PQ = (long long)P * Q, CRS = (long long)C * R * S;
    const long long total = N * CRS * PQ;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long pq = i % PQ, crs = (i / PQ) % CRS, n = i / (PQ * CRS);
        const int p = (int)(pq / Q), q = (int)(pq % Q);
        const int s = (int)(crs % S), r = (int)((crs / S) % R), c = (int)(crs / ((long long)R * S));
        const int h = p * uh + r * dh - ph, ww = q * uw + s * dw - pw;
        const float v = (h >= 0 && h < H && ww >= 0 && ww < W) ? x[((n * C + c) * H + h) * W + ww] : 0.f;
        col[n * ld_n + crs * ld_crs + pq] = v;
    }
}

extern "C" __global__ void col2im(const float* __restrict__ col, float* __restrict__ dx, CONV_GEOMETRY)
{
    const long long PQ = (long long)P * Q, CRS = (long long)C * R * S;
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int ww = (int)(i % W), h = (int)((i / W) % H), c = (int)((i / ((long long)H * W)) % C);
        const long long n = i / ((long long)C * H * W);
        const float* coln = col + n * CRS * PQ;
        float acc = 0.f;
        if (dh == 1 && dw == 1) {  // only the taps that land: r ≡ h + ph (mod uh), s ≡ w + pw (mod uw), same order
            const int hh = h + ph, wp = ww + pw;
            for (int r = hh % uh, p = hh / uh; r < R && p >= 0; r += uh, --p) {
                if (p >= P) continue;
                for (int s = wp % uw, q = wp / uw; s < S && q >= 0; s += uw, --q)
                    if (q < Q) acc += coln[(((long long)c * R + r) * S + s) * PQ + (long long)p * Q + q];
            }
            dx[i] = acc;
            continue;
        }
        for (int r = 0; r < R; ++r) {
            const int hp = h + ph - r * dh;  // = p·uh when tap r of output row p lands on h
            if (hp < 0 || hp % uh) continue;
            const int p = hp / uh;
            if (p >= P) continue;
            for (int s = 0; s < S; ++s) {
                const int wq = ww + pw - s * dw;
                if (wq < 0 || wq % uw) continue;
                const int q = wq / uw;
                if (q >= Q) continue;
                acc += coln[(((long long)c * R + r) * S + s) * PQ + (long long)p * Q + q];
            }
        }
        dx[i] = acc;
    }
}
