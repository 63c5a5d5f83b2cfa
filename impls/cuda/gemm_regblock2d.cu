// gemm_regblock2d.cu: ladder step v4 of the dense layer's SGEMM, 2-D register blocking (forward product only).
//
// Formula (seed 003, §2.5.2): Y = X·W + b, then ReLU (C = A·B, A M×K row-major, B K×N row-major, C M×N).
//
// Strategy: a block of 256 threads computes a 128×128 tile of C; each thread owns an 8×8 sub-tile (rows ty·8..+7,
// columns tx·8..+7, tx = tid % 16, ty = tid / 16) in 64 registers. K advances 8 at a time: A's 128×8 and B's 8×128
// slices go to shared memory with 4 scalar, bounds-checked loads per thread each (A stored k-major, As[k][m]).
// Per k a thread reads 8 A and 8 B values into registers and does their 64 outer-product FMAs: 16 shared loads
// per 64 FMAs (v3: 9 per 8). Single-buffered: loads and math of a slice do not overlap (v5 adds float4 loads,
// double buffering and conflict-free fragment reads). Out-of-range elements are loaded as 0 (any M, N, K);
// offsets are 64-bit. Strict IEEE float32 (no fast-math).

#define BM 128
#define BN 128
#define BK 8
#define TM 8
#define TN 8
#define NT 256

extern "C" __global__ void __launch_bounds__(NT)
gemm_regblock2d(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                const float* __restrict__ bias, int M, int N, int K, int relu)
{
    __shared__ float As[BK][BM];
    __shared__ float Bs[BK][BN];
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int tx = tid % 16, ty = tid / 16;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;
    for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
        for (int l = 0; l < BM * BK / NT; ++l) {  // A: element e = tid + l·NT at (m, k) = (e / 8, e % 8)
            const int e = tid + l * NT, m = e / BK, k = e % BK;
            As[k][m] = (m0 + m < M && k0 + k < K) ? A[(long long)(m0 + m) * K + k0 + k] : 0.f;
        }
#pragma unroll
        for (int l = 0; l < BK * BN / NT; ++l) {  // B: element e at (k, n) = (e / 128, e % 128)
            const int e = tid + l * NT, k = e / BN, n = e % BN;
            Bs[k][n] = (k0 + k < K && n0 + n < N) ? B[(long long)(k0 + k) * N + n0 + n] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = As[kk][ty * TM + i];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx * TN + j];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const long long m = m0 + ty * TM + i;
        if (m >= M) break;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + tx * TN + j;
            if (n >= N) break;
            float x = acc[i][j];
            if (bias) x += bias[n];
            C[m * N + n] = relu ? fmaxf(x, 0.f) : x;
        }
    }
}
