// im2col.cu: the lowering kernels of the im2col + cuBLAS convolution (Caffe's scheme).
//
// Formula (seed 003, §2.6.1): with col[(c,r,s), (n,p,q)] = x[n, c, p·u+r−pad, q·u+s−pad] (0 in the padding),
// fprop is y_n = W·col_n (W as K × C·R·S), wgrad dw = Σ_n dy_n·col_nᵀ, and dgrad computes col_n = Wᵀ·dy_n and
// folds it back with col2im: dx[n,c,h,w] = Σ of the col entries whose tap (r, s) of output (p, q) lands on (h, w).
//
// Strategy: one thread per element, 1-D grid-stride loop with 64-bit indices.
// - im2col writes col element (n, crs, pq) at n·ld_n + crs·ld_crs + pq; the strides select the layout:
//   [N][C·R·S][P·Q] (batched GEMM per image, fprop and dgrad) or [C·R·S][N][P·Q] (one GEMM over N·P·Q, wgrad).
//   Consecutive threads take consecutive q, so the writes are coalesced and the reads stride by u.
// - col2im gathers (each dx element sums its R·S candidates, no atomics); the col buffer is [N][C·R·S][P·Q].

extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col, int N, int C, int H, int W,
                                  int R, int S, int P, int Q, int u, int pad, long long ld_n, long long ld_crs)
{
    const long long PQ = (long long)P * Q, CRS = (long long)C * R * S;
    const long long total = N * CRS * PQ;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long pq = i % PQ, crs = (i / PQ) % CRS, n = i / (PQ * CRS);
        const int p = (int)(pq / Q), q = (int)(pq % Q);
        const int s = (int)(crs % S), r = (int)((crs / S) % R), c = (int)(crs / ((long long)R * S));
        const int h = p * u + r - pad, ww = q * u + s - pad;
        const float v = (h >= 0 && h < H && ww >= 0 && ww < W) ? x[((n * C + c) * H + h) * W + ww] : 0.f;
        col[n * ld_n + crs * ld_crs + pq] = v;
    }
}

extern "C" __global__ void col2im(const float* __restrict__ col, float* __restrict__ dx, int N, int C, int H, int W,
                                  int R, int S, int P, int Q, int u, int pad)
{
    const long long PQ = (long long)P * Q, CRS = (long long)C * R * S;
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int ww = (int)(i % W), h = (int)((i / W) % H), c = (int)((i / ((long long)H * W)) % C);
        const long long n = i / ((long long)C * H * W);
        const float* coln = col + n * CRS * PQ;
        float acc = 0.f;
        for (int r = 0; r < R; ++r) {
            const int ph = h + pad - r;
            if (ph < 0 || ph % u) continue;
            const int p = ph / u;
            if (p >= P) continue;
            for (int s = 0; s < S; ++s) {
                const int qw = ww + pad - s;
                if (qw < 0 || qw % u) continue;
                const int q = qw / u;
                if (q >= Q) continue;
                acc += coln[(((long long)c * R + r) * S + s) * PQ + (long long)p * Q + q];
            }
        }
        dx[i] = acc;
    }
}
