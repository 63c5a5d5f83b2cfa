// Winograd F(2x2, 3x3) convolution, stride 1, strict FP32 (FMA, no fast-math): cupy_winograd (conv2d_winograd.py).
//
// Thesis formula (§2.6.1, stride 1, dilation 1, one group): y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s x[n,c,p+r-pad,q+s-pad]·w[k,c,r,s].
// Winograd (Lavin & Gray 2016): each 2x2 output tile Y = Aᵀ [ Σ_c U_kc ⊙ V_c ] A with U = G g Gᵀ (4x4, the filter)
// and V = Bᵀ d B (4x4, the 4x4 input patch d at rows 2·tp - pad_h, cols 2·tq - pad_w, zero outside the image).
//
// One fused kernel per call (filter transform, input transform, batched products, output transform), in two
// versions that share the block shape, the input loader and the grid; conv2d_winograd.py's kernel_for chooses
// per shape: v1 (wino_conv_f2) for few input channels, v2 (wino_conv_f2_outer, below) from 16 on.
// v1, wino_conv_f2:
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

// The 3x3 filter g from src[r·3 + s], or rotated by 180° (src[(2-r)·3 + (2-s)]) when `flip` is set.
__device__ __forceinline__ void load_filter(const float* __restrict__ src, bool flip, float g[3][3]) {
#pragma unroll
    for (int r = 0; r < 3; ++r)
#pragma unroll
        for (int q = 0; q < 3; ++q) g[r][q] = flip ? src[(2 - r) * 3 + (2 - q)] : src[r * 3 + q];
}

// U = G g Gᵀ of one 3x3 filter g into dst[e · stride], e = 4·ξ + ν (the 16 transformed positions).
__device__ __forceinline__ void transform_filter(const float g[3][3], float* dst, int stride) {
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

// U = G g Gᵀ of the 3x3 filter at src (see load_filter) into dst[e · stride].
__device__ __forceinline__ void filter_transform(const float* __restrict__ src, bool flip, float* dst, int stride) {
    float g[3][3];
    load_filter(src, flip, g);
    transform_filter(g, dst, stride);
}

// Image n and top-left input corner (h0, w0) (padded coordinates made image ones: may be negative) of the 4x4
// patch of 2x2 output tile `tile` (tiles numbered n, then tile row, then tile column); zeros past the last tile.
struct TileOrigin {
    int n, h0, w0;
};
__device__ __forceinline__ TileOrigin tile_origin(int tile, int tiles, int TP, int TQ, int pad_h, int pad_w) {
    if (tile >= tiles) return {0, 0, 0};
    const int rem = tile % (TP * TQ);
    return {tile / (TP * TQ), 2 * (rem / TQ) - pad_h, 2 * (rem % TQ) - pad_w};
}

// d = the 4x4 input patch of channel c at `o` (zero outside the image, and everywhere when !live).
__device__ __forceinline__ void load_patch(float d[4][4], const float* __restrict__ x, const TileOrigin& o, int c,
                                           bool live, int Cin, int H, int W) {
    const float* src = x + ((long long)o.n * Cin + (live ? c : 0)) * ((long long)H * W);
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const int h = o.h0 + a, ww = o.w0 + b;
            d[a][b] = (live && h >= 0 && h < H && ww >= 0 && ww < W) ? src[(long long)h * W + ww] : 0.0f;
        }
}

// V = Bᵀ d B of one 4x4 input patch d into dst[e · stride], e = 4·a + b.
__device__ __forceinline__ void transform_input(const float d[4][4], float* dst, int stride) {
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
        dst[(a * 4 + 0) * stride] = t[a][0] - t[a][2];
        dst[(a * 4 + 1) * stride] = t[a][1] + t[a][2];
        dst[(a * 4 + 2) * stride] = t[a][2] - t[a][1];
        dst[(a * 4 + 3) * stride] = t[a][1] - t[a][3];
    }
}

// Y = Aᵀ M A + bk of one tile's 16 transformed sums m[e] (e = 4·ξ + ν), written to dst (row stride Q) where the
// output exists: rows p0, p0 + 1 < P, columns q0, q0 + 1 < Q (partial tiles at the borders).
__device__ __forceinline__ void store_output(const float m16[16], float bk, float* dst, int p0, int q0, int P,
                                             int Q) {
    float m[2][4];  // Aᵀ M
#pragma unroll
    for (int b = 0; b < 4; ++b) {
        m[0][b] = m16[0 * 4 + b] + m16[1 * 4 + b] + m16[2 * 4 + b];
        m[1][b] = m16[1 * 4 + b] - m16[2 * 4 + b] - m16[3 * 4 + b];
    }
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
    const TileOrigin o = tile_origin(my_tile, tiles, TP, TQ, pad_h, pad_w);

    float acc[16][2][2];
#pragma unroll
    for (int e = 0; e < 16; ++e)
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) acc[e][i][j] = 0.0f;

    for (int c0 = 0; c0 < Cin; c0 += CC) {
        // Input transform V = Bᵀ d B of one 4x4 patch (zero outside the image, the tile range and Cin).
        float d[4][4];
        load_patch(d, x, o, c0 + lc, my_tile < tiles && c0 + lc < Cin, Cin, H, W);
        transform_input(d, &Vs[lc][0][lt], BT);
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
            float m16[16];
#pragma unroll
            for (int e = 0; e < 16; ++e) m16[e] = acc[e][i][j];
            store_output(m16, bias ? bias[k] : 0.0f, y + ((long long)n * Kout + k) * P * (long long)Q, p0, q0, P, Q);
        }
    }
}

// v2's filter staging: raw 3x3 filters read row by row of w, TPR threads a row (row tid / TPR of the 256), thread
// t of a row reading its floats t + TPR·j (j < 9, TPR·9 floats a row: a warp reads 32 / TPR runs of TPR contiguous
// floats per load), zero past the row's first `len` floats or when the row is out of range (!row_ok); row r lands
// at raw[r·PITCH]. The loads go to registers first, so that all nine are in flight at once.
#define RAW_PITCH_FPROP (9 * CC + 1)
#define RAW_PITCH_DGRAD (9 * BKO)
#define RAW_FLOATS (BKO * RAW_PITCH_FPROP > CC * RAW_PITCH_DGRAD ? BKO * RAW_PITCH_FPROP : CC * RAW_PITCH_DGRAD)
template <int TPR, int PITCH>
__device__ __forceinline__ void stage_rows(const float* __restrict__ src, bool row_ok, int len, float* raw) {
    const int t = threadIdx.x % TPR, row = threadIdx.x / TPR;
    float v[9];
#pragma unroll
    for (int j = 0; j < 9; ++j) v[j] = (row_ok && t + TPR * j < len) ? src[t + TPR * j] : 0.0f;
#pragma unroll
    for (int j = 0; j < 9; ++j) raw[row * PITCH + t + TPR * j] = v[j];
}

// v2, wino_conv_f2_outer: the same block (32 tiles × 32 output channels, slices of CC = 8 input channels, the same
// input loader: one input patch per thread and slice; one filter transform per thread and slice), with
//   - outer products per transformed position, as an SGEMM: thread (e, tg, kg) = (tid / 16, tid % 4, tid / 4 % 4)
//     accumulates position e of tiles {4·tg, 16 + 4·tg} + 0..3 × output channels {4·kg, 16 + 4·kg} + 0..3
//     (64 registers): per input channel four LDS.128 (a warp reads 8 distinct float4 of V and 8 of U) for 64 FMA,
//     against v1's two LDS.64 per 4 FMA;
//   - the next slice's raw input patch (16 floats) loaded into registers before the products of the current one,
//     so that the global loads of x are in flight during the math;
//   - the slice's 8 x 32 raw filters staged through shared memory (stage_rows), read from w in its own row
//     order: fprop rows are the block's 32 output channels, 8·9 contiguous floats each (8 threads a row); dgrad
//     rows the slice's 8 channels, 32·9 floats each (a warp a row). Round 2 read each thread's own filter
//     (channel tid / 32, output channel tid % 32) straight from w: coalesced in dgrad (w is K × C there, the 32
//     filters of a warp adjacent) but 32 rows Cin·36 bytes apart per warp load in fprop, which made fprop ~1.6x
//     slower than dgrad on the same ResNet-50 layers. Then each thread transforms filter (tid / 32, tid % 32)
//     from raw into Us (conflict-free: 9 and the fprop pitch 73 are odd); three barriers per slice;
//   - the output transform through shared memory: the 16 positions of a (tile, channel) pair live in 16 threads
//     of 8 warps, so the block writes its sums M[e][channel][tile] into the (then free) 32 KiB buffer, one half of
//     the output channels at a time, and each thread reads back two (tile, channel) pairs, applies Aᵀ·M·A + bias.
extern "C" __global__ void __launch_bounds__(256, 2) wino_conv_f2_outer(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y,
    int N, int Cin, int H, int W, int Kout, int P, int Q, int pad_h, int pad_w, int TP, int TQ, int flip) {
    __shared__ __align__(16) float sm[2 * CC * 16 * BT];  // Vs[CC][16][BT] then Us[CC][16][BKO]; M in the epilogue
    __shared__ float raw[RAW_FLOATS];                     // the slice's raw 3x3 filters, in w's row order
    float* Vs = sm;
    float* Us = sm + CC * 16 * BT;
    const int tid = threadIdx.x, pe = tid / 16, tg = tid % 4, kg = tid / 4 % 4;
    const int tiles = N * TP * TQ;
    const int tile0 = blockIdx.x * BT, k0 = blockIdx.y * BKO;

    // Loader: the patch of channel lc of the slice, tile lt of the block; the filter transform (channel lc, output kk).
    const int lc = tid / BT, lt = tid % BT, my_tile = tile0 + lt, kk = tid % BKO;
    const TileOrigin o = tile_origin(my_tile, tiles, TP, TQ, pad_h, pad_w);
    float d[4][4];
    // The raw patch of slice c0: zero outside the image, the tile range and Cin.
    auto load_slice = [&](int c0) { load_patch(d, x, o, c0 + lc, my_tile < tiles && c0 + lc < Cin, Cin, H, W); };
    // The raw filters of slice c0 into raw (zero past Cin and Kout), row by row of w so that a warp's loads are
    // contiguous. fprop: w is Kout × Cin × 3 × 3, rows are the block's output channels k0 + tid / 8, each CC·9
    // floats of the slice (pitch CC·9 + 1); dgrad (flip): w is the layer's K × C × 3 × 3 = Cin × Kout × 3 × 3,
    // rows are the slice's channels c0 + tid / 32, each BKO·9 floats.
    auto stage_filters = [&](int c0) {
        if (flip) {
            const int c = c0 + tid / 32;
            stage_rows<32, RAW_PITCH_DGRAD>(w + ((long long)(c < Cin ? c : 0) * Kout + k0) * 9, c < Cin,
                                            (Kout - k0) * 9, raw);
        } else {
            const int k = k0 + tid / 8;
            stage_rows<8, RAW_PITCH_FPROP>(w + ((long long)(k < Kout ? k : 0) * Cin + c0) * 9, k < Kout,
                                           (Cin - c0) * 9, raw);
        }
    };
    // U of this thread's filter (channel lc, output channel kk) of the staged slice into Us; the 9 reads of a warp
    // (one lc, 32 kk) are conflict-free: 9 and RAW_PITCH_FPROP are odd. Zero filters transform to zero.
    auto transform_filter_slice = [&]() {
        const float* g = raw + (flip ? lc * RAW_PITCH_DGRAD + kk * 9 : kk * RAW_PITCH_FPROP + lc * 9);
        filter_transform(g, flip, &Us[lc * 16 * BKO + kk], BKO);
    };

    // acc[th][i][kh][j]: position pe of tile 16·th + 4·tg + i and output channel 16·kh + 4·kg + j.
    float acc[2][4][2][4];
#pragma unroll
    for (int th = 0; th < 2; ++th)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int kh = 0; kh < 2; ++kh)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[th][i][kh][j] = 0.0f;

    load_slice(0);
#pragma unroll 1
    for (int c0 = 0; c0 < Cin; c0 += CC) {
        __syncthreads();  // the previous slice's products and filter transforms are done with sm and raw
        stage_filters(c0);  // its loads are in flight during the input transform
        transform_input(d, &Vs[lc * 16 * BT + lt], BT);
        __syncthreads();  // raw is complete
        transform_filter_slice();
        __syncthreads();
        if (c0 + CC < Cin) load_slice(c0 + CC);  // in flight during the products below
        const int slice = min(CC, Cin - c0);     // the thesis's C = 3: no products of zero channels
#pragma unroll 1
        for (int cc = 0; cc < slice; ++cc) {
            const float* vrow = &Vs[(cc * 16 + pe) * BT + 4 * tg];
            const float* urow = &Us[(cc * 16 + pe) * BKO + 4 * kg];
            float vv[2][4], uu[2][4];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float4 v = *reinterpret_cast<const float4*>(vrow + 16 * h);
                const float4 u = *reinterpret_cast<const float4*>(urow + 16 * h);
                vv[h][0] = v.x, vv[h][1] = v.y, vv[h][2] = v.z, vv[h][3] = v.w;
                uu[h][0] = u.x, uu[h][1] = u.y, uu[h][2] = u.z, uu[h][3] = u.w;
            }
#pragma unroll
            for (int th = 0; th < 2; ++th)
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int kh = 0; kh < 2; ++kh)
#pragma unroll
                        for (int j = 0; j < 4; ++j)
                            acc[th][i][kh][j] = fmaf(vv[th][i], uu[kh][j], acc[th][i][kh][j]);
        }
    }

    // Epilogue, one half (16 output channels) of the block at a time: M[e][kl][t] in sm (16 · 16 · 32 floats).
#pragma unroll  // acc is indexed by half: unrolled, it stays in registers
    for (int half = 0; half < 2; ++half) {
        __syncthreads();  // the products (or the previous half's reads) are done with the buffer
#pragma unroll
        for (int th = 0; th < 2; ++th)
#pragma unroll
            for (int j = 0; j < 4; ++j)
                *reinterpret_cast<float4*>(&sm[(pe * 16 + 4 * kg + j) * BT + 16 * th + 4 * tg]) =
                    make_float4(acc[th][0][half][j], acc[th][1][half][j], acc[th][2][half][j], acc[th][3][half][j]);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int pair = tid + 256 * r, kl = pair / BT, t = pair % BT;
            const int tile = tile0 + t, k = k0 + 16 * half + kl;
            if (tile >= tiles || k >= Kout) continue;
            float m16[16];
#pragma unroll
            for (int e = 0; e < 16; ++e) m16[e] = sm[(e * 16 + kl) * BT + t];
            const int n = tile / (TP * TQ), rem = tile % (TP * TQ);
            store_output(m16, bias ? bias[k] : 0.0f, y + ((long long)n * Kout + k) * P * (long long)Q,
                         2 * (rem / TQ), 2 * (rem % TQ), P, Q);
        }
    }
}
