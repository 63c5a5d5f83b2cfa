// gemm_regblock1d.cu: ladder step v3 of the dense layer's SGEMM, 1-D register blocking (forward product only).
//
// Formula (seed 003, §2.5.2): Y = X·W + b, then ReLU (C = A·B, A M×K row-major, B K×N row-major, C M×N).
//
// Strategy: a block of 512 threads computes a 64×64 tile of C; each thread owns 8 consecutive rows of one column
// (TM = 8 accumulators in registers). K advances 8 at a time: A's 64×8 and B's 8×64 slices go to shared memory,
// one element per thread each. Per k a thread reads one B value and reuses it for its 8 rows; its 8 A values are
// consecutive in the k-major As[k][m] and shared by the 64 threads of its row group (broadcasts): 9 shared loads
// for 8 FMAs, against v2's 2 per FMA, and every global element is read 64 times fewer than by the naive kernel.
// Out-of-range elements are loaded as 0 (any M, N, K); offsets are 64-bit. Strict IEEE float32 (no fast-math).

#define BM 64
#define BN 64
#define BK 8
#define TM 8
#define NT 512

extern "C" __global__ void __launch_bounds__(NT)
gemm_regblock1d(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                const float* __restrict__ bias, int M, int N, int K, int relu)
{
    __shared__ float As[BK][BM];
    __shared__ float Bs[BK][BN];
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int col = tid % BN, row0 = (tid / BN) * TM;  // this thread's column and first of its 8 rows
    const int am = tid / BK, ak = tid % BK;             // the A element it loads
    const int bk = tid / BN, bn = tid % BN;             // the B element it loads
    float acc[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) acc[i] = 0.f;
    for (int k0 = 0; k0 < K; k0 += BK) {
        As[ak][am] = (m0 + am < M && k0 + ak < K) ? A[(long long)(m0 + am) * K + k0 + ak] : 0.f;
        Bs[bk][bn] = (k0 + bk < K && n0 + bn < N) ? B[(long long)(k0 + bk) * N + n0 + bn] : 0.f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float b = Bs[kk][col];
#pragma unroll
            for (int i = 0; i < TM; ++i) acc[i] = fmaf(As[kk][row0 + i], b, acc[i]);
        }
        __syncthreads();
    }
    const int n = n0 + col;
    if (n >= N) return;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const long long m = m0 + row0 + i;
        if (m >= M) break;
        float x = acc[i];
        if (bias) x += bias[n];
        C[m * N + n] = relu ? fmaxf(x, 0.f) : x;
    }
}
