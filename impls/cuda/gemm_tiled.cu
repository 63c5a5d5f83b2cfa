// gemm_tiled.cu: shared-memory tiled SGEMM with register blocking, for the dense layer and its backward pass.
//
// Formula (seed 003, §2.5.2 and §3.1.2): Y = X·W + b, then ReLU; dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ_rows dY.
//
// Strategy (C = A·B, A is M×K, B is K×N, C row-major with leading dimension ldc):
// - A block of 256 threads computes a 128×128 tile of C; each thread owns an 8×8 sub-tile held in 64 registers,
//   as two 4-row groups (rows ty·4+i and 64+ty·4+i) times two 4-column groups (tx·4+j and 64+tx·4+j), so that its
//   fragments are read from shared memory as float4 and a warp's reads are broadcasts or 2 wavefronts.
// - The K dimension advances 8 at a time (BK = 8). A's 128×8 and B's 8×128 slices are staged in shared memory,
//   both stored k-major ([k][m] and [k][n]), so the inner product loop reads contiguous float4s. Shared memory is
//   double-buffered: while the block multiplies slice t, each thread already holds slice t+1 in registers and
//   writes it to the other buffer afterwards; one __syncthreads per slice.
// - Operands come in two layouts, chosen per operand by a template flag, which is how the backward pass reuses
//   this kernel with no transposed copies: "k-contiguous" (X and dY as A, Wᵀ as B: element (r, k) at r·ld + k)
//   and "r-contiguous" (Xᵀ as A, W and dY as B: element (r, k) at k·ld + r). Each thread loads 4 consecutive
//   elements of one row with one 16-byte load when the operand is 16-byte aligned and ld and the contiguous extent
//   are multiples of 4 (`vec` flags, computed by the host); otherwise it falls back to 4 bounds-checked scalar
//   loads. Out-of-range elements are loaded as 0, so any M, N, K works (not only tile multiples).
// - k-contiguous tiles are transposed on their way into shared memory; rows are padded by 4 floats, which makes
//   those scalar stores conflict-free and keeps every row 16-byte aligned.
// - Epilogue: bias and ReLU fused; float4 stores when C's rows allow it, else scalar, bounds-checked.
// - Blocks are numbered along M in groups of 8 (as Triton's grouped ordering) so that the blocks resident at one
//   time share A and B panels in L2; the grid is 1-D, so any number of tiles fits.
// - All offsets are 64-bit (row·ld in long long).
// Strict IEEE float32: compiled without fast-math; each product-sum is one fused multiply-add.

#define BM 128
#define BN 128
#define BK 8
#define NT 256
#define PITCH (BM + 4)
#define GROUP_M 8

// Load this thread's 4 elements of a 128×8 tile of operand P into v.
// KCONTIG: element (r, k) at P[r·ld + k]; thread t takes row t/2, k offset (t%2)·4.
// else:    element (r, k) at P[k·ld + r]; thread t takes k = t/32, rows (t%32)·4 .. +3.
template <bool KCONTIG>
__device__ __forceinline__ void load_tile(const float* __restrict__ P, long long ld, int rows, int K, int r0, int k0,
                                          bool vec, float (&v)[4])
{
    const int tid = threadIdx.x;
    if (KCONTIG) {
        const int r = r0 + (tid >> 1);
        const int k = k0 + ((tid & 1) << 2);
        const float* p = P + (long long)r * ld + k;
        if (vec) {
            float4 t = make_float4(0.f, 0.f, 0.f, 0.f);
            if (r < rows && k < K) t = *reinterpret_cast<const float4*>(p);
            v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) v[i] = (r < rows && k + i < K) ? p[i] : 0.f;
        }
    } else {
        const int k = k0 + (tid >> 5);
        const int r = r0 + ((tid & 31) << 2);
        const float* p = P + (long long)k * ld + r;
        if (vec) {
            float4 t = make_float4(0.f, 0.f, 0.f, 0.f);
            if (k < K && r < rows) t = *reinterpret_cast<const float4*>(p);
            v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) v[i] = (k < K && r + i < rows) ? p[i] : 0.f;
        }
    }
}

// Store the 4 elements loaded by load_tile<KCONTIG> into the k-major shared tile S[BK][PITCH].
template <bool KCONTIG>
__device__ __forceinline__ void store_tile(float (*S)[PITCH], const float (&v)[4])
{
    const int tid = threadIdx.x;
    if (KCONTIG) {
        const int r = tid >> 1, k = (tid & 1) << 2;
#pragma unroll
        for (int i = 0; i < 4; ++i) S[k + i][r] = v[i];
    } else {
        *reinterpret_cast<float4*>(&S[tid >> 5][(tid & 31) << 2]) = make_float4(v[0], v[1], v[2], v[3]);
    }
}

template <bool A_KCONTIG, bool B_KCONTIG>
__device__ __forceinline__ void sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B,
                                            float* __restrict__ C, const float* __restrict__ bias, int M, int N,
                                            int K, long long lda, long long ldb, long long ldc, int relu, int vec_a,
                                            int vec_b, int vec_c)
{
    __shared__ __align__(16) float As[2][BK][PITCH];
    __shared__ __align__(16) float Bs[2][BK][PITCH];

    // Grouped tile order: GROUP_M consecutive m-tiles per n-tile, so concurrently resident blocks share panels.
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const long long pid = blockIdx.x;
    const long long per_group = (long long)GROUP_M * tiles_n;
    const int first_m = (int)(pid / per_group) * GROUP_M;
    const int group_size = min(tiles_m - first_m, GROUP_M);
    const int in_group = (int)(pid % per_group);
    const int m0 = (first_m + in_group % group_size) * BM;
    const int n0 = (in_group / group_size) * BN;

    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    float ra[4], rb[4];
    load_tile<A_KCONTIG>(A, lda, M, K, m0, 0, vec_a, ra);
    load_tile<B_KCONTIG>(B, ldb, N, K, n0, 0, vec_b, rb);
    store_tile<A_KCONTIG>(As[0], ra);
    store_tile<B_KCONTIG>(Bs[0], rb);
    __syncthreads();

    const int ktiles = (K + BK - 1) / BK;
    for (int t = 0; t < ktiles; ++t) {
        const int cur = t & 1;
        const bool more = t + 1 < ktiles;
        if (more) {  // prefetch slice t+1 into registers while slice t is multiplied
            load_tile<A_KCONTIG>(A, lda, M, K, m0, (t + 1) * BK, vec_a, ra);
            load_tile<B_KCONTIG>(B, ldb, N, K, n0, (t + 1) * BK, vec_b, rb);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][kk][64 + ty * 4]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][kk][64 + tx * 4]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
            store_tile<A_KCONTIG>(As[cur ^ 1], ra);
            store_tile<B_KCONTIG>(Bs[cur ^ 1], rb);
        }
        __syncthreads();
    }

    // Epilogue: + bias, ReLU, store (float4 where the row allows it).
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int m = m0 + (i >> 2) * 64 + ty * 4 + (i & 3);
        if (m >= M) continue;
        float* crow = C + (long long)m * ldc;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int n = n0 + h * 64 + tx * 4;
            float v[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                float x = acc[i][h * 4 + j];
                if (bias && n + j < N) x += bias[n + j];
                v[j] = relu ? fmaxf(x, 0.f) : x;
            }
            if (vec_c && n + 3 < N) {
                *reinterpret_cast<float4*>(crow + n) = make_float4(v[0], v[1], v[2], v[3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    if (n + j < N) crow[n + j] = v[j];
            }
        }
    }
}

// Y = X·W (+ b, ReLU): A = X (k-contiguous, lda = K), B = W (n-contiguous, ldb = N).
extern "C" __global__ void __launch_bounds__(NT, 2)
sgemm_tiled_nn(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,
               long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c)
{
    sgemm_tiled<true, false>(A, B, C, bias, M, N, K, lda, ldb, ldc, relu, vec_a, vec_b, vec_c);
}

// dX = dY·Wᵀ: A = dY (k-contiguous, lda = N of the layer), B = Wᵀ, element (n', k') = W[n'·ldb + k'] (k-contiguous).
extern "C" __global__ void __launch_bounds__(NT, 2)
sgemm_tiled_nt(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,
               long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c)
{
    sgemm_tiled<true, true>(A, B, C, bias, M, N, K, lda, ldb, ldc, relu, vec_a, vec_b, vec_c);
}

// dW = Xᵀ·dY: A = Xᵀ, element (m', k') = X[k'·lda + m'] (m-contiguous), B = dY (n-contiguous).
extern "C" __global__ void __launch_bounds__(NT, 2)
sgemm_tiled_tn(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, long long lda,
               long long ldb, long long ldc, int relu, int vec_a, int vec_b, int vec_c)
{
    sgemm_tiled<false, false>(A, B, C, bias, M, N, K, lda, ldb, ldc, relu, vec_a, vec_b, vec_c);
}

// Column sums, out[s·N + n] = Σ over rows m in slice s of Y[m·N + n] (slices of `rows_per` rows; grid.y = slices).
// A block is 32 columns × 8 row-lanes; each lane sums every 8th row of the slice (coalesced 128-byte row
// segments), then the 8 partial sums are added in shared memory in a fixed order. db = Σ_rows dY is one launch
// when M is small, else two: slices into a workspace, then the workspace's column sums (deterministic, no atomics).
extern "C" __global__ void colsum_tiled(const float* __restrict__ Y, float* __restrict__ out, int M, int N,
                                        int rows_per)
{
    __shared__ float part[8][33];
    const int n = blockIdx.x * 32 + threadIdx.x;
    const long long begin = (long long)blockIdx.y * rows_per;
    const long long end = min((long long)M, begin + rows_per);
    float acc = 0.f;
    if (n < N)
        for (long long m = begin + threadIdx.y; m < end; m += 8) acc += Y[m * N + n];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && n < N) {
        float s = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) s += part[i][threadIdx.x];
        out[(long long)blockIdx.y * N + n] = s;
    }
}
