// gemm_naive.cu: the thesis's starting point for the dense layer, one thread per output element.
//
// Formula (seed 003, §2.5.2 and §3.1.2): Y = X·W + b, then ReLU; backward dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ_rows dY.
//
// Strategy: C[m, n] = Σ_k A(m, k)·B(k, n), where A(m, k) = A[m·sam + k·sak] and B(k, n) = B[k·sbk + n·sbn].
// The strides make the three products of the layer one kernel: the forward pass reads X and W row-major, dX reads
// W through (1, N) strides (Wᵀ), dW reads X through (1, K) strides (Xᵀ). A 2-D grid puts n on x, so a warp writes
// 32 consecutive outputs of one row and reads one B row coalesced. Every operand is read straight from global
// memory (L1/L2 do whatever reuse they can): no shared memory, no register blocking.
// Offsets are 64-bit (long long), so matrices past 2^31 elements index correctly; rows go on grid.y in chunks of
// 65535 blocks (the kernel loops over them).

extern "C" __global__ void gemm_naive(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                                      const float* __restrict__ bias, int M, int N, int K, long long sam,
                                      long long sak, long long sbk, long long sbn, long long ldc, int relu)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    for (long long m = (long long)blockIdx.y * blockDim.y + threadIdx.y; m < M;
         m += (long long)gridDim.y * blockDim.y) {
        const float* a = A + m * sam;
        const float* b = B + n * sbn;
        float acc = 0.0f;
        for (int k = 0; k < K; ++k) acc += a[k * sak] * b[k * sbk];
        if (bias) acc += bias[n];
        if (relu) acc = fmaxf(acc, 0.0f);
        C[m * ldc + n] = acc;
    }
}

// db[n] = Σ_m dY[m, n]: one thread per column, summing its rows in order.
extern "C" __global__ void colsum_naive(const float* __restrict__ Y, float* __restrict__ out, int M, int N)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float acc = 0.0f;
    for (long long m = 0; m < M; ++m) acc += Y[m * N + n];
    out[n] = acc;
}
