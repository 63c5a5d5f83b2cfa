// Winograd F(4x4, 3x3), non-fused, stride 1, strict FP32 (FMA, no fast-math): cupy_winograd_f4
// (conv2d_winograd.py).
//
// Thesis formula (§2.6.1, stride 1, dilation 1, one group): y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s x[n,c,p+r-pad,q+s-pad]·w[k,c,r,s].
// Winograd (Lavin & Gray 2016) on the points 0, ±1, ±2, ∞: each 4x4 output tile is Y = Aᵀ [ Σ_c U_kc ⊙ V_c ] A
// with U = G g Gᵀ (6x6, the filter) and V = Bᵀ d B (6x6, the input patch d at rows 4·tp − pad_h, columns
// 4·tq − pad_w, zero outside the image); the matrices are harness/measure/check.py's winograd_matrices.
//
// Three kernels around one batched SGEMM (cuDNN's "non-fused" Winograd): for each of the 36 positions e,
// M_e (Kout × T) = U_e (Kout × Cin) · V_e (Cin × T) over the T = N·TP·TQ tiles, which gemm_warptile.cu's v7 kernel
// runs as 36 products of one launch (layout bnn, tuned per shape). Buffers, all row-major float32, e outermost:
//   U[e][ko][ci]   wino4_filter: one thread per filter (ko, ci); 9 loads, 36 stores Kout·Cin apart.
//   V[e][ci][j]    wino4_input: one thread per (ci, j), tile t0 + j of a chunk of ldt tiles (a multiple of 4, for
//                  the GEMM's float4 loads; chosen so that V and M fit in half the L2); the 6x6 patch in
//                  registers, 36 stores Cin·ldt apart (a warp's stores: 32 consecutive tiles); zeros past the
//                  last tile.
//   M[e][ko][j]    the GEMM's output (ldc = ldt).
//   y              wino4_output: one thread per (ko, j < tc), tc the chunk's tiles; 36 loads, Aᵀ M A + b[ko], the
//                  4x4 tile's outputs inside the image stored (partial tiles at the borders).
// The chunks run one after the other (input transform, GEMM, output transform each), on the same V and M.
// The tile transforms cost ~200 FLOPs per thread against the GEMM's 2·Cin·36 per tile and output channel; the
// buffers (36·(Cin + Kout)·T floats) are the price of reusing the SGEMM main loop: V and M are each 2.25x the
// image they come from (36 / 16 floats per 4x4 tile).
// dgrad (`flip`): the same convolution of dy padded by 2 − pad (Cin = K, Kout = C), with the filter
// w'[c][k][r][s] = w[k][c][2−r][2−s], which wino4_filter reads that way.
// Element offsets are 64-bit; tile and channel indices are int (the wrapper declines shapes past int32).

// U_e = (G g Gᵀ)_e for the filter (ko, ci) at U + (e·Kout + ko)·Cin + ci.
// fprop: w is Kout × Cin × 3 × 3; dgrad (flip): w is the layer's K × C × 3 × 3 = Cin × Kout × 3 × 3, rotated.
extern "C" __global__ void wino4_filter(const float* __restrict__ w, float* __restrict__ U, int Kout, int Cin,
                                        int flip) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x, filters = (long long)Kout * Cin;
    if (i >= filters) return;
    const int ko = (int)(i / Cin), ci = (int)(i % Cin);
    const float* src = w + (flip ? (long long)ci * Kout + ko : i) * 9;
    float g[3][3];
#pragma unroll
    for (int r = 0; r < 3; ++r)
#pragma unroll
        for (int s = 0; s < 3; ++s) g[r][s] = flip ? src[(2 - r) * 3 + (2 - s)] : src[r * 3 + s];
    float t[6][3];  // G g
#pragma unroll
    for (int s = 0; s < 3; ++s) {
        const float a = g[0][s], b = g[1][s], c = g[2][s];
        t[0][s] = 0.25f * a;
        t[1][s] = (-1.0f / 6.0f) * (a + b + c);
        t[2][s] = (-1.0f / 6.0f) * (a - b + c);
        t[3][s] = (1.0f / 24.0f) * a + (1.0f / 12.0f) * b + (1.0f / 6.0f) * c;
        t[4][s] = (1.0f / 24.0f) * a - (1.0f / 12.0f) * b + (1.0f / 6.0f) * c;
        t[5][s] = c;
    }
    float* dst = U + (long long)ko * Cin + ci;
#pragma unroll
    for (int x = 0; x < 6; ++x) {  // (G g) Gᵀ, row x
        const float a = t[x][0], b = t[x][1], c = t[x][2];
        const float u[6] = {0.25f * a, (-1.0f / 6.0f) * (a + b + c), (-1.0f / 6.0f) * (a - b + c),
                            (1.0f / 24.0f) * a + (1.0f / 12.0f) * b + (1.0f / 6.0f) * c,
                            (1.0f / 24.0f) * a - (1.0f / 12.0f) * b + (1.0f / 6.0f) * c, c};
#pragma unroll
        for (int y = 0; y < 6; ++y) dst[(x * 6 + y) * filters] = u[y];
    }
}

// Bᵀ v of one 6-vector (a row or a column of the patch), in place.
__device__ __forceinline__ void bt6(float v[6]) {
    const float d0 = v[0], d1 = v[1], d2 = v[2], d3 = v[3], d4 = v[4], d5 = v[5];
    v[0] = 4.0f * d0 - 5.0f * d2 + d4;
    v[1] = -4.0f * (d1 + d2) + d3 + d4;
    v[2] = 4.0f * (d1 - d2) - d3 + d4;
    v[3] = -2.0f * (d1 - d3) - d2 + d4;
    v[4] = 2.0f * (d1 - d3) - d2 + d4;
    v[5] = 4.0f * d1 - 5.0f * d3 + d5;
}

// V_e = (Bᵀ d B)_e of the patch of tile t0 + j, input channel ci, at V + (e·Cin + ci)·ldt + j (the chunk of ldt
// tiles from t0); zeros past the last tile.
extern "C" __global__ void wino4_input(const float* __restrict__ x, float* __restrict__ V, int N, int Cin, int H,
                                       int W, int TP, int TQ, int ldt, int pad_h, int pad_w, int t0) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x, plane = (long long)Cin * ldt;
    if (i >= plane) return;
    const int ci = (int)(i / ldt), t = t0 + (int)(i % ldt), per_image = TP * TQ;
    const bool live = t < N * per_image;
    const int n = live ? t / per_image : 0, rem = t % per_image;
    const int h0 = 4 * (rem / TQ) - pad_h, w0 = 4 * (rem % TQ) - pad_w;
    const float* src = x + ((long long)n * Cin + ci) * ((long long)H * W);
    float d[6][6];
#pragma unroll
    for (int a = 0; a < 6; ++a)
#pragma unroll
        for (int b = 0; b < 6; ++b) {
            const int h = h0 + a, ww = w0 + b;
            d[a][b] = (live && h >= 0 && h < H && ww >= 0 && ww < W) ? src[(long long)h * W + ww] : 0.0f;
        }
#pragma unroll
    for (int b = 0; b < 6; ++b) {  // Bᵀ d: each column
        float col[6] = {d[0][b], d[1][b], d[2][b], d[3][b], d[4][b], d[5][b]};
        bt6(col);
#pragma unroll
        for (int a = 0; a < 6; ++a) d[a][b] = col[a];
    }
    float* dst = V + i;
#pragma unroll
    for (int a = 0; a < 6; ++a) {  // (Bᵀ d) B: each row
        bt6(d[a]);
#pragma unroll
        for (int b = 0; b < 6; ++b) dst[(a * 6 + b) * plane] = d[a][b];
    }
}

// Aᵀ m of one 6-vector into 4 values.
__device__ __forceinline__ void at6(const float m[6], float o[4]) {
    const float s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + s12 + s34;
    o[1] = d12 + 2.0f * d34;
    o[2] = s12 + 4.0f * s34;
    o[3] = d12 + 8.0f * d34 + m[5];
}

// y's 4x4 tile t0 + j of output channel ko = Aᵀ M A + bias[ko], M_e at M + (e·Kout + ko)·ldt + j, for the tc
// tiles of the chunk from t0; the outputs inside the P × Q image only.
extern "C" __global__ void wino4_output(const float* __restrict__ M, const float* __restrict__ bias,
                                        float* __restrict__ y, int N, int Kout, int P, int Q, int TP, int TQ,
                                        int ldt, int t0, int tc) {
    const int per_image = TP * TQ;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x, plane = (long long)Kout * ldt;
    if (i >= (long long)Kout * tc) return;
    const int ko = (int)(i / tc), j = (int)(i % tc), t = t0 + j;
    const float* src = M + (long long)ko * ldt + j;
    float m[6][4];  // Aᵀ M: each column e % 6 of M, its 6 rows into 4
#pragma unroll
    for (int b = 0; b < 6; ++b) {
        float col[6], o[4];
#pragma unroll
        for (int a = 0; a < 6; ++a) col[a] = src[(a * 6 + b) * plane];
        at6(col, o);
#pragma unroll
        for (int r = 0; r < 4; ++r) m[b][r] = o[r];
    }
    const int n = t / per_image, rem = t % per_image, p0 = 4 * (rem / TQ), q0 = 4 * (rem % TQ);
    const float bk = bias ? bias[ko] : 0.0f;
    float* dst = y + ((long long)n * Kout + ko) * ((long long)P * Q);
#pragma unroll
    for (int r = 0; r < 4; ++r) {  // (Aᵀ M) A: row r of the tile
        const float row[6] = {m[0][r], m[1][r], m[2][r], m[3][r], m[4][r], m[5][r]};
        float o[4];
        at6(row, o);
        const int p = p0 + r;
        if (p >= P) break;
#pragma unroll
        for (int c = 0; c < 4; ++c)
            if (q0 + c < Q) dst[(long long)p * Q + q0 + c] = o[c] + bk;
    }
}
