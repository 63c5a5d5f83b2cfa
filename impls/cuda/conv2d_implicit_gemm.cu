// conv2d_implicit_gemm.cu: implicit-GEMM convolution, all three passes, no im2col buffer in global memory.
//
// Formula (seed 003, §2.6.1), NCHW / KCRS, u = stride:
//   fprop  y[n,k,p,q]  = b[k] + Σ_{c,r,s} x[n,c,p·u+r−pad,q·u+s−pad]·w[k,c,r,s]
//   dgrad  dx[n,c,h,w] = Σ_{k,r,s} dy[n,k,(h+pad−r)/u,(w+pad−s)/u]·w[k,c,r,s]   (terms where u divides exactly)
//   wgrad  dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x[n,c,p·u+r−pad,q·u+s−pad]
// As GEMMs (rows × columns × reduction): fprop (N·P·Q) × K × (C·R·S), dgrad (N·H·W) × C × (K·R·S),
// wgrad K × (C·R·S) × (N·P·Q). The GEMM operands are never materialised: each thread gathers its elements of the
// current slice straight from x, w or dy, with zeros for padding and for out-of-range rows/columns.
//
// Strategy (one template, `igemm`, for the three passes; the pass is a small struct that says where a GEMM
// element lives):
// - 256 threads compute a BM×BN output tile; each thread a TM×TN register sub-tile, as TM/4 × TN/4 groups of
//   4×4, read from shared memory as float4 fragments. Configurations: 128×128 (8×8 per thread), 128×64 (8×4),
//   64×128 (4×8) and 256×16 (4×4, for ≤ 16 GEMM columns); and for dgrad with C ≤ 4 a "narrow" kernel (one pixel
//   × all C columns per thread, weights in shared memory, see conv_dgrad_narrow).
// - The reduction advances BK = 8 at a time; slices are stored k-major in double-buffered shared memory (rows
//   padded by 4 floats: conflict-free stores, 16-byte aligned rows); while slice t is multiplied, the thread holds
//   slice t+1 in registers (its global gathers overlap the arithmetic); one __syncthreads per slice.
// - The reduction index → (c, r, s) or (k, i, j) decomposition is precomputed by the host into a small int4
//   table (`tab`, L1-resident, the same entry for many threads: broadcast), so the inner gathers do no integer
//   division. Each thread's row decomposition (n, p, q) is done once, before the loop (fprop, dgrad), or once per
//   slice (wgrad, whose reduction runs over n, p, q).
// - dgrad with stride u runs u² GEMMs, one per output phase (grid.z): the pixels with (h + pad) % u = a and
//   (w + pad) % u = b receive only the taps r ≡ a, s ≡ b (mod u), so no zero terms are multiplied (a plain
//   implicit GEMM would multiply u² − 1 zeros for every useful term) and no divisions by u are needed.
// - Threads that gather along a contiguous dimension are adjacent in the warp: fprop/dgrad A (output pixels, so
//   consecutive q/w), wgrad A and B (consecutive q along the reduction).
// - Split-K: when the output tiles alone cannot fill the GPU (late ResNet layers, every wgrad), grid.y splits the
//   reduction; each split writes its partial tile to a workspace and `splitk_reduce` sums the splits in a fixed
//   order (+ bias for fprop): deterministic, no atomics.
// - Offsets are 64-bit (long long) wherever a tensor index can pass 2^31.
// Strict IEEE float32: compiled without fast-math; each product-sum is one fused multiply-add.

#define NT 256
#define BK 8

// ------------------------------------------------------------------ the three passes as GEMM element accessors
// Each provides: a(kg, m) and b(kg, col) (the GEMM operand elements, 0 outside), begin_slice(k0) (per-slice
// setup), row_offset(m) and col_offset(col) (output element = out[row_offset + col_offset]).
// A_KFAST: A's loader walks the reduction index fastest across threads (wgrad), else the row index (fprop, dgrad).

struct Fprop {  // rows m = (n, p, q), columns k, reduction kg = (c, r, s); tab[kg] = {c·H·W + r·W + s, r, s, 0}
    static constexpr bool A_KFAST = false;
    const float* __restrict__ x;
    const float* __restrict__ w;
    const int4* __restrict__ tab;
    int H, W, K, PQ, Kg;
    long long xbase;  // this thread's A row: x offset of (n, 0, p·u−pad, q·u−pad)
    int h0, w0;
    bool mvalid;

    __device__ Fprop(const float* x_, const float* w_, const int4* tab_, int C, int H_, int W_, int K_, int R, int S,
                     int P, int Q, int u, int pad, int my_m, int Mg)
        : x(x_), w(w_), tab(tab_), H(H_), W(W_), K(K_), PQ(P * Q), Kg(C * R * S)
    {
        mvalid = my_m < Mg;
        const int n = my_m / PQ, pq = my_m - n * PQ, p = pq / Q, q = pq - p * Q;
        h0 = p * u - pad;
        w0 = q * u - pad;
        xbase = (long long)n * C * H * W + (long long)h0 * W + w0;
    }
    __device__ __forceinline__ void begin_slice(int) {}
    __device__ __forceinline__ float a(int kg, int) const
    {
        if (!mvalid || kg >= Kg) return 0.f;
        const int4 t = __ldg(&tab[kg]);
        const int ih = h0 + t.y, iw = w0 + t.z;
        return ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) ? __ldg(&x[xbase + t.x]) : 0.f;
    }
    __device__ __forceinline__ float b(int kg, int k) const
    {
        return (kg < Kg && k < K) ? __ldg(&w[(long long)k * Kg + kg]) : 0.f;
    }
    __device__ __forceinline__ long long row_offset(int m) const
    {
        const int n = m / PQ;
        return (long long)n * K * PQ + (m - n * PQ);
    }
    __device__ __forceinline__ long long col_offset(int k) const { return (long long)k * PQ; }
};

// dgrad, one stride phase (a, b) = blockIdx.z / u, % u: the rows are the pixels (n, h, w) with (h + pad) % u = a
// and (w + pad) % u = b, written h = u·hq + a − pad, w = u·wq + b − pad; only the taps r = a + u·i, s = b + u·j
// reach them, from dy row p = hq − i, column q = wq − j. So each phase is a dense GEMM with no zero terms and no
// division: rows N·Hph·Wph, columns c, reduction kg = (k, i, j); tab[kg] = {k·P·Q, i, j, k·C·R·S + r·S + s}.
// geo = {hq0, Hph, wq0, Wph}: the phase's first hq, wq and its extent.
struct Dgrad {
    static constexpr bool A_KFAST = false;
    const float* __restrict__ dy;
    const float* __restrict__ w;
    const int4* __restrict__ tab;
    int C, HW, W, P, Q, RS, u, pa, pb, pad, Kg;  // (pa, pb): this block's phase
    int4 geo;
    long long dybase;  // this thread's A row: dy offset of image n
    int hq, wq;
    bool mvalid;

    __device__ Dgrad(const float* dy_, const float* w_, const int4* tab_, int4 geo_, int C_, int H, int W_, int K,
                     int R, int S, int P_, int Q_, int u_, int pad_, int my_m, int Mg, int Kg_)
        : dy(dy_), w(w_), tab(tab_), C(C_), HW(H * W_), W(W_), P(P_), Q(Q_), RS(R * S), u(u_),
          pa((int)blockIdx.z / u_), pb((int)blockIdx.z % u_), pad(pad_), Kg(Kg_), geo(geo_)
    {
        mvalid = my_m < Mg;
        const int plane = geo.y * geo.w;
        const int n = my_m / plane, rem = my_m - n * plane, hh = rem / geo.w;
        hq = geo.x + hh;
        wq = geo.z + rem - hh * geo.w;
        dybase = (long long)n * K * P * Q;
    }
    __device__ __forceinline__ void begin_slice(int) {}
    __device__ __forceinline__ float a(int kg, int) const
    {
        if (!mvalid || kg >= Kg) return 0.f;
        const int4 t = __ldg(&tab[kg]);
        const int p = hq - t.y, q = wq - t.z;
        if ((unsigned)p >= (unsigned)P || (unsigned)q >= (unsigned)Q) return 0.f;
        return __ldg(&dy[dybase + t.x + (long long)p * Q + q]);
    }
    __device__ __forceinline__ float b(int kg, int c) const
    {
        return (kg < Kg && c < C) ? __ldg(&w[(long long)__ldg(&tab[kg].w) + (long long)c * RS]) : 0.f;
    }
    __device__ __forceinline__ long long row_offset(int m) const
    {
        const int plane = geo.y * geo.w;
        const int n = m / plane, rem = m - n * plane, hh = rem / geo.w, ww = rem - hh * geo.w;
        const int h = u * (geo.x + hh) + pa - pad, x = u * (geo.z + ww) + pb - pad;
        return (long long)n * C * HW + (long long)h * W + x;
    }
    __device__ __forceinline__ long long col_offset(int c) const { return (long long)c * HW; }
};

// rows k, columns col = (c, r, s), reduction j = (n, p, q); tab[col] = {c·H·W + r·W + s, r, s, 0}
struct Wgrad {
    static constexpr bool A_KFAST = true;
    const float* __restrict__ x;
    const float* __restrict__ dy;
    const int4* __restrict__ tab;
    int C, H, W, K, Q, PQ, CRS, u, pad, Kg;
    long long chw, kpq;
    // this thread's reduction index for the current slice (one per thread: the loaders put j = k0 + tid % BK)
    bool jvalid;
    long long dyoff, xoff;
    int h0, w0;

    __device__ Wgrad(const float* x_, const float* dy_, const int4* tab_, int N, int C_, int H_, int W_, int K_,
                     int R, int S, int P, int Q_, int u_, int pad_)
        : x(x_), dy(dy_), tab(tab_), C(C_), H(H_), W(W_), K(K_), Q(Q_), PQ(P * Q_), CRS(C_ * R * S), u(u_),
          pad(pad_), Kg(N * P * Q_)
    {
        chw = (long long)C * H * W;
        kpq = (long long)K * PQ;
    }
    __device__ __forceinline__ void begin_slice(int k0)
    {
        const int j = k0 + (threadIdx.x % BK);
        jvalid = j < Kg;
        const int n = j / PQ, pq = j - n * PQ, p = pq / Q, q = pq - p * Q;
        dyoff = n * kpq + pq;
        h0 = p * u - pad;
        w0 = q * u - pad;
        xoff = n * chw + (long long)h0 * W + w0;
    }
    __device__ __forceinline__ float a(int, int k) const
    {
        return (jvalid && k < K) ? __ldg(&dy[dyoff + (long long)k * PQ]) : 0.f;
    }
    __device__ __forceinline__ float b(int, int col) const
    {
        if (!jvalid || col >= CRS) return 0.f;
        const int4 t = __ldg(&tab[col]);
        const int ih = h0 + t.y, iw = w0 + t.z;
        return ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) ? __ldg(&x[xoff + t.x]) : 0.f;
    }
    __device__ __forceinline__ long long row_offset(int k) const { return (long long)k * CRS; }
    __device__ __forceinline__ long long col_offset(int col) const { return col; }
};

// ------------------------------------------------------------------ the shared main loop
// Mg × Ng output tile (m0, n0) of one split (reduction slices [kt_begin, kt_end)); out already points at the
// split's buffer. bias (may be null) is added per column.
template <int BM, int BN, int TM, int TN, bool ROWS_FAST, class Op>
__device__ __forceinline__ void igemm(Op& op, float* __restrict__ out, const float* __restrict__ bias, int Mg, int Ng,
                                      int m0, int n0, int kt_begin, int kt_end)
{
    constexpr int THR_M = BM / TM, THR_N = BN / TN;
    static_assert(THR_M * THR_N == NT, "one output sub-tile per thread");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are float4 groups");
    static_assert(NT % BM == 0 || Op::A_KFAST, "row-fast A loads need BM | 256");
    constexpr int A_PER = (BM * BK + NT - 1) / NT, B_PER = (BN * BK + NT - 1) / NT;
    constexpr int PA = BM + 4, PB = BN + 4;

    __shared__ __align__(16) float As[2][BK][PA];
    __shared__ __align__(16) float Bs[2][BK][PB];

    const int tid = threadIdx.x;
    const int tr = ROWS_FAST ? tid % THR_M : tid / THR_N;
    const int tc = ROWS_FAST ? tid / THR_M : tid % THR_N;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    float ra[A_PER], rb[B_PER];
    auto load = [&](int k0) {
        op.begin_slice(k0);
#pragma unroll
        for (int i = 0; i < A_PER; ++i) {
            const int e = tid + i * NT;
            const int kk = Op::A_KFAST ? e % BK : e / BM, mm = Op::A_KFAST ? e / BK : e % BM;
            ra[i] = (e < BM * BK) ? op.a(k0 + kk, m0 + mm) : 0.f;
        }
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            const int e = tid + i * NT;
            rb[i] = (e < BN * BK) ? op.b(k0 + e % BK, n0 + e / BK) : 0.f;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int i = 0; i < A_PER; ++i) {
            const int e = tid + i * NT;
            if (e < BM * BK) {
                if (Op::A_KFAST) As[buf][e % BK][e / BK] = ra[i];
                else As[buf][e / BM][e % BM] = ra[i];
            }
        }
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            const int e = tid + i * NT;
            if (e < BN * BK) Bs[buf][e % BK][e / BK] = rb[i];
        }
    };

    load(kt_begin * BK);
    store(0);
    __syncthreads();
    for (int t = kt_begin; t < kt_end; ++t) {
        const int cur = (t - kt_begin) & 1;
        const bool more = t + 1 < kt_end;
        if (more) load((t + 1) * BK);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < TM / 4; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk][(g * THR_M + tr) * 4]);
                a[g * 4] = v.x; a[g * 4 + 1] = v.y; a[g * 4 + 2] = v.z; a[g * 4 + 3] = v.w;
            }
#pragma unroll
            for (int g = 0; g < TN / 4; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk][(g * THR_N + tc) * 4]);
                b[g * 4] = v.x; b[g * 4 + 1] = v.y; b[g * 4 + 2] = v.z; b[g * 4 + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) store(cur ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ((i / 4) * THR_M + tr) * 4 + (i % 4);
        if (m >= Mg) continue;
        const long long ro = op.row_offset(m);
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = n0 + ((j / 4) * THR_N + tc) * 4 + (j % 4);
            if (col < Ng) out[ro + op.col_offset(col)] = acc[i][j] + (bias ? __ldg(&bias[col]) : 0.f);
        }
    }
}

// Tile (m0, n0) of blockIdx.x (columns fastest: blocks that share A rows run together) and this split's slices.
struct TileCoords {
    int m0, n0, kt_begin, kt_end;
    __device__ TileCoords(int BM_, int BN_, int Ng, int Kg, int kt_per)
    {
        const int tiles_n = (Ng + BN_ - 1) / BN_;
        m0 = (int)(blockIdx.x / tiles_n) * BM_;
        n0 = (int)(blockIdx.x % tiles_n) * BN_;
        const int ktiles = (Kg + BK - 1) / BK;
        kt_begin = blockIdx.y * kt_per;
        kt_end = min(ktiles, kt_begin + kt_per);
    }
};

template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void fprop(const float* x, const float* w, const float* bias, float* out, const int4* tab,
                                      int N, int C, int H, int W, int K, int R, int S, int P, int Q, int u, int pad,
                                      int kt_per, long long split_stride)
{
    const int Mg = N * P * Q, Kg = C * R * S;
    const TileCoords tc(BM, BN, K, Kg, kt_per);
    Fprop op(x, w, tab, C, H, W, K, R, S, P, Q, u, pad, tc.m0 + threadIdx.x % BM, Mg);
    igemm<BM, BN, TM, TN, true>(op, out + blockIdx.y * split_stride, bias, Mg, K, tc.m0, tc.n0, tc.kt_begin,
                                tc.kt_end);
}

// phases[2·z] = {hq0, Hph, wq0, Wph}, phases[2·z + 1] = {table offset, reduction length, rows, 0} of phase z.
template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void dgrad(const float* dy, const float* w, float* out, const int4* tab,
                                      const int4* phases, int N, int C, int H, int W, int K, int R, int S, int P,
                                      int Q, int u, int pad, int kt_per, long long split_stride)
{
    const int4 geo = phases[2 * blockIdx.z], info = phases[2 * blockIdx.z + 1];
    const int Mg = info.z, Kg = info.y;
    const TileCoords tc(BM, BN, C, Kg, kt_per);
    if (tc.m0 >= Mg) return;  // the grid covers the largest phase
    Dgrad op(dy, w, tab + info.x, geo, C, H, W, K, R, S, P, Q, u, pad, tc.m0 + threadIdx.x % BM, Mg, Kg);
    igemm<BM, BN, TM, TN, true>(op, out + blockIdx.y * split_stride, nullptr, Mg, C, tc.m0, tc.n0, tc.kt_begin,
                                tc.kt_end);
}

template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void wgrad(const float* x, const float* dy, float* out, const int4* tab, int N, int C,
                                      int H, int W, int K, int R, int S, int P, int Q, int u, int pad, int kt_per,
                                      long long split_stride)
{
    const int CRS = C * R * S, Kg = N * P * Q;
    const TileCoords tc(BM, BN, CRS, Kg, kt_per);
    Wgrad op(x, dy, tab, N, C, H, W, K, R, S, P, Q, u, pad);
    igemm<BM, BN, TM, TN, false>(op, out + blockIdx.y * split_stride, nullptr, K, CRS, tc.m0, tc.n0, tc.kt_begin,
                                 tc.kt_end);
}

#define CONV_ARGS int N, int C, int H, int W, int K, int R, int S, int P, int Q, int u, int pad, int kt_per, \
                  long long split_stride
#define CONV_PASS N, C, H, W, K, R, S, P, Q, u, pad, kt_per, split_stride

#define FPROP(name, BM_, BN_, TM_, TN_)                                                                          \
    extern "C" __global__ void __launch_bounds__(NT, 2)                                                          \
    name(const float* x, const float* w, const float* b, float* out, const int4* tab, CONV_ARGS)                 \
    {                                                                                                            \
        fprop<BM_, BN_, TM_, TN_>(x, w, b, out, tab, CONV_PASS);                                                 \
    }
#define DGRAD(name, BM_, BN_, TM_, TN_)                                                                          \
    extern "C" __global__ void __launch_bounds__(NT, 2)                                                          \
    name(const float* dy, const float* w, float* out, const int4* tab, const int4* phases, CONV_ARGS)            \
    {                                                                                                            \
        dgrad<BM_, BN_, TM_, TN_>(dy, w, out, tab, phases, CONV_PASS);                                           \
    }
#define WGRAD(name, BM_, BN_, TM_, TN_)                                                                          \
    extern "C" __global__ void __launch_bounds__(NT, 2)                                                          \
    name(const float* x, const float* dy, float* out, const int4* tab, CONV_ARGS)                                \
    {                                                                                                            \
        wgrad<BM_, BN_, TM_, TN_>(x, dy, out, tab, CONV_PASS);                                                   \
    }

FPROP(conv_fprop_128x128, 128, 128, 8, 8)
FPROP(conv_fprop_128x64, 128, 64, 8, 4)
FPROP(conv_fprop_256x16, 256, 16, 4, 4)
DGRAD(conv_dgrad_128x128, 128, 128, 8, 8)
DGRAD(conv_dgrad_128x64, 128, 64, 8, 4)
DGRAD(conv_dgrad_256x16, 256, 16, 4, 4)
WGRAD(conv_wgrad_128x128, 128, 128, 8, 8)
WGRAD(conv_wgrad_64x128, 64, 128, 4, 8)

// dgrad for C ≤ 4, the "narrow" configuration of the same GEMM, one stride phase per grid.z (as Dgrad): a tile
// of ≤ 4 columns would leave most of a 16-wide shared-memory tile idle (the 7×7 stride-2 C = 3 layer ran at 5% of
// its FMAs). Here each thread owns one row (pixel) and all C ≤ 4 columns in 4 registers; the B operand (this
// phase's weights, KCH output channels × taps × 4 channels, zero-padded to float4) is staged in shared memory and
// read as a broadcast float4; the A operand (dy) is gathered straight into registers, since each element is used
// by only C FMAs and there is no reuse across threads to stage. Adjacent threads hold adjacent pixels of a phase
// row, so the dy loads of a warp are coalesced. phases[2·z + 1].w = the phase's number of row taps (ri).
#define KCH 32
extern "C" __global__ void __launch_bounds__(NT)
conv_dgrad_narrow(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                  const int4* __restrict__ phases, int N, int C, int H, int W, int K, int R, int S, int P, int Q,
                  int u, int pad)
{
    extern __shared__ float4 ws4[];  // [KCH][taps]
    const int z = blockIdx.z, pa = z / u, pb = z % u;
    const int4 geo = phases[2 * z], info = phases[2 * z + 1];
    const int Mg = info.z, ri = info.w, sj = ri ? info.y / (K * ri) : 0, taps = ri * sj;
    const int m = blockIdx.x * NT + threadIdx.x;
    if (blockIdx.x * NT >= Mg) return;  // the grid covers the largest phase
    const bool valid = m < Mg;
    const int plane = geo.y * geo.w;
    const int n = valid ? m / plane : 0, rem = m - n * plane, hh = rem / geo.w, ww = rem - hh * geo.w;
    const int hq = geo.x + hh, wq = geo.z + ww, RS = R * S;
    const long long PQ = (long long)P * Q;
    const float* dyn = dy + (long long)n * K * PQ;
    float acc0 = 0.f, acc1 = 0.f, acc2 = 0.f, acc3 = 0.f;
    for (int k0 = 0; k0 < K; k0 += KCH) {
        const int kch = min(KCH, K - k0);
        for (int e = threadIdx.x; e < kch * taps; e += NT) {
            const int kk = e / taps, tp = e - kk * taps, i = tp / sj;
            const float* wk = w + (long long)(k0 + kk) * C * RS + (pa + u * i) * S + pb + u * (tp - i * sj);
            ws4[e] = make_float4(wk[0], C > 1 ? wk[RS] : 0.f, C > 2 ? wk[2 * RS] : 0.f, C > 3 ? wk[3 * RS] : 0.f);
        }
        __syncthreads();
        if (valid) {
            for (int kk = 0; kk < kch; ++kk) {
                const float* dyk = dyn + (long long)(k0 + kk) * PQ;
                const float4* wt = ws4 + kk * taps;
                for (int i = 0; i < ri; ++i) {
                    const int p = hq - i;
                    if ((unsigned)p >= (unsigned)P) continue;
                    const float* row = dyk + (long long)p * Q;
#pragma unroll 4
                    for (int j = 0; j < sj; ++j) {
                        const int q = wq - j;
                        if ((unsigned)q < (unsigned)Q) {
                            const float v = __ldg(row + q);
                            const float4 c = wt[i * sj + j];
                            acc0 = fmaf(v, c.x, acc0);
                            acc1 = fmaf(v, c.y, acc1);
                            acc2 = fmaf(v, c.z, acc2);
                            acc3 = fmaf(v, c.w, acc3);
                        }
                    }
                }
            }
        }
        __syncthreads();
    }
    if (!valid) return;
    const long long HW = (long long)H * W;
    float* out = dx + (long long)n * C * HW + (long long)(u * hq + pa - pad) * W + (u * wq + pb - pad);
    const float acc[4] = {acc0, acc1, acc2, acc3};
#pragma unroll
    for (int c = 0; c < 4; ++c)
        if (c < C) out[c * HW] = acc[c];
}

// out[i] = Σ_s ws[s·total + i] (+ bias[(i / plane) % nbias]): the fixed-order sum of the split-K partials.
extern "C" __global__ void splitk_reduce(const float* __restrict__ ws, float* __restrict__ out, long long total,
                                         int splits, const float* __restrict__ bias, long long plane, int nbias)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int k = 0; k < splits; ++k) s += ws[k * total + i];
        if (bias) s += bias[(i / plane) % nbias];
        out[i] = s;
    }
}

// db[k] = Σ_{n,p,q} dy[n,k,p,q]: one block per k; threads stride over the N·P·Q elements of channel k, then a
// warp-shuffle and shared-memory reduction in a fixed order.
extern "C" __global__ void conv_bias_grad(const float* __restrict__ dy, float* __restrict__ db, int N, int K, int PQ)
{
    const int k = blockIdx.x;
    float acc = 0.f;
    const long long total = (long long)N * PQ;
    for (long long i = threadIdx.x; i < total; i += blockDim.x) {
        const long long n = i / PQ;
        acc += dy[(n * K + k) * PQ + (i - n * PQ)];
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    __shared__ float warp_sums[32];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); ++i) s += warp_sums[i];
        db[k] = s;
    }
}
