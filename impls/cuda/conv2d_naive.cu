// conv2d_naive.cu: direct convolution, one thread per output element, for fprop, dgrad and wgrad (+ db).
//
// Formula (seed 003, §2.6.1), NCHW / KCRS, u = stride:
//   fprop  y[n,k,p,q]  = b[k] + Σ_{c,r,s} x[n,c,p·u+r−pad,q·u+s−pad]·w[k,c,r,s]
//   dgrad  dx[n,c,h,w] = Σ_{k,r,s} dy[n,k,p,q]·w[k,c,r,s] over the (p, q) with p·u+r−pad = h, q·u+s−pad = w
//   wgrad  dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x[n,c,p·u+r−pad,q·u+s−pad],   db[k] = Σ_{n,p,q} dy[n,k,p,q]
//
// Strategy: the thesis's starting point. A 1-D grid-stride loop gives each thread one output element (64-bit
// linear index, so tensors past 2^31 elements work); the thread decomposes its index and sums the formula's terms
// in order, reading every operand straight from global memory. Padding is handled by skipping taps that fall
// outside the image; dgrad gathers (each dx element sums the dy entries it contributed to, no atomics).

extern "C" __global__ void conv_fprop_naive(const float* __restrict__ x, const float* __restrict__ w,
                                            const float* __restrict__ b, float* __restrict__ y, int N, int C, int H,
                                            int W, int K, int R, int S, int P, int Q, int u, int pad)
{
    const long long total = (long long)N * K * P * Q;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int q = (int)(i % Q), p = (int)((i / Q) % P), k = (int)((i / ((long long)P * Q)) % K);
        const long long n = i / ((long long)K * P * Q);
        float acc = 0.f;
        for (int c = 0; c < C; ++c)
            for (int r = 0; r < R; ++r) {
                const int h = p * u + r - pad;
                if (h < 0 || h >= H) continue;
                for (int s = 0; s < S; ++s) {
                    const int ww = q * u + s - pad;
                    if (ww < 0 || ww >= W) continue;
                    acc += x[((n * C + c) * H + h) * W + ww] * w[(((long long)k * C + c) * R + r) * S + s];
                }
            }
        y[i] = acc + b[k];
    }
}

extern "C" __global__ void conv_dgrad_naive(const float* __restrict__ dy, const float* __restrict__ w,
                                            float* __restrict__ dx, int N, int C, int H, int W, int K, int R, int S,
                                            int P, int Q, int u, int pad)
{
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int ww = (int)(i % W), h = (int)((i / W) % H), c = (int)((i / ((long long)H * W)) % C);
        const long long n = i / ((long long)C * H * W);
        float acc = 0.f;
        for (int k = 0; k < K; ++k)
            for (int r = 0; r < R; ++r) {
                const int ph = h + pad - r;  // = p·u when tap r of output row p lands on h
                if (ph < 0 || ph % u) continue;
                const int p = ph / u;
                if (p >= P) continue;
                for (int s = 0; s < S; ++s) {
                    const int qw = ww + pad - s;
                    if (qw < 0 || qw % u) continue;
                    const int q = qw / u;
                    if (q >= Q) continue;
                    acc += dy[((n * K + k) * P + p) * Q + q] * w[(((long long)k * C + c) * R + r) * S + s];
                }
            }
        dx[i] = acc;
    }
}

extern "C" __global__ void conv_wgrad_naive(const float* __restrict__ x, const float* __restrict__ dy,
                                            float* __restrict__ dw, int N, int C, int H, int W, int K, int R, int S,
                                            int P, int Q, int u, int pad)
{
    const long long total = (long long)K * C * R * S;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int s = (int)(i % S), r = (int)((i / S) % R), c = (int)((i / ((long long)R * S)) % C);
        const int k = (int)(i / ((long long)C * R * S));
        float acc = 0.f;
        for (long long n = 0; n < N; ++n)
            for (int p = 0; p < P; ++p) {
                const int h = p * u + r - pad;
                if (h < 0 || h >= H) continue;
                for (int q = 0; q < Q; ++q) {
                    const int ww = q * u + s - pad;
                    if (ww < 0 || ww >= W) continue;
                    acc += dy[((n * K + k) * P + p) * Q + q] * x[((n * C + c) * H + h) * W + ww];
                }
            }
        dw[i] = acc;
    }
}

// db[k] = Σ_{n,p,q} dy[n,k,p,q]: one thread per k.
extern "C" __global__ void conv_db_naive(const float* __restrict__ dy, float* __restrict__ db, int N, int K, int PQ)
{
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= K) return;
    float acc = 0.f;
    for (long long n = 0; n < N; ++n)
        for (int j = 0; j < PQ; ++j) acc += dy[(n * K + k) * PQ + j];
    db[k] = acc;
}
