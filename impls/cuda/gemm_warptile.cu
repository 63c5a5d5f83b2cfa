// gemm_warptile.cu: warp-tiled SGEMM with a multi-stage cp.async pipeline (ladder steps v6 and v7 = cupy_opt).
//
// Formula (seed 003, §2.5.2 and §3.1.2): Y = X·W + b, then ReLU; dX = dY·Wᵀ, dW = Xᵀ·dY (C = A·B, A M×K, B K×N).
//
// Strategy (one templated kernel, instantiated per tile configuration and operand layout at the bottom):
// - A block of NT threads computes a BM×BN tile of C. The block tile is split among the warps: each warp owns a
//   WM×WN sub-tile, each lane a TM×TN piece of it held in registers, as (TM/4)×(TN/4) fragments of 4×4. The lanes
//   of a warp form an LM×LN grid (LM = WM/TM, LN = WN/TN); lane (lm, ln) owns rows f·4·LM + lm·4 + 0..3 and columns
//   g·4·LN + ln·4 + 0..3 of the warp tile. Per k step a lane reads its A fragment column and B fragment row as
//   float4s: the 32 lanes read LM (resp. LN) distinct consecutive float4s of one shared row, i.e. one wavefront
//   with broadcasts, no bank conflicts.
// - K advances BK at a time through a ring of STAGES shared-memory buffers filled by cp.async: while the block
//   multiplies slice t, slices t+1 .. t+STAGES-1 are in flight. One __syncthreads per slice, before the multiplies
//   of its last k step (the wait for slice t+1 and the release of slice t's buffer are the same barrier); the
//   lanes' fragments are double-buffered in registers, so the reads of step k+1 (and of the next slice's first
//   step, after that barrier) overlap the multiplies of step k (v7.2; before it a slice began with a barrier, then
//   the copies, then reads that every warp waited for).
// - Both tiles are stored k-major in shared memory (As[k][m], Bs[k][n], rows padded by 4 floats: 16-byte aligned
//   rows, and the transposing stores below are conflict-free). An operand that is contiguous along m (resp. n)
//   (W and dY as B, Xᵀ as A) is copied with 16-byte cp.async.cg when it is 16-byte aligned with a leading dimension
//   and contiguous extent that are multiples of 4 (host flag `vec_*`), else with 4-byte cp.async.ca. An operand
//   contiguous along k (X and dY as A, Wᵀ as B) is transposed on the way in with 4-byte cp.async.ca: a warp's 32
//   copies cover 4 rows × 8 consecutive k (four full 32-byte sectors), and land in 32 distinct banks
//   (k·(BM+4) + m, pitch ≡ 4 mod 32). Out-of-range elements are zero-filled (cp.async src-size 0), so any M, N, K
//   works, not only tile multiples.
// - Epilogue: bias and ReLU fused; float4 stores when C's rows allow it, else scalar, bounds-checked.
// - Blocks are numbered along M in groups of 8 (grouped ordering) so that co-resident blocks share A and B panels
//   in L2; output tiles go on grid.x (any number), split-K slices on grid.y. All element offsets are 64-bit.
// - Configurations (the table at the bottom; impls/cuda/gemm_tune.py mirrors it and autotunes among them):
//   v7: 128×256×16, 3 stages, and 128×256×32, 2 stages (half the barriers per FMA: the large products' choice),
//   256 threads (8 warps of 64×64, 8×16 per lane, 1 block/SM, up to 255 registers: an eighth fewer non-FMA
//   instructions per FMA than 128×128);
//   v6: 128×128×16, 3 stages, 256 threads (8 warps of 64×32, 8×8 per lane, 2 blocks/SM at <= 128 registers);
//   128×128×8, 3 stages, the same warps; 128×64×16, 4 stages, 128 threads (4 warps of 64×32); 64×64×16, 4 stages,
//   128 threads (4 warps of 32×32, 8×4 per lane), for small outputs and as the split-K tile.
// - Split-K for products with few output tiles and a long K (the thesis's dense layers: M = 32, K up to 3200):
//   grid.y = S slices of K, each writing its partial tile to a workspace; splitk_reduce then adds the S partials
//   in slice order (deterministic, no atomics) with the bias and ReLU.
// - The same kernel batched over grid.z, bias per row, for the 1x1 convolutions (impls/cuda/conv2d.py), and as an
//   implicit-GEMM convolution (fprop, stride-1 dgrad: the 3x3 and 7x7 layers) whose B operand is gathered from
//   the image through a reduction table (GatherLoader, ConvGeo): compiled as their own module (-DGEMM_BATCHED=1),
//   see SGEMM_WT_BATCHED and SGEMM_WT_IGEMM at the end.
// Strict IEEE float32: no fast-math; each product-sum is one fused multiply-add, accumulated in k order.

#define PAD 4
#define GROUP_M 8
#ifndef GEMM_BATCHED  // 1: the module of the convolution kernels (batched 1x1, implicit GEMM: the end), 0: the rest
#define GEMM_BATCHED 0
#endif

// The PTX below is the kernel; the #else branches are what the same lines mean to the CPU build of the tests
// (tests/impls/cuda/cpu_cuda.py, no __CUDA_ARCH__): a copy done at once is one that has completed by the wait.
#ifdef __CUDA_ARCH__
__device__ __forceinline__ unsigned smem_addr(const void* p)
{
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// 4-byte copy global -> shared; src_bytes 0 writes a zero.
__device__ __forceinline__ void cp_async4(float* dst, const float* src, int src_bytes)
{
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
#else
    *dst = src_bytes ? *src : 0.0f;
#endif
}

// 16-byte copy global -> shared (L2 only); src_bytes 0 writes four zeros.
__device__ __forceinline__ void cp_async16(float* dst, const float* src, int src_bytes)
{
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
#else
    for (int i = 0; i < 4; ++i) dst[i] = src_bytes ? src[i] : 0.0f;
#endif
}

#ifdef __CUDA_ARCH__
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
#else
__device__ __forceinline__ void cp_async_commit() {}

template <int N>
__device__ __forceinline__ void cp_async_wait() {}
#endif

// OPAQUE_TID(tid): threadIdx.x read through volatile asm, so that the compiler recomputes what depends on it where
// it is used instead of keeping it live across a loop; OPAQUE(v): a register the compiler must assume changed
// (keeps per-copy offsets from being hoisted out of a loop). Macros, so the kernel's text is what it always was.
#ifdef __CUDA_ARCH__
#define OPAQUE_TID(tid) asm volatile("mov.u32 %0, %%tid.x;" : "=r"(tid))
#define OPAQUE(v) asm volatile("mov.b64 %0, %0;" : "+l"(v))
#else
#define OPAQUE_TID(tid) (tid = (int)threadIdx.x)
#define OPAQUE(v) (void)(v)
#endif

// The implicit-GEMM convolution's gathered B operand and output (the igemm kernels at the end, built only in the
// -DGEMM_BATCHED=1 module). GEMM column j is output pixel (image j / PQ, row p, column q of j % PQ); its source
// origin is (p·uh + oh, q·uw + ow) in an Hs × Ws plane of the source (x for fprop, dy for dgrad); reduction index
// kg is tab[kg] = {source offset, row tap << 16 | (column tap & 0xffff)} (taps as signed 16-bit: one 8-byte entry,
// the 128×256×32 tile spills with 16-byte ones), read at origin + offset when origin + taps lies inside the plane,
// else a zero (padding). tab is padded past the reduction to a multiple of 32 with entries that never land.
// Output element (row m, column j): m·out_chan + img·out_img + out_base + p·out_row + q·out_col. A plain layer's
// output plane is the column grid itself (out_base 0, out_row Q, out_col 1, out_chan PQ); a strided dgrad's stride
// phase (a, b) is a sub-grid of dx: its pixel (p, q) is dx's (uh·(hq0 + p) + a − ph, uw·(wq0 + q) + b − pw).
struct ConvGeo {
    const int2* tab;
    int PQ, Q, uh, uw, oh, ow, Hs, Ws, k_split;
    long long src_img, out_img;  // elements per image of the source and of the output
    long long out_chan, out_base;
    int out_row, out_col;
};

// Output offset of GEMM column j (image, pixel (p, q) of the PQ-pixel, Q-wide column grid) within an output row.
__device__ __forceinline__ long long conv_col(int PQ, int Q, long long out_img, long long out_base, int out_row,
                                              int out_col, int j)
{
    const int img = j / PQ, pix = j - img * PQ, p = pix / Q;
    return img * out_img + out_base + (long long)p * out_row + (long long)(pix - p * Q) * out_col;
}
__device__ __forceinline__ long long conv_col(const ConvGeo& g, int j)
{
    return conv_col(g.PQ, g.Q, g.out_img, g.out_base, g.out_row, g.out_col, j);
}

// The copies of one operand's R×BK slices (R = BM for A, BN for B) into k-major shared tiles S[BK][R + PAD].
// KCONTIG: element (r, k) at P[r·ld + k], transposed on the way in with 4-byte copies; a warp's 32 copies are
//          4 rows × 8 consecutive k. else: element (r, k) at P[k·ld + r], 16-byte copies when vec, else 4-byte.
// Every thread keeps one coordinate fixed (its k within the slice for KCONTIG, its r otherwise) and steps the
// other by a constant, so it holds one base pointer and one 64-bit step instead of a pointer per copy (which the
// compiler would otherwise keep live across the main loop and spill).
template <bool KCONTIG, int R, int BK, int NT>
struct SliceLoader {
    static constexpr int P_ = R + PAD;
    static constexpr int VEC_W = 4;  // floats per 16-byte copy
    // copies per thread and the step between them (in rows r for KCONTIG, in k otherwise)
    static constexpr int N_K = R * BK / NT;                        // 4-byte paths
    static constexpr int N_V = R * BK / VEC_W / NT;                // 16-byte path
    static constexpr int STEP_K = KCONTIG ? (NT / 32) / (BK / 8) * 4 : NT / R;
    static constexpr int STEP_V = NT / (R / VEC_W);
    static_assert(R * BK % NT == 0 && R % 32 == 0 && BK % 8 == 0, "slice must split evenly");
    static_assert(KCONTIG ? (NT / 32) % (BK / 8) == 0 : NT % R == 0, "a thread's copies must share one coordinate");
    static_assert(KCONTIG || (R * BK / VEC_W) % NT == 0, "16-byte slice must split evenly");

    const float* base;  // this thread's first element of slice 0
    long long step;     // elements between its copies

    // This thread's (r, k) of its first copy in a slice. threadIdx.x is read through volatile asm so that the
    // compiler recomputes these few integer operations per slice instead of keeping them live across the loop.
    static __device__ __forceinline__ void coords(bool vec, int& r, int& k)
    {
        int tid;
        OPAQUE_TID(tid);
        if (KCONTIG) {
            k = ((tid >> 5) % (BK / 8)) * 8 + (tid & 7);
            r = ((tid >> 5) / (BK / 8)) * 4 + ((tid >> 3) & 3);
        } else {
            r = vec ? (tid % (R / VEC_W)) * VEC_W : tid % R;
            k = vec ? tid / (R / VEC_W) : tid / R;
        }
    }

    __device__ __forceinline__ SliceLoader(const float* P, long long ld, int r0, bool vec)
    {
        int r, k;
        coords(vec, r, k);
        step = (KCONTIG ? STEP_K : vec ? STEP_V : STEP_K) * ld;
        base = KCONTIG ? P + (long long)(r0 + r) * ld + k : P + (long long)k * ld + (r0 + r);
    }
    // The B operand's constructor in the kernels that may gather (GatherLoader's signature; no geometry used).
    __device__ __forceinline__ SliceLoader(const float* P, long long ld, int r0, bool vec, const ConvGeo&, int)
        : SliceLoader(P, ld, r0, vec)
    {
    }

    // Issue the copies of the slice starting at k0 (a multiple of BK) into S; out-of-range elements are zeros,
    // copied from `safe` (the operand's own first element) with source size 0, so no copy names an address
    // outside the operand. rows, K: the operand's extents (K counted from this split's first k); r0: the tile's
    // first row.
    __device__ __forceinline__ void issue(float* S, int k0, long long ld, int rows, int K, int r0, bool vec,
                                          const float* safe, const ConvGeo& = ConvGeo{})
    {
        int r, k;
        coords(vec, r, k);
        const int r_left = rows - r0 - r;  // for the 16-byte path rows % 4 == 0: a chunk is all in or all out
        const int k_left = K - k0 - k;
        S += k * P_ + r;
        long long st = step;
        OPAQUE(st);  // keep the per-copy offsets from being hoisted out of the loop
        if (KCONTIG) {
            const float* q = base + k0;
#pragma unroll
            for (int i = 0; i < N_K; ++i, q += st)
            {
                const bool in = k_left > 0 && i * STEP_K < r_left;
                cp_async4(S + i * STEP_K, in ? q : safe, in ? 4 : 0);
            }
        } else if (vec) {
            const float* q = base + (long long)k0 * ld;
#pragma unroll
            for (int i = 0; i < N_V; ++i, q += st)
            {
                const bool in = r_left > 0 && i * STEP_V < k_left;
                cp_async16(S + i * STEP_V * P_, in ? q : safe, in ? 16 : 0);
            }
        } else {
            const float* q = base + (long long)k0 * ld;
#pragma unroll
            for (int i = 0; i < N_K; ++i, q += st)
            {
                const bool in = r_left > 0 && i * STEP_K < k_left;
                cp_async4(S + i * STEP_K * P_, in ? q : safe, in ? 4 : 0);
            }
        }
    }
};

// The gathered B operand of the implicit-GEMM convolution (ConvGeo): each thread owns one column (pixel) of the
// tile, r = tid % R, and copies the slice's reduction indices k = tid / R + i·(NT / R) of it with 4-byte cp.async
// (zero-filled outside the source plane). Consecutive threads take consecutive pixels: consecutive source
// addresses along a row. The column's decomposition is done once; per copy a table entry (one address for the
// whole warp: a broadcast), the taps unpacked, two compares and an address.
template <int R, int BK, int NT>
struct GatherLoader {
    static constexpr int P_ = R + PAD;
    static constexpr int STEP_K = NT / R;
    static constexpr int N_K = R * BK / NT;
    static_assert(NT % R == 0 && R * BK % NT == 0, "a thread's copies must share one column");

    const float* base;  // the source at this column's origin (only offsets inside the source are ever read)
    int h0, w0;         // the origin; h0 is far negative for a column past N, so nothing lands

    __device__ __forceinline__ GatherLoader(const float* P, long long, int r0, bool, const ConvGeo& g, int cols)
    {
        int tid;
        OPAQUE_TID(tid);
        const int j = r0 + tid % R;
        const bool in = j < cols;
        const int img = in ? j / g.PQ : 0, pq = in ? j - img * g.PQ : 0, p = pq / g.Q, q = pq - p * g.Q;
        h0 = in ? p * g.uh + g.oh : -(1 << 28);
        w0 = q * g.uw + g.ow;
        base = P + img * g.src_img + (long long)h0 * g.Ws + w0;
        if (!in) base = P;
    }

    // The copies of the slice at k0 (from this split's first index) into S; safe: the source's first element.
    __device__ __forceinline__ void issue(float* S, int k0, long long, int, int, int, bool, const float* safe,
                                          const ConvGeo& g)
    {
        int tid;
        OPAQUE_TID(tid);
        const int k = tid / R;
        const int kb = gridDim.y > 1 ? blockIdx.y * g.k_split : 0;
        const int2* e = g.tab + kb + k0 + k;
        S += k * P_ + tid % R;
#pragma unroll
        for (int i = 0; i < N_K; ++i) {
            const int2 t = __ldg(e + i * STEP_K);
            const bool in = (unsigned)(h0 + (t.y >> 16)) < (unsigned)g.Hs
                            && (unsigned)(w0 + ((t.y << 16) >> 16)) < (unsigned)g.Ws;
            cp_async4(S + i * STEP_K * P_, in ? base + t.x : safe, in ? 4 : 0);
        }
    }
};

// The B operand's loader: the gather, or the plain slices.
template <bool GATHER, bool KCONTIG, int R, int BK, int NT>
struct LoaderB {
    using type = SliceLoader<KCONTIG, R, BK, NT>;
};
template <bool KCONTIG, int R, int BK, int NT>
struct LoaderB<true, KCONTIG, R, BK, NT> {
    using type = GatherLoader<R, BK, NT>;
};

template <int BM, int BN, int BK, int WM, int WN, int TM, int TN, int STAGES, int NT, bool A_KCONTIG,
          bool B_KCONTIG, bool ROW_BIAS = false, bool GATHER = false>
__device__ __forceinline__ void sgemm_warptile(const float* __restrict__ A, const float* __restrict__ B,
                                               float* __restrict__ C, const float* __restrict__ bias, int M, int N,
                                               int K, long long lda, long long ldb, long long ldc, int relu,
                                               int vec_a, int vec_b, int vec_c, int k_split,
                                               const ConvGeo& geo = ConvGeo{})
{
    constexpr int LM = WM / TM, LN = WN / TN;  // lanes of a warp along m and n
    constexpr int WARPS_N = BN / WN;
    constexpr int A_STAGE = BK * (BM + PAD), B_STAGE = BK * (BN + PAD);
    static_assert(LM * LN == 32, "a warp tile must be 32 lane tiles");
    static_assert((BM / WM) * (BN / WN) * 32 == NT, "the warp tiles must cover the block tile");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "lane tiles are made of 4x4 fragments");

    extern __shared__ __align__(16) float smem[];
    float* As = smem;                     // [STAGES][BK][BM + PAD]
    float* Bs = smem + STAGES * A_STAGE;  // [STAGES][BK][BN + PAD]

    // Grouped tile order: GROUP_M consecutive m-tiles per n-tile.
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const long long pid = blockIdx.x;
    const long long per_group = (long long)GROUP_M * tiles_n;
    const int first_m = (int)(pid / per_group) * GROUP_M;
    const int group_size = min(tiles_m - first_m, GROUP_M);
    const int in_group = (int)(pid % per_group);
    const int m0 = (first_m + in_group % group_size) * BM;
    const int n0 = (in_group / group_size) * BN;

    // Split-K (gridDim.y > 1): block row y takes k in [y·k_split, (y+1)·k_split) and writes its raw partial
    // product to slice y of the workspace C (M×ldc each); splitk_reduce adds the slices, the bias and the ReLU.
    // (The parameters themselves are left unchanged so that they stay in the constant bank, not in registers.)
    const bool split = gridDim.y > 1;
    const int k_begin = split ? blockIdx.y * k_split : 0;
    const int k_len = split ? min(K - k_begin, k_split) : K;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
    const int lm = lane / LN, ln = lane % LN;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    SliceLoader<A_KCONTIG, BM, BK, NT> load_a(A + (A_KCONTIG ? (long long)k_begin : (long long)k_begin * lda), lda,
                                              m0, vec_a);
    typename LoaderB<GATHER, B_KCONTIG, BN, BK, NT>::type load_b(
        GATHER ? B : B + (B_KCONTIG ? (long long)k_begin : (long long)k_begin * ldb), ldb, n0, vec_b, geo, N);
    const int ktiles = (k_len + BK - 1) / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) {
            load_a.issue(As + s * A_STAGE, s * BK, lda, M, k_len, m0, vec_a, A);
            load_b.issue(Bs + s * B_STAGE, s * BK, ldb, N, k_len, n0, vec_b, B, geo);
        }
        cp_async_commit();
    }

    // The lane's fragments are double-buffered in registers: step kk + 1's are read from shared memory before step
    // kk's multiplies, and the next slice's first ones right after the barrier that makes that slice visible, which
    // comes before the multiplies of a slice's last step; so no warp waits on shared memory at a slice boundary.
    // A slice's first step issues the copies of slice t + STAGES - 1, beside its multiplies.
    static_assert(BK % 2 == 0, "a slice's last step reads into buffer 1, the next slice's first into buffer 0");
    const int a_lane = wm0 + lm * 4, b_lane = wn0 + ln * 4;  // the lane's first row / column in a slice
    float a[2][TM], b[2][TN];
    auto read = [&](float* fa, float* fb, const float* as, const float* bs) {
#pragma unroll
        for (int f = 0; f < TM / 4; ++f) {
            const float4 v = *reinterpret_cast<const float4*>(as + f * 4 * LM);
            fa[f * 4 + 0] = v.x; fa[f * 4 + 1] = v.y; fa[f * 4 + 2] = v.z; fa[f * 4 + 3] = v.w;
        }
#pragma unroll
        for (int g = 0; g < TN / 4; ++g) {
            const float4 v = *reinterpret_cast<const float4*>(bs + g * 4 * LN);
            fb[g * 4 + 0] = v.x; fb[g * 4 + 1] = v.y; fb[g * 4 + 2] = v.z; fb[g * 4 + 3] = v.w;
        }
    };
    cp_async_wait<STAGES - 2>();  // slice 0 has landed (this thread's copies) ...
    __syncthreads();              // ... everyone's
    read(a[0], b[0], As + a_lane, Bs + b_lane);
    for (int t = 0; t < ktiles; ++t) {
        const float* as = As + (t % STAGES) * A_STAGE + a_lane;
        const float* bs = Bs + (t % STAGES) * B_STAGE + b_lane;
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const int cur = kk & 1;
            if (kk == 0) {  // into the buffer of slice t-1, which no warp reads after the last barrier
                const int next = t + STAGES - 1;
                if (next < ktiles) {
                    const int slot = next % STAGES;
                    load_a.issue(As + slot * A_STAGE, next * BK, lda, M, k_len, m0, vec_a, A);
                    load_b.issue(Bs + slot * B_STAGE, next * BK, ldb, N, k_len, n0, vec_b, B, geo);
                }
                cp_async_commit();  // an empty group past the end keeps the wait count uniform
            }
            if (kk < BK - 1) {
                read(a[cur ^ 1], b[cur ^ 1], as + (kk + 1) * (BM + PAD), bs + (kk + 1) * (BN + PAD));
            } else {
                cp_async_wait<STAGES - 2>();  // slice t+1 has landed (this thread's copies) ...
                __syncthreads();              // ... everyone's, and no warp reads slice t's buffer any more
                if (t + 1 < ktiles) {
                    const int slot = (t + 1) % STAGES;
                    read(a[0], b[0], As + slot * A_STAGE + a_lane, Bs + slot * B_STAGE + b_lane);
                }
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[cur][i], b[cur][j], acc[i][j]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: + bias, ReLU, store (float4 where the row allows it); a split-K partial goes raw to its slice
    // (M×ldc, a convolution's too). A convolution's output element (m, j) is at m·out_chan + conv_col(j).
    float* const Cs = split ? C + (long long)blockIdx.y * M * ldc : C;
    const float* const bias_e = split ? nullptr : bias;
    const int relu_e = split ? 0 : relu;
    const bool conv = GATHER && !split;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + wm0 + (i / 4) * 4 * LM + lm * 4 + (i % 4);
        if (m >= M) continue;
        float* crow = Cs + (long long)m * (conv ? geo.out_chan : ldc);
#pragma unroll
        for (int g = 0; g < TN / 4; ++g) {
            const int n = n0 + wn0 + g * 4 * LN + ln * 4;
            float v[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                float x = acc[i][g * 4 + j];
                if (bias_e && n + j < N) x += ROW_BIAS ? bias_e[m] : bias_e[n + j];
                v[j] = relu_e ? fmaxf(x, 0.f) : x;
            }
            if (vec_c && n + 3 < N) {  // conv (a plain grid only): PQ % 4 == 0, 4 pixels of one image
                *reinterpret_cast<float4*>(crow + (conv ? conv_col(geo, n) : n)) = make_float4(v[0], v[1], v[2],
                                                                                              v[3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    if (n + j < N) crow[conv ? conv_col(geo, n + j) : n + j] = v[j];
            }
        }
    }
}

// One extern "C" kernel per (configuration, layout): sgemm_wt_<config>_<nn|nt|tn>.
//   nn: Y = X·W      A = X (k-contiguous, lda = K),   B = W (n-contiguous, ldb = N)
//   nt: dX = dY·Wᵀ   A = dY (k-contiguous, lda = N),  B = Wᵀ, element (k', n') = W[n'·ldb + k'] (k-contiguous)
//   tn: dW = Xᵀ·dY   A = Xᵀ, element (m', k') = X[k'·lda + m'] (m-contiguous), B = dY (n-contiguous)
// The configuration names, sizes and shared-memory bytes are mirrored in impls/cuda/gemm.py (CONFIGS).
#define SGEMM_WT_LAYOUT(NAME, LAYOUT, AK, BKC, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                          \
    extern "C" __global__ void __launch_bounds__(NT, MINB) sgemm_wt_##NAME##_##LAYOUT(                          \
        const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,          \
        long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c, int k_split)                     \
    {                                                                                                             \
        sgemm_warptile<BM, BN, BK, WM, WN, TM, TN, ST, NT, AK, BKC>(A, B, C, bias, M, N, K, lda, ldb, ldc, relu,  \
                                                                     vec_a, vec_b, vec_c, k_split);               \
    }

#define SGEMM_WT_CONFIG(NAME, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                                          \
    SGEMM_WT_LAYOUT(NAME, nn, true, false, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                              \
    SGEMM_WT_LAYOUT(NAME, nt, true, true, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                               \
    SGEMM_WT_LAYOUT(NAME, tn, false, false, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)

// Batched products for the 1x1 stride-1 convolutions of impls/cuda/conv2d.py, one image per grid.z: product z
// reads A + z·sa, B + z·sb and writes C + z·sc (elements), the bias (if any) is per row, and there is no split-K.
//   bnn: fprop  Y_n = W·X_n + b   A = W (K×C, k-contiguous), B = X_n (C×P·Q, n-contiguous), bias b[k] per row
//   btn: dgrad dX_n = Wᵀ·dY_n     A = Wᵀ, element (c, k) = W[k·C + c] (m-contiguous), B = dY_n (K×P·Q)
#define SGEMM_WT_BATCHED(NAME, LAYOUT, AK, BKC, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                         \
    extern "C" __global__ void __launch_bounds__(NT, MINB) sgemm_wt_##NAME##_b##LAYOUT(                         \
        const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,          \
        long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c, int k_split, long long sa,       \
        long long sb, long long sc)                                                                               \
    {                                                                                                             \
        const long long z = blockIdx.z;                                                                           \
        sgemm_warptile<BM, BN, BK, WM, WN, TM, TN, ST, NT, AK, BKC, true>(A + z * sa, B + z * sb, C + z * sc,     \
                                                                           bias, M, N, K, lda, ldb, ldc, relu,    \
                                                                           vec_a, vec_b, vec_c, k_split);         \
    }
// The implicit-GEMM convolution (impls/cuda/conv2d.py's warp_igemm), C = A·B with B gathered (ConvGeo):
//   fprop  Y = W·im2col(X) + b   A = W (K×C·R·S, k-contiguous), columns the output pixels (n, p, q), bias per row
//   dgrad  dX = Wᵀ·im2col'(dY)   A = Wᵀ as a (C×K·R·S) copy, columns the input pixels (n, h, w), taps reversed
// Split-K partials go to an M×N workspace that conv_splitk_reduce sums into the output.
#define SGEMM_WT_IGEMM(NAME, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                                           \
    extern "C" __global__ void __launch_bounds__(NT, MINB) sgemm_wt_##NAME##_igemm(                             \
        const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,          \
        long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c, int k_split, const int2* tab,    \
        int PQ, int Q, int uh, int uw, int oh, int ow, int Hs, int Ws, long long src_img, long long out_img,     \
        long long out_chan, long long out_base, int out_row, int out_col)                                         \
    {                                                                                                             \
        const ConvGeo g{tab, PQ, Q, uh, uw, oh, ow, Hs, Ws, k_split, src_img, out_img, out_chan, out_base,        \
                        out_row, out_col};                                                                        \
        sgemm_warptile<BM, BN, BK, WM, WN, TM, TN, ST, NT, true, false, true, true>(                              \
            A, B, C, bias, M, N, K, lda, ldb, ldc, relu, vec_a, vec_b, vec_c, k_split, g);                        \
    }
#define SGEMM_WT_CONV(NAME, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                                            \
    SGEMM_WT_BATCHED(NAME, nn, true, false, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                             \
    SGEMM_WT_BATCHED(NAME, tn, false, false, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)                            \
    SGEMM_WT_IGEMM(NAME, BM, BN, BK, WM, WN, TM, TN, ST, NT, MINB)

// The tile configurations, one CONFIG(name, BM, BN, BK, WM, WN, TM, TN, stages, threads, min blocks/SM) each
// (impls/cuda/gemm_tune.py's TILES mirrors them), instantiated as the plain kernels, or as the convolution ones
// (bnn, btn, igemm) in the module compiled with -DGEMM_BATCHED=1 (which then holds those, splitk_reduce and
// conv_splitk_reduce only: the plain module's compile time stays as it was).
// b128x64k16s4 asks 4 blocks per SM (128 registers a thread) where 4 of its 51 KB buffers fit (sm_90's 228 KB);
// sm_80's 164 KB hold 3, so there it asks 3, and the registers that a 4th block could not use anyway (v7.2's
// double-buffered fragments need them in the igemm kernel, which otherwise spills 4 bytes on sm_80).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define WT_MINB_128x64 3
#else
#define WT_MINB_128x64 4
#endif
#define SGEMM_WT_TABLE(CONFIG)                                    \
    CONFIG(b128x128k16s3, 128, 128, 16, 64, 32, 8, 8, 3, 256, 2)  \
    CONFIG(b128x128k8s3,  128, 128, 8,  64, 32, 8, 8, 3, 256, 2)  \
    CONFIG(b128x64k16s4,  128, 64,  16, 64, 32, 8, 8, 4, 128, WT_MINB_128x64) \
    CONFIG(b64x64k16s4,   64,  64,  16, 32, 32, 8, 4, 4, 128, 4)  \
    CONFIG(b128x256k16s3, 128, 256, 16, 64, 64, 8, 16, 3, 256, 1) \
    CONFIG(b128x256k32s2, 128, 256, 32, 64, 64, 8, 16, 2, 256, 1)
#if GEMM_BATCHED
SGEMM_WT_TABLE(SGEMM_WT_CONV)
#else
SGEMM_WT_TABLE(SGEMM_WT_CONFIG)
#endif

// Y[m, n] = relu(Σ_s P[s, m, n] + bias[n]): the split-K partials added in slice order, one thread per element.
extern "C" __global__ void splitk_reduce(const float* __restrict__ P, float* __restrict__ Y,
                                         const float* __restrict__ bias, long long MN, int N, int splits, int relu)
{
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < MN;
         e += (long long)gridDim.x * blockDim.x) {
        float x = 0.f;
        for (int s = 0; s < splits; ++s) x += P[s * MN + e];
        if (bias) x += bias[e % N];
        Y[e] = relu ? fmaxf(x, 0.f) : x;
    }
}

#if GEMM_BATCHED
// The igemm kernels' split-K reduction: element (m, j) of the M×N partials, summed in slice order, + bias[m],
// ReLU, written to the output at m·out_chan + conv_col(j) (consecutive threads: consecutive pixels of one image).
extern "C" __global__ void conv_splitk_reduce(const float* __restrict__ P, float* __restrict__ Y,
                                              const float* __restrict__ bias, int M, int N, int PQ, int Q,
                                              long long out_img, long long out_chan, long long out_base,
                                              int out_row, int out_col, int splits, int relu)
{
    const long long MN = (long long)M * N;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < MN;
         e += (long long)gridDim.x * blockDim.x) {
        const int m = (int)(e / N), j = (int)(e - (long long)m * N);
        float x = 0.f;
        for (int s = 0; s < splits; ++s) x += P[s * MN + e];
        if (bias) x += bias[m];
        Y[m * out_chan + conv_col(PQ, Q, out_img, out_base, out_row, out_col, j)] = relu ? fmaxf(x, 0.f) : x;
    }
}
#endif
