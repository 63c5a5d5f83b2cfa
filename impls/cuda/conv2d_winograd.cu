// Winograd F(2x2, 3x3) convolution, stride 1, strict FP32 (FMA, no fast-math): cupy_winograd (conv2d_winograd.py).
//
// Thesis formula (§2.6.1, stride 1, dilation 1, one group): y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s x[n,c,p+r-pad,q+s-pad]·w[k,c,r,s].
// Winograd (Lavin & Gray 2016): each 2x2 output tile Y = Aᵀ [ Σ_c U_kc ⊙ V_c ] A with U = G g Gᵀ (4x4, the filter)
// and V = Bᵀ d B (4x4, the 4x4 input patch d at rows 2·tp - pad_h, cols 2·tq - pad_w, zero outside the image).
//
// One kernel per call, wino_conv_f2, fused: filter transform, input transform, batched products, output transform.
//   A block of 256 threads owns 32 tiles × 32 output channels. Per slice of CC = 8 input channels each thread
//   transforms one 4x4 input patch (channel tid / 32, tile tid % 32) into shared memory Vs[8][16][32] and one
//   filter (channel tid / 32, output channel tid % 32) into Us[8][16][32]: U is recomputed from w on every call
//   (never cached: the weights change between calls), per block, which costs 9 loads and ~40 flops per filter
//   against the slice's 8·16·32·32 products. Each thread (tx, ty) = (tid % 16, tid / 16) accumulates, in 64
//   registers, the 16 transformed positions of tiles {2tx, 2tx+1} × output channels {2ty, 2ty+1} (float2
//   shared-memory reads, 4 FMA per pair of reads). The epilogue applies Aᵀ·M·A in registers, adds the bias (fprop)
//   and writes the 2x2 outputs inside the image (partial tiles at the borders).
//   dgrad (`flip`): the same convolution of dy padded by 2 - pad_h, 2 - pad_w (Cin = K, Kout = C), with the filter
//   w'[c][k][r][s] = w[k][c][2-r][2-s] (C and K swapped, rotated 180°) read by the filter transform.
//   Registers: __launch_bounds__(256, 2) (two blocks, 64 KiB of shared memory, per SM); the channel loop is not
//   unrolled, which keeps it without spills (fully unrolled: 242 registers).
// Offsets into x and y are 64-bit; tile and channel indices are int (the wrapper declines shapes past int32).

#define CC 8
#define BT 32
#define BKO 32

// U = G g Gᵀ of one 3x3 filter into dst[e · stride], e = 4·ξ + ν (the 16 transformed positions). g is read from
// src[r·3 + s], or rotated by 180° (src[(2-r)·3 + (2-s)]) when `flip` is set.
__device__ __forceinline__ void filter_transform(const float* __restrict__ src, bool flip, float* dst, int stride) {
    float g[3][3];
#pragma unroll
    for (int r = 0; r < 3; ++r)
#pragma unroll
        for (int q = 0; q < 3; ++q) g[r][q] = flip ? src[(2 - r) * 3 + (2 - q)] : src[r * 3 + q];
    float t[4][3];  // G g
#pragma unroll
    for (int q = 0; q < 3; ++q) {
        t[0][q] = g[0][q];
        t[1][q] = 0.5f * (g[0][q] + g[1][q] + g[2][q]);
        t[2][q] = 0.5f * (g[0][q] - g[1][q] + g[2][q]);
        t[3][q] = g[2][q];
    }
#pragma unroll
    for (int a = 0; a < 4; ++a) {  // (G g) Gᵀ
        dst[(a * 4 + 0) * stride] = t[a][0];
        dst[(a * 4 + 1) * stride] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
        dst[(a * 4 + 2) * stride] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
        dst[(a * 4 + 3) * stride] = t[a][2];
    }
}

extern "C" __global__ void __launch_bounds__(256, 2) wino_conv_f2(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y,
    int N, int Cin, int H, int W, int Kout, int P, int Q, int pad_h, int pad_w, int TP, int TQ, int flip) {
    __shared__ __align__(16) float Vs[CC][16][BT];
    __shared__ __align__(16) float Us[CC][16][BKO];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int tiles = N * TP * TQ;
    const int tile0 = blockIdx.x * BT, k0 = blockIdx.y * BKO;

    // The patch this thread transforms: channel lc of the slice, tile lt of the block.
    const int lc = tid / BT, lt = tid % BT, my_tile = tile0 + lt;
    int pn = 0, h0 = 0, w0 = 0;
    if (my_tile < tiles) {
        pn = my_tile / (TP * TQ);
        const int rem = my_tile % (TP * TQ);
        h0 = 2 * (rem / TQ) - pad_h;
        w0 = 2 * (rem % TQ) - pad_w;
    }
    const long long plane = (long long)H * W;

    float acc[16][2][2];
#pragma unroll
    for (int e = 0; e < 16; ++e)
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) acc[e][i][j] = 0.0f;

    for (int c0 = 0; c0 < Cin; c0 += CC) {
        // Input transform V = Bᵀ d B of one 4x4 patch (zero outside the image, the tile range and Cin).
        float d[4][4];
        const int c = c0 + lc;
        const bool live = my_tile < tiles && c < Cin;
        const float* src = x + ((long long)pn * Cin + (live ? c : 0)) * plane;
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int h = h0 + a, ww = w0 + b;
                d[a][b] = (live && h >= 0 && h < H && ww >= 0 && ww < W) ? src[(long long)h * W + ww] : 0.0f;
            }
        float t[4][4];  // Bᵀ d
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            t[0][b] = d[0][b] - d[2][b];
            t[1][b] = d[1][b] + d[2][b];
            t[2][b] = d[2][b] - d[1][b];
            t[3][b] = d[1][b] - d[3][b];
        }
#pragma unroll
        for (int a = 0; a < 4; ++a) {  // (Bᵀ d) B
            Vs[lc][a * 4 + 0][lt] = t[a][0] - t[a][2];
            Vs[lc][a * 4 + 1][lt] = t[a][1] + t[a][2];
            Vs[lc][a * 4 + 2][lt] = t[a][2] - t[a][1];
            Vs[lc][a * 4 + 3][lt] = t[a][1] - t[a][3];
        }
        // Filter transform of this slice's (channel cc = tid / 32, output channel kk = tid % 32) filter, into Us.
        {
            const int cc = tid / BKO, kk = tid % BKO, uc = c0 + cc, uk = k0 + kk;
            if (uc < Cin && uk < Kout) {
                // fprop: w is Kout × Cin × 3 × 3; dgrad (flip): w is the layer's K × C × 3 × 3 = Cin × Kout × 3 × 3.
                const long long f = flip ? (long long)uc * Kout + uk : (long long)uk * Cin + uc;
                filter_transform(w + f * 9, flip, &Us[cc][0][kk], BKO);
            } else {
#pragma unroll
                for (int e = 0; e < 16; ++e) Us[cc][e][kk] = 0.0f;
            }
        }
        __syncthreads();
        const int slice = min(CC, Cin - c0);  // the thesis's C = 3: no products of zero channels
#pragma unroll 1
        for (int cc = 0; cc < slice; ++cc)
#pragma unroll
            for (int e = 0; e < 16; ++e) {
                const float2 v = *reinterpret_cast<const float2*>(&Vs[cc][e][2 * tx]);
                const float2 u = *reinterpret_cast<const float2*>(&Us[cc][e][2 * ty]);
                acc[e][0][0] = fmaf(v.x, u.x, acc[e][0][0]);
                acc[e][0][1] = fmaf(v.x, u.y, acc[e][0][1]);
                acc[e][1][0] = fmaf(v.y, u.x, acc[e][1][0]);
                acc[e][1][1] = fmaf(v.y, u.y, acc[e][1][1]);
            }
        __syncthreads();
    }

    // Epilogue: Y = Aᵀ M A per (tile, channel) pair, + bias, written where the output exists.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int tile = tile0 + 2 * tx + i;
        if (tile >= tiles) continue;
        const int n = tile / (TP * TQ), rem = tile % (TP * TQ), p0 = 2 * (rem / TQ), q0 = 2 * (rem % TQ);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int k = k0 + 2 * ty + j;
            if (k >= Kout) continue;
            float m[2][4];  // Aᵀ M
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                m[0][b] = acc[0 * 4 + b][i][j] + acc[1 * 4 + b][i][j] + acc[2 * 4 + b][i][j];
                m[1][b] = acc[1 * 4 + b][i][j] - acc[2 * 4 + b][i][j] - acc[3 * 4 + b][i][j];
            }
            const float bk = bias ? bias[k] : 0.0f;
            float* dst = y + ((long long)n * Kout + k) * P * (long long)Q;
#pragma unroll
            for (int a = 0; a < 2; ++a) {
                const float o0 = m[a][0] + m[a][1] + m[a][2] + bk;
                const float o1 = m[a][1] - m[a][2] - m[a][3] + bk;
                const int p = p0 + a;
                if (p < P) {
                    dst[(long long)p * Q + q0] = o0;
                    if (q0 + 1 < Q) dst[(long long)p * Q + q0 + 1] = o1;
                }
            }
        }
    }
}
