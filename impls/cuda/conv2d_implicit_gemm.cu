// conv2d_implicit_gemm.cu: implicit-GEMM convolution, all three passes, no im2col buffer in global memory.
//
// Formula (seed 003, §2.6.1), NCHW / KCRS, per-axis stride (uh, uw), padding (ph, pw) and dilation (dh, dw), G
// groups of Cpg = C/G input and Kpg = K/G output channels (w is K × Cpg × R × S; g = k / Kpg, C' = g·Cpg + c):
//   fprop  y[n,k,p,q]   = b[k] + Σ_{c<Cpg,r,s} x[n,C',p·uh+r·dh−ph,q·uw+s·dw−pw]·w[k,c,r,s]
//   dgrad  dx[n,C',h,w] = Σ_{k in g,r,s} dy[n,k,(h+ph−r·dh)/uh,(w+pw−s·dw)/uw]·w[k,c,r,s]  (where uh, uw divide)
//   wgrad  dw[k,c,r,s]  = Σ_{n,p,q} dy[n,k,p,q]·x[n,C',p·uh+r·dh−ph,q·uw+s·dw−pw]
// As GEMMs per group (rows × columns × reduction): fprop (N·P·Q) × Kpg × (Cpg·R·S), dgrad (N·H·W) × Cpg ×
// (Kpg·R·S), wgrad Kpg × (Cpg·R·S) × (N·P·Q); the group is a grid dimension (blockIdx.z), its base offsets are
// added to the pointers once. The GEMM operands are never materialised: each thread gathers its elements of the
// current slice straight from x, w or dy, with zeros for padding and for out-of-range rows/columns.
//
// Strategy (one template, `igemm`, for the three passes; the pass is a small struct that says where a GEMM
// element lives):
// - 256 threads compute a BM×BN output tile; each thread a TM×TN register sub-tile, as TM/4 × TN/4 groups of
//   4×4, read from shared memory as float4 fragments. Configurations: 128×128 (8×8 per thread), 128×64 (8×4),
//   64×128 (4×8) and 256×16 (4×4, for ≤ 16 GEMM columns); and for dgrad with C ≤ 4 a "narrow" kernel (one pixel
//   × all C columns per thread, weights in shared memory, see conv_dgrad_narrow).
// - Small layers (fprop/dgrad with ≤ 32 GEMM columns, wgrad with ≤ 32 rows, and a table of ≤ TAB_MAX entries:
//   the thesis layers): 128×32 (wgrad 32×128) tiles, 4×4 per thread, with BK = 32 and the whole table staged in
//   shared memory once (`_s` kernels). On such layers a block's time is the chain of its slices, each a dependent
//   pair of gathers (table entry, then x or dy) from a cold L2, about 2 µs (the ~25 µs floor of the BK = 8
//   kernels with split-K): four times fewer slices, and no table load inside the chain, cut that chain about
//   eightfold.
// - The reduction advances BK = 8 (small layers: 32) at a time; slices are stored k-major in double-buffered
//   shared memory (rows padded by 4 floats: conflict-free stores, 16-byte aligned rows); while slice t is multiplied, the thread holds
//   slice t+1 in registers (its global gathers overlap the arithmetic); one __syncthreads per slice.
// - The reduction index → (c, r, s) or (k, i, j) decomposition, dilation included, is precomputed by the host
//   into a small int4 table (`tab`, L1-resident, the same entry for many threads: broadcast), so the inner
//   gathers do no integer division. Each thread's row decomposition (n, p, q) is done once, before the loop (fprop, dgrad), or once per
//   slice (wgrad, whose reduction runs over n, p, q).
// - dgrad with stride uh × uw runs uh·uw GEMMs, one per output phase (grid.z = group·phases + phase): the
//   pixels with (h + ph) % uh = a and (w + pw) % uw = b receive only the taps with r·dh ≡ a (mod uh) and
//   s·dw ≡ b (mod uw), so no zero terms are multiplied (a plain implicit GEMM would multiply uh·uw − 1 zeros for
//   every useful term) and no divisions by the stride are needed.
// - Threads that gather along a contiguous dimension are adjacent in the warp: fprop/dgrad A (output pixels, so
//   consecutive q/w), wgrad A and B (consecutive q along the reduction).
// - Split-K: when the output tiles alone cannot fill the GPU (late ResNet layers, every wgrad), grid.y splits the
//   reduction; each split writes its partial tile to a workspace and `splitk_reduce` (≥ 32 splits:
//   `splitk_reduce_warp`, a warp per output) sums the splits in a fixed order (+ bias for fprop): deterministic,
//   no atomics.
// - Offsets are 64-bit (long long) wherever a tensor index can pass 2^31.
// - Depthwise convolution (G = C = K: one input and one output channel per group) is no GEMM worth tiling (one
//   column, R·S reduction): it runs the direct kernels at the end of this file.
// - conv2d_bias_relu (y = max(0, conv + b)) compiles this file a second time with -DCONV_RELU=1: fprop's
//   outputs pass through ReLU where they are written (the GEMM epilogue without split-K, the split-K reduction,
//   the depthwise kernel), so the pre-activation never reaches memory. impls/cuda/conv2d.py launches only fprop's
//   kernels from that module.
// Strict IEEE float32: compiled without fast-math; each product-sum is one fused multiply-add.

#define NT 256
#define BK 8
#ifndef CONV_RELU
#define CONV_RELU 0
#endif

// OPAQUE_TID(tid): threadIdx.x read through volatile asm, so that the compiler recomputes the loaders' indices
// from it where they are used instead of keeping them live across the main loop (as gemm_warptile.cu does): with
// plain threadIdx.x the 128×128 and 128×32 kernels spilled 16–148 bytes under __launch_bounds__(256, 2), with it
// none does (sm_80, sm_90; tests/impls/cuda/test_kernel_spills.py). The host C++ build (the CPU emulator of
// tests/impls/cuda/cpu_cuda.py) reads threadIdx.x.
#ifdef __CUDA_ARCH__
#define OPAQUE_TID(tid) asm volatile("mov.u32 %0, %%tid.x;" : "=r"(tid))
#else
#define OPAQUE_TID(tid) (tid = (int)threadIdx.x)
#endif

// fprop's output epilogue: v, or ReLU(v) in the -DCONV_RELU=1 module (eltwise.cu's relu_f: NaN maps to 0 there too).
__device__ __forceinline__ float fprop_out(float v) { return CONV_RELU ? (v > 0.f ? v : 0.f) : v; }

// ------------------------------------------------------------------ the three passes as GEMM element accessors
// Each provides: a(kg, m) and b(kg, col) (the GEMM operand elements, 0 outside), begin_slice(k0) (per-slice
// setup), row_offset(m) and col_offset(col) (output element = out[row_offset + col_offset]).
// A_KFAST: A's loader walks the reduction index fastest across threads (wgrad), else the row index (fprop, dgrad).
// RELU_OUT: the epilogue applies fprop_out (fprop only; its split-K partials are left raw for splitk_reduce).

template <bool STAB>  // STAB: tab points at shared memory (the small-layer kernels), else at global memory
struct Fprop {  // rows m = (n, p, q), columns k < Kpg, reduction kg = (c, r, s); tab[kg] = {c·H·W + r·dh·W + s·dw,
                // r·dh, s·dw, 0}. x, w point at the group's first channel and filter.
    static constexpr bool A_KFAST = false;
    static constexpr bool RELU_OUT = CONV_RELU != 0;
    const float* __restrict__ x;
    const float* __restrict__ w;
    const int4* __restrict__ tab;
    int H, W, K, Ktot, PQ, Kg;  // K: this GEMM's columns (Kpg); Ktot: all output channels (y's image stride)
    long long xbase;  // this thread's A row: x offset of (n, 0, p·uh−ph, q·uw−pw)
    int h0, w0;
    bool mvalid;

    __device__ Fprop(const float* x_, const float* w_, const int4* tab_, int C, int Cpg, int H_, int W_, int K_,
                     int Kpg, int R, int S, int P, int Q, int uh, int uw, int ph, int pw, int my_m, int Mg)
        : x(x_), w(w_), tab(tab_), H(H_), W(W_), K(Kpg), Ktot(K_), PQ(P * Q), Kg(Cpg * R * S)
    {
        mvalid = my_m < Mg;
        const int n = my_m / PQ, pq = my_m - n * PQ, p = pq / Q, q = pq - p * Q;
        h0 = p * uh - ph;
        w0 = q * uw - pw;
        xbase = (long long)n * C * H * W + (long long)h0 * W + w0;
    }
    __device__ __forceinline__ void begin_slice(int) {}
    __device__ __forceinline__ int4 entry(int kg) const { return STAB ? tab[kg] : __ldg(&tab[kg]); }
    __device__ __forceinline__ float a(int kg, int) const
    {
        if (!mvalid || kg >= Kg) return 0.f;
        const int4 t = entry(kg);
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
        return (long long)n * Ktot * PQ + (m - n * PQ);
    }
    __device__ __forceinline__ long long col_offset(int k) const { return (long long)k * PQ; }
};

// dgrad, one stride phase (a, b): the rows are the pixels (n, h, w) with (h + ph) % uh = a and (w + pw) % uw = b,
// written h = uh·hq + a − ph, w = uw·wq + b − pw; only the taps with r·dh ≡ a (mod uh), s·dw ≡ b (mod uw) reach
// them, from dy row p = hq − (r·dh − a)/uh, column q = wq − (s·dw − b)/uw. So each phase is a dense GEMM with no
// zero terms and no division: rows N·Hph·Wph, columns c < Cpg, reduction kg = (k, r, s) over the group's Kpg
// output channels and the phase's taps; tab[kg] = {k·P·Q, (r·dh − a)/uh, (s·dw − b)/uw, k·Cpg·R·S + r·S + s}.
// geo = {hq0, Hph, wq0, Wph}: the phase's first hq, wq and its extent. dy, w and the output point at the group.
template <bool STAB>  // STAB: tab points at shared memory (this phase's entries), else at global memory
struct Dgrad {
    static constexpr bool A_KFAST = false;
    static constexpr bool RELU_OUT = false;
    const float* __restrict__ dy;
    const float* __restrict__ w;
    const int4* __restrict__ tab;
    int C, Cpg, HW, W, P, Q, RS, uh, uw, pa, pb, ph, pw, Kg;  // (pa, pb): this block's phase
    int4 geo;
    long long dybase;  // this thread's A row: dy offset of image n
    int hq, wq;
    bool mvalid;

    __device__ Dgrad(const float* dy_, const float* w_, const int4* tab_, int4 geo_, int phase, int C_, int Cpg_,
                     int H, int W_, int K, int R, int S, int P_, int Q_, int uh_, int uw_, int ph_, int pw_, int my_m,
                     int Mg, int Kg_)
        : dy(dy_), w(w_), tab(tab_), C(C_), Cpg(Cpg_), HW(H * W_), W(W_), P(P_), Q(Q_), RS(R * S), uh(uh_),
          uw(uw_), pa(phase / uw_), pb(phase % uw_), ph(ph_), pw(pw_), Kg(Kg_), geo(geo_)
    {
        mvalid = my_m < Mg;
        const int plane = geo.y * geo.w;
        const int n = my_m / plane, rem = my_m - n * plane, hh = rem / geo.w;
        hq = geo.x + hh;
        wq = geo.z + rem - hh * geo.w;
        dybase = (long long)n * K * P * Q;
    }
    __device__ __forceinline__ void begin_slice(int) {}
    __device__ __forceinline__ int4 entry(int kg) const { return STAB ? tab[kg] : __ldg(&tab[kg]); }
    __device__ __forceinline__ float a(int kg, int) const
    {
        if (!mvalid || kg >= Kg) return 0.f;
        const int4 t = entry(kg);
        const int p = hq - t.y, q = wq - t.z;
        if ((unsigned)p >= (unsigned)P || (unsigned)q >= (unsigned)Q) return 0.f;
        return __ldg(&dy[dybase + t.x + (long long)p * Q + q]);
    }
    __device__ __forceinline__ float b(int kg, int c) const
    {
        return (kg < Kg && c < Cpg) ? __ldg(&w[(long long)entry(kg).w + (long long)c * RS]) : 0.f;
    }
    __device__ __forceinline__ long long row_offset(int m) const
    {
        const int plane = geo.y * geo.w;
        const int n = m / plane, rem = m - n * plane, hh = rem / geo.w, ww = rem - hh * geo.w;
        const int h = uh * (geo.x + hh) + pa - ph, x = uw * (geo.z + ww) + pb - pw;
        return (long long)n * C * HW + (long long)h * W + x;
    }
    __device__ __forceinline__ long long col_offset(int c) const { return (long long)c * HW; }
};

// rows k < Kpg, columns col = (c, r, s) over the group's Cpg·R·S, reduction j = (n, p, q);
// tab[col] = {c·H·W + r·dh·W + s·dw, r·dh, s·dw, 0}. x, dy and the output point at the group. BKT: the slice
// (each thread's reduction index is k0 + tid % BKT); STAB: tab points at shared memory.
template <int BKT, bool STAB>
struct Wgrad {
    static constexpr bool A_KFAST = true;
    static constexpr bool RELU_OUT = false;
    const float* __restrict__ x;
    const float* __restrict__ dy;
    const int4* __restrict__ tab;
    int H, W, K, Q, PQ, CRS, uh, uw, ph, pw, Kg;  // K: this GEMM's rows (Kpg)
    long long chw, kpq;  // image strides of x and dy (all channels)
    // this thread's reduction index for the current slice (one per thread: the loaders put j = k0 + tid % BKT)
    bool jvalid;
    long long dyoff, xoff;
    int h0, w0;

    __device__ Wgrad(const float* x_, const float* dy_, const int4* tab_, int N, int C, int Cpg, int H_, int W_,
                     int Ktot, int Kpg, int R, int S, int P, int Q_, int uh_, int uw_, int ph_, int pw_)
        : x(x_), dy(dy_), tab(tab_), H(H_), W(W_), K(Kpg), Q(Q_), PQ(P * Q_), CRS(Cpg * R * S), uh(uh_), uw(uw_),
          ph(ph_), pw(pw_), Kg(N * P * Q_)
    {
        chw = (long long)C * H * W;
        kpq = (long long)Ktot * PQ;
    }
    __device__ __forceinline__ void begin_slice(int k0)
    {
        const int j = k0 + (threadIdx.x % BKT);
        jvalid = j < Kg;
        const int n = j / PQ, pq = j - n * PQ, p = pq / Q, q = pq - p * Q;
        dyoff = n * kpq + pq;
        h0 = p * uh - ph;
        w0 = q * uw - pw;
        xoff = n * chw + (long long)h0 * W + w0;
    }
    __device__ __forceinline__ float a(int, int k) const
    {
        return (jvalid && k < K) ? __ldg(&dy[dyoff + (long long)k * PQ]) : 0.f;
    }
    __device__ __forceinline__ float b(int, int col) const
    {
        if (!jvalid || col >= CRS) return 0.f;
        const int4 t = STAB ? tab[col] : __ldg(&tab[col]);
        const int ih = h0 + t.y, iw = w0 + t.z;
        return ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) ? __ldg(&x[xoff + t.x]) : 0.f;
    }
    __device__ __forceinline__ long long row_offset(int k) const { return (long long)k * CRS; }
    __device__ __forceinline__ long long col_offset(int col) const { return col; }
};

// ------------------------------------------------------------------ the shared main loop
// Mg × Ng output tile (m0, n0) of one split (reduction slices [kt_begin, kt_end)); out already points at the
// split's buffer. bias (may be null) is added per column, then Op::RELU_OUT's ReLU where there is no split-K.
// BKT: the reduction slice (BK = 8, or 32 for small layers).
template <int BM, int BN, int TM, int TN, int BKT, bool ROWS_FAST, class Op>
__device__ __forceinline__ void igemm(Op& op, float* __restrict__ out, const float* __restrict__ bias, int Mg, int Ng,
                                      int m0, int n0, int kt_begin, int kt_end)
{
    constexpr int THR_M = BM / TM, THR_N = BN / TN;
    static_assert(THR_M * THR_N == NT, "one output sub-tile per thread");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are float4 groups");
    static_assert(NT % BM == 0 || Op::A_KFAST, "row-fast A loads need BM | 256");
    static_assert(NT % BKT == 0, "k-fast loads keep each thread on one reduction index (tid % BKT)");
    constexpr int A_PER = (BM * BKT + NT - 1) / NT, B_PER = (BN * BKT + NT - 1) / NT;
    constexpr int PA = BM + 4, PB = BN + 4;

    __shared__ __align__(16) float As[2][BKT][PA];
    __shared__ __align__(16) float Bs[2][BKT][PB];

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
        int tid;
        OPAQUE_TID(tid);
        op.begin_slice(k0);
#pragma unroll
        for (int i = 0; i < A_PER; ++i) {
            const int e = tid + i * NT;
            const int kk = Op::A_KFAST ? e % BKT : e / BM, mm = Op::A_KFAST ? e / BKT : e % BM;
            ra[i] = (e < BM * BKT) ? op.a(k0 + kk, m0 + mm) : 0.f;
        }
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            const int e = tid + i * NT;
            rb[i] = (e < BN * BKT) ? op.b(k0 + e % BKT, n0 + e / BKT) : 0.f;
        }
    };
    auto store = [&](int buf) {
        int tid = threadIdx.x;
        if (BKT != BK) OPAQUE_TID(tid);  // the BK = 32 kernels' stores too (an opaque read here spills the BK = 8 ones)
#pragma unroll
        for (int i = 0; i < A_PER; ++i) {
            const int e = tid + i * NT;
            if (e < BM * BKT) {
                if (Op::A_KFAST) As[buf][e % BKT][e / BKT] = ra[i];
                else As[buf][e / BM][e % BM] = ra[i];
            }
        }
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            const int e = tid + i * NT;
            if (e < BN * BKT) Bs[buf][e % BKT][e / BKT] = rb[i];
        }
    };

    load(kt_begin * BKT);
    store(0);
    __syncthreads();
    for (int t = kt_begin; t < kt_end; ++t) {
        const int cur = (t - kt_begin) & 1;
        const bool more = t + 1 < kt_end;
        if (more) load((t + 1) * BKT);
#pragma unroll
        for (int kk = 0; kk < BKT; ++kk) {
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

    const bool relu = Op::RELU_OUT && gridDim.y == 1;  // with split-K, splitk_reduce applies it to the sum

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ((i / 4) * THR_M + tr) * 4 + (i % 4);
        if (m >= Mg) continue;
        const long long ro = op.row_offset(m);
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = n0 + ((j / 4) * THR_N + tc) * 4 + (j % 4);
            if (col < Ng) {
                const float v = acc[i][j] + (bias ? __ldg(&bias[col]) : 0.f);
                out[ro + op.col_offset(col)] = relu ? fprop_out(v) : v;
            }
        }
    }
}

// Tile (m0, n0) of blockIdx.x (columns fastest: blocks that share A rows run together) and this split's slices.
struct TileCoords {
    int m0, n0, kt_begin, kt_end;
    __device__ TileCoords(int BM_, int BN_, int BK_, int Ng, int Kg, int kt_per)
    {
        const int tiles_n = (Ng + BN_ - 1) / BN_;
        m0 = (int)(blockIdx.x / tiles_n) * BM_;
        n0 = (int)(blockIdx.x % tiles_n) * BN_;
        const int ktiles = (Kg + BK_ - 1) / BK_;
        kt_begin = blockIdx.y * kt_per;
        kt_end = min(ktiles, kt_begin + kt_per);
    }
};

// The geometry arguments of every kernel here, in the order of impls/cuda/conv2d.py's _args (C, K: all groups).
#define CONV_GEOMETRY int N, int C, int H, int W, int K, int R, int S, int P, int Q, int uh, int uw, int ph, int pw, \
                      int dh, int dw, int G

// The small-layer kernels' index table in shared memory: at most TAB_MAX int4 entries (fprop, wgrad Cpg·R·S, dgrad
// a phase's Kpg·taps; impls/cuda/conv2d.py checks). 352 entries (5.5 KiB) fit beside the 128×32×32 tiles' 42 KiB.
#define TAB_MAX 352

// Copy n ≤ TAB_MAX table entries to shared memory (one round trip for the whole reduction) and wait for them.
__device__ __forceinline__ void stage_table(int4* dst, const int4* __restrict__ src, int n)
{
    for (int e = threadIdx.x; e < n; e += NT) dst[e] = __ldg(&src[e]);
    __syncthreads();
}

// fprop: grid (tiles, splits, G); group g = blockIdx.z reads channels [g·Cpg, (g+1)·Cpg) and writes [g·Kpg, ...).
template <int BM, int BN, int TM, int TN, int BKT, bool STAB>
__device__ __forceinline__ void fprop(const float* x, const float* w, const float* bias, float* out, const int4* tab,
                                      CONV_GEOMETRY, int kt_per, long long split_stride)
{
    const int Cpg = C / G, Kpg = K / G, g = blockIdx.z;
    const int Mg = N * P * Q, Kg = Cpg * R * S;
    const TileCoords tc(BM, BN, BKT, Kpg, Kg, kt_per);
    __shared__ int4 stab[STAB ? TAB_MAX : 1];
    if (STAB) stage_table(stab, tab, Kg);
    Fprop<STAB> op(x + (long long)g * Cpg * H * W, w + (long long)g * Kpg * Kg, STAB ? stab : tab, C, Cpg, H, W, K,
                   Kpg, R, S, P, Q, uh, uw, ph, pw, tc.m0 + threadIdx.x % BM, Mg);
    igemm<BM, BN, TM, TN, BKT, true>(op, out + blockIdx.y * split_stride + (long long)g * Kpg * P * Q,
                                     bias ? bias + g * Kpg : nullptr, Mg, Kpg, tc.m0, tc.n0, tc.kt_begin, tc.kt_end);
}

// dgrad: grid (tiles, splits, G·uh·uw), blockIdx.z = g·uh·uw + phase; phases[2·z] = {hq0, Hph, wq0, Wph},
// phases[2·z + 1] = {table offset, reduction length, rows, row taps} of phase z (the same for every group).
template <int BM, int BN, int TM, int TN, int BKT, bool STAB>
__device__ __forceinline__ void dgrad(const float* dy, const float* w, float* out, const int4* tab,
                                      const int4* phases, CONV_GEOMETRY, int kt_per, long long split_stride)
{
    const int nph = uh * uw, g = blockIdx.z / nph, z = blockIdx.z % nph, Cpg = C / G, Kpg = K / G;
    const int4 geo = phases[2 * z], info = phases[2 * z + 1];
    const int Mg = info.z, Kg = info.y;
    const TileCoords tc(BM, BN, BKT, Cpg, Kg, kt_per);
    if (tc.m0 >= Mg) return;  // the grid covers the largest phase
    __shared__ int4 stab[STAB ? TAB_MAX : 1];
    if (STAB) stage_table(stab, tab + info.x, Kg);
    Dgrad<STAB> op(dy + (long long)g * Kpg * P * Q, w + (long long)g * Kpg * Cpg * R * S, STAB ? stab : tab + info.x,
                   geo, z, C, Cpg, H, W, K, R, S, P, Q, uh, uw, ph, pw, tc.m0 + threadIdx.x % BM, Mg, Kg);
    igemm<BM, BN, TM, TN, BKT, true>(op, out + blockIdx.y * split_stride + (long long)g * Cpg * H * W, nullptr, Mg,
                                     Cpg, tc.m0, tc.n0, tc.kt_begin, tc.kt_end);
}

// wgrad: grid (tiles, splits, G); group g writes dw rows [g·Kpg, (g+1)·Kpg).
template <int BM, int BN, int TM, int TN, int BKT, bool STAB>
__device__ __forceinline__ void wgrad(const float* x, const float* dy, float* out, const int4* tab, CONV_GEOMETRY,
                                      int kt_per, long long split_stride)
{
    const int Cpg = C / G, Kpg = K / G, g = blockIdx.z;
    const int CRS = Cpg * R * S, Kg = N * P * Q;
    const TileCoords tc(BM, BN, BKT, CRS, Kg, kt_per);
    __shared__ int4 stab[STAB ? TAB_MAX : 1];
    if (STAB) stage_table(stab, tab, CRS);
    Wgrad<BKT, STAB> op(x + (long long)g * Cpg * H * W, dy + (long long)g * Kpg * P * Q, STAB ? stab : tab, N, C,
                        Cpg, H, W, K, Kpg, R, S, P, Q, uh, uw, ph, pw);
    igemm<BM, BN, TM, TN, BKT, false>(op, out + blockIdx.y * split_stride + (long long)g * Kpg * CRS, nullptr, Kpg,
                                      CRS, tc.m0, tc.n0, tc.kt_begin, tc.kt_end);
}

#define CONV_ARGS CONV_GEOMETRY, int kt_per, long long split_stride
#define CONV_PASS N, C, H, W, K, R, S, P, Q, uh, uw, ph, pw, dh, dw, G, kt_per, split_stride

#define FPROP(name, BM_, BN_, TM_, TN_, BK_, STAB_, MINB_)                                                       \
    extern "C" __global__ void __launch_bounds__(NT, MINB_)                                                      \
    name(const float* x, const float* w, const float* b, float* out, const int4* tab, CONV_ARGS)                 \
    {                                                                                                            \
        fprop<BM_, BN_, TM_, TN_, BK_, STAB_>(x, w, b, out, tab, CONV_PASS);                                     \
    }
#define DGRAD(name, BM_, BN_, TM_, TN_, BK_, STAB_, MINB_)                                                       \
    extern "C" __global__ void __launch_bounds__(NT, MINB_)                                                      \
    name(const float* dy, const float* w, float* out, const int4* tab, const int4* phases, CONV_ARGS)            \
    {                                                                                                            \
        dgrad<BM_, BN_, TM_, TN_, BK_, STAB_>(dy, w, out, tab, phases, CONV_PASS);                               \
    }
#define WGRAD(name, BM_, BN_, TM_, TN_, BK_, STAB_, MINB_)                                                       \
    extern "C" __global__ void __launch_bounds__(NT, MINB_)                                                      \
    name(const float* x, const float* dy, float* out, const int4* tab, CONV_ARGS)                                \
    {                                                                                                            \
        wgrad<BM_, BN_, TM_, TN_, BK_, STAB_>(x, dy, out, tab, CONV_PASS);                                       \
    }

FPROP(conv_fprop_128x128, 128, 128, 8, 8, BK, false, 2)
FPROP(conv_fprop_128x64, 128, 64, 8, 4, BK, false, 2)
FPROP(conv_fprop_256x16, 256, 16, 4, 4, BK, false, 2)
FPROP(conv_fprop_128x32_s, 128, 32, 4, 4, 32, true, 2)
DGRAD(conv_dgrad_128x128, 128, 128, 8, 8, BK, false, 2)
DGRAD(conv_dgrad_128x64, 128, 64, 8, 4, BK, false, 2)
DGRAD(conv_dgrad_256x16, 256, 16, 4, 4, BK, false, 2)
DGRAD(conv_dgrad_128x32_s, 128, 32, 4, 4, 32, true, 2)
WGRAD(conv_wgrad_128x128, 128, 128, 8, 8, BK, false, 2)
WGRAD(conv_wgrad_64x128, 64, 128, 4, 8, BK, false, 2)
WGRAD(conv_wgrad_32x128_s, 32, 128, 4, 4, 32, true, 2)

// dgrad for C ≤ 4, the "narrow" configuration of the same GEMM, one stride phase per grid.z (as Dgrad): a tile
// of ≤ 4 columns would leave most of a 16-wide shared-memory tile idle (the 7×7 stride-2 C = 3 layer ran at 5% of
// its FMAs). Here each thread owns one row (pixel) and all C ≤ 4 columns in 4 registers; the B operand (this
// phase's weights, KCH output channels × taps × 4 channels, zero-padded to float4) is staged in shared memory and
// read as a broadcast float4; the A operand (dy) is gathered straight into registers, since each element is used
// by only C FMAs and there is no reuse across threads to stage. Adjacent threads hold adjacent pixels of a phase
// row, so the dy loads of a warp are coalesced. phases[2·z + 1].w = the phase's number of row taps (ri).
// Used for G = 1 and no dilation only (the taps of phase (a, b) are then r = a + uh·i, s = b + uw·j).
#define KCH 32
extern "C" __global__ void __launch_bounds__(NT)
conv_dgrad_narrow(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                  const int4* __restrict__ phases, CONV_GEOMETRY)
{
    extern __shared__ float4 ws4[];  // [KCH][taps]
    const int z = blockIdx.z, pa = z / uw, pb = z % uw;
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
            const float* wk = w + (long long)(k0 + kk) * C * RS + (pa + uh * i) * S + pb + uw * (tp - i * sj);
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
    float* out = dx + (long long)n * C * HW + (long long)(uh * hq + pa - ph) * W + (uw * wq + pb - pw);
    const float acc[4] = {acc0, acc1, acc2, acc3};
#pragma unroll
    for (int c = 0; c < 4; ++c)
        if (c < C) out[c * HW] = acc[c];
}

// out[i] = Σ_s ws[s·total + i] (+ bias[(i / plane) % nbias]): the fixed-order sum of the split-K partials (through
// fprop_out: ReLU in the -DCONV_RELU=1 module, which only fprop launches).
extern "C" __global__ void splitk_reduce(const float* __restrict__ ws, float* __restrict__ out, long long total,
                                         int splits, const float* __restrict__ bias, long long plane, int nbias)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int k = 0; k < splits; ++k) s += ws[k * total + i];
        if (bias) s += bias[(i / plane) % nbias];
        out[i] = fprop_out(s);
    }
}

// The same sum with one warp per output, for many splits (≥ 32, impls/cuda/conv2d.py: WARP_REDUCE_SPLITS): lane l
// adds the splits l, l + 32, ... in order, then a fixed shuffle tree adds the lanes (deterministic, no atomics).
// With few outputs (wgrad of a small layer: K·C·R·S ≈ 10^3 partial tiles of 100+ splits) the one-thread-per-output
// sum is a chain of `splits` loads on a few hundred threads; here each lane issues splits / 32 of them.
extern "C" __global__ void splitk_reduce_warp(const float* __restrict__ ws, float* __restrict__ out, long long total,
                                              int splits, const float* __restrict__ bias, long long plane, int nbias)
{
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < total; i += warps) {
        float s = 0.f;
        for (int k = lane; k < splits; k += 32) s += ws[k * total + i];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
        if (lane == 0) out[i] = fprop_out(s + (bias ? bias[(i / plane) % nbias] : 0.f));
    }
}

// ------------------------------------------------------------------ depthwise (G = C = K)
// y[n,c,p,q] = b[c] + Σ_{r,s} x[n,c,p·uh+r·dh−ph,q·uw+s·dw−pw]·w[c,0,r,s]: each (n, c) plane is convolved with its
// own R×S filter, 2·R·S FLOPs per output, so the op is bound by memory and the aim is to read x once.
// Strategy: a block computes a DW_TP×DW_TQ (8×32) output tile of one (n, c) plane (grid: tiles, N·C); it stages
// the input patch those outputs read ((8−1)·uh + (R−1)·dh + 1 rows × (32−1)·uw + (S−1)·dw + 1 columns, zeros for
// the padding) and the filter in dynamic shared memory; the 256 threads cover the 8×32 tile, one output each.
// Adjacent threads take adjacent q: coalesced patch loads and output stores, shared-memory reads that stride by
// uw. The host checks that the patch fits in shared memory.
#define DW_TP 8
#define DW_TQ 32
extern "C" __global__ void __launch_bounds__(NT)
conv_dw_fprop(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
              float* __restrict__ y, CONV_GEOMETRY)
{
    extern __shared__ float smem[];  // [R·S filter][patch]
    const int tiles_q = (Q + DW_TQ - 1) / DW_TQ;
    const int p0 = (int)(blockIdx.x / tiles_q) * DW_TP, q0 = (int)(blockIdx.x % tiles_q) * DW_TQ;
    const long long plane = blockIdx.y;  // n·C + c
    const int c = (int)(plane % C);
    const int ph_rows = (DW_TP - 1) * uh + (R - 1) * dh + 1, ph_cols = (DW_TQ - 1) * uw + (S - 1) * dw + 1;
    float* wf = smem;
    float* patch = smem + R * S;
    const float* xp = x + plane * H * W;
    for (int e = threadIdx.x; e < R * S; e += NT) wf[e] = w[(long long)c * R * S + e];
    const int h0 = p0 * uh - ph, w0 = q0 * uw - pw;
    for (int e = threadIdx.x; e < ph_rows * ph_cols; e += NT) {
        const int i = e / ph_cols, j = e - i * ph_cols, h = h0 + i, ww = w0 + j;
        patch[e] = ((unsigned)h < (unsigned)H && (unsigned)ww < (unsigned)W) ? __ldg(&xp[(long long)h * W + ww]) : 0.f;
    }
    __syncthreads();
    const int tp = threadIdx.x / DW_TQ, tq = threadIdx.x % DW_TQ, p = p0 + tp, q = q0 + tq;
    if (p >= P || q >= Q) return;
    float acc = 0.f;
    for (int r = 0; r < R; ++r) {
        const float* row = patch + (tp * uh + r * dh) * ph_cols + tq * uw;
        for (int s = 0; s < S; ++s) acc = fmaf(row[s * dw], wf[r * S + s], acc);
    }
    y[plane * P * Q + (long long)p * Q + q] = fprop_out(acc + __ldg(&b[c]));
}

// dx[n,c,h,w] = Σ_{r,s} dy[n,c,(h+ph−r·dh)/uh,(w+pw−s·dw)/uw]·w[c,0,r,s] over the taps where the strides divide:
// one thread per dx element of one (n, c) plane (grid: blocks over H·W, N·C), the plane's filter in shared
// memory, dy gathered through L1 (adjacent threads: adjacent w, so adjacent q for stride 1).
extern "C" __global__ void __launch_bounds__(NT)
conv_dw_dgrad(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx, CONV_GEOMETRY)
{
    extern __shared__ float wf[];  // [R·S]
    const long long plane = blockIdx.y;
    const int c = (int)(plane % C);
    for (int e = threadIdx.x; e < R * S; e += NT) wf[e] = w[(long long)c * R * S + e];
    __syncthreads();
    const int i = blockIdx.x * NT + threadIdx.x;
    if (i >= H * W) return;
    const int h = i / W, ww = i - h * W;
    const float* dyp = dy + plane * P * Q;
    float acc = 0.f;
    for (int r = 0; r < R; ++r) {
        const int hp = h + ph - r * dh;
        if (hp < 0 || hp % uh) continue;
        const int p = hp / uh;
        if (p >= P) continue;
        for (int s = 0; s < S; ++s) {
            const int wq = ww + pw - s * dw;
            if (wq < 0 || wq % uw) continue;
            const int q = wq / uw;
            if (q < Q) acc = fmaf(__ldg(&dyp[(long long)p * Q + q]), wf[r * S + s], acc);
        }
    }
    dx[plane * H * W + i] = acc;
}

// dw[c,0,r,s] = Σ_{n,p,q} dy[n,c,p,q]·x[n,c,p·uh+r·dh−ph,q·uw+s·dw−pw]: one block per (c, r, s) (grid C·R·S);
// the threads stride over the N·P·Q terms (adjacent threads: adjacent q), then a warp-shuffle and shared-memory
// reduction in a fixed order (deterministic, no atomics). x and dy are re-read by the R·S blocks of a channel,
// from L2.
extern "C" __global__ void __launch_bounds__(NT)
conv_dw_wgrad(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dwt, CONV_GEOMETRY)
{
    const int c = (int)(blockIdx.x / (R * S)), rs = (int)(blockIdx.x % (R * S)), r = rs / S, s = rs - r * S;
    const long long PQ = (long long)P * Q, total = (long long)N * PQ;
    float acc = 0.f;
    for (long long j = threadIdx.x; j < total; j += NT) {
        const long long n = j / PQ;
        const int pq = (int)(j - n * PQ), p = pq / Q, q = pq - p * Q;
        const int h = p * uh + r * dh - ph, ww = q * uw + s * dw - pw;
        if ((unsigned)h < (unsigned)H && (unsigned)ww < (unsigned)W)
            acc = fmaf(__ldg(&dy[(n * C + c) * PQ + pq]), __ldg(&x[((n * C + c) * H + h) * (long long)W + ww]), acc);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    __shared__ float warp_sums[NT / 32];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.f;
        for (int i = 0; i < NT / 32; ++i) sum += warp_sums[i];
        dwt[blockIdx.x] = sum;
    }
}
