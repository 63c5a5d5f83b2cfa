// gemm_smem.cu: ladder step v2 of the dense layer's SGEMM, shared-memory tiling (forward product only).
//
// Formula (seed 003, §2.5.2): Y = X·W + b, then ReLU (C = A·B, A M×K row-major, B K×N row-major, C M×N).
//
// Strategy: a block of 32×32 threads computes a 32×32 tile of C, one output per thread. K advances 32 at a time:
// the block copies A's 32×32 and B's 32×32 slices into shared memory (coalesced: a warp reads 32 consecutive
// floats of one row), synchronises, and each thread takes the dot product of its A row and B column from shared
// memory (A reads are broadcasts, B reads consecutive). Each global element is read BM = BN = 32 times fewer
// than by the naive kernel; the loop is still one shared load per FMA, which bounds this step. Out-of-range
// elements are loaded as 0 (any M, N, K); offsets are 64-bit. Strict IEEE float32 (no fast-math).

#define TS 32

extern "C" __global__ void __launch_bounds__(TS * TS)
gemm_smem(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
          const float* __restrict__ bias, int M, int N, int K, int relu)
{
    __shared__ float As[TS][TS];
    __shared__ float Bs[TS][TS + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long m = (long long)blockIdx.y * TS + ty;
    const int n = blockIdx.x * TS + tx;
    float acc = 0.f;
    for (int k0 = 0; k0 < K; k0 += TS) {
        As[ty][tx] = (m < M && k0 + tx < K) ? A[m * K + k0 + tx] : 0.f;
        Bs[ty][tx] = (k0 + ty < K && n < N) ? B[(long long)(k0 + ty) * N + n] : 0.f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TS; ++kk) acc = fmaf(As[ty][kk], Bs[kk][tx], acc);
        __syncthreads();
    }
    if (m < M && n < N) {
        if (bias) acc += bias[n];
        C[m * N + n] = relu ? fmaxf(acc, 0.f) : acc;
    }
}
