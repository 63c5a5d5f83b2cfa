// conv2d_naive.cu: direct convolution, one thread per output element, for fprop, dgrad and wgrad (+ db).
//
// Formula (seed 003, §2.6.1), NCHW / KCRS, per-axis stride (uh, uw), padding (ph, pw) and dilation (dh, dw), G
// groups of Cg = C/G input and Kg = K/G output channels (w is K × Cg × R × S; output channel k belongs to group
// g = k / Kg and reads input channels g·Cg .. g·Cg + Cg − 1):
//   fprop  y[n,k,p,q]       = b[k] + Σ_{c<Cg,r,s} x[n,g·Cg+c,p·uh+r·dh−ph,q·uw+s·dw−pw]·w[k,c,r,s]
//   dgrad  dx[n,g·Cg+c,h,w] = Σ_{k in group g,r,s} dy[n,k,p,q]·w[k,c,r,s] over the (p, q) with p·uh+r·dh−ph = h,
//                             q·uw+s·dw−pw = w
//   wgrad  dw[k,c,r,s]      = Σ_{n,p,q} dy[n,k,p,q]·x[n,g·Cg+c,p·uh+r·dh−ph,q·uw+s·dw−pw]
//   bias   db[k]            = Σ_{n,p,q} dy[n,k,p,q]
//
// Strategy: the thesis's starting point. A 1-D grid-stride loop gives each thread one output element (64-bit
// linear index, so tensors past 2^31 elements work); the thread decomposes its index and sums the formula's terms
// in order, reading every operand straight from global memory. Padding is handled by skipping taps that fall
// outside the image; dgrad gathers (each dx element sums the dy entries it contributed to, no atomics).
// conv2d_bias_relu (y = max(0, conv + b)) runs conv_fprop_naive compiled with -DCONV_RELU=1.

// The common int arguments of every kernel, in impls/cuda/conv2d.py's _args order (C and K count all groups).
#define CONV_GEOMETRY int N, int C, int H, int W, int K, int R, int S, int P, int Q, int uh, int uw, int ph, int pw, \
                      int dh, int dw, int G
#ifndef CONV_RELU
#define CONV_RELU 0
#endif

extern "C" __global__ void conv_fprop_naive(const float* __restrict__ x, const float* __restrict__ w,
                                            const float* __restrict__ b, float* __restrict__ y, CONV_GEOMETRY)
{
    const int Cg = C / G, Kg = K / G;
    const long long total = (long long)N * K * P * Q;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int q = (int)(i % Q), p = (int)((i / Q) % P), k = (int)((i / ((long long)P * Q)) % K);
        const long long n = i / ((long long)K * P * Q);
        const int c0 = k / Kg * Cg;  // the group's first input channel
        float acc = 0.f;
        for (int c = 0; c < Cg; ++c)
            for (int r = 0; r < R; ++r) {
                const int h = p * uh + r * dh - ph;
                if (h < 0 || h >= H) continue;
                for (int s = 0; s < S; ++s) {
                    const int ww = q * uw + s * dw - pw;
                    if (ww < 0 || ww >= W) continue;
                    acc += x[((n * C + c0 + c) * H + h) * W + ww] * w[(((long long)k * Cg + c) * R + r) * S + s];
                }
            }
        const float v = acc + b[k];
        y[i] = CONV_RELU ? (v > 0.f ? v : 0.f) : v;
    }
}

extern "C" __global__ void conv_dgrad_naive(const float* __restrict__ dy, const float* __restrict__ w,
                                            float* __restrict__ dx, CONV_GEOMETRY)
{
    const int Cg = C / G, Kg = K / G;
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int ww = (int)(i % W), h = (int)((i / W) % H), ct = (int)((i / ((long long)H * W)) % C);
        const long long n = i / ((long long)C * H * W);
        const int g = ct / Cg, c = ct % Cg;  // the group and the channel within it
        float acc = 0.f;
        for (int k = g * Kg; k < (g + 1) * Kg; ++k)
            for (int r = 0; r < R; ++r) {
                const int hp = h + ph - r * dh;  // = p·uh when tap r of output row p lands on h
                if (hp < 0 || hp % uh) continue;
                const int p = hp / uh;
                if (p >= P) continue;
                for (int s = 0; s < S; ++s) {
                    const int wq = ww + pw - s * dw;
                    if (wq < 0 || wq % uw) continue;
                    const int q = wq / uw;
                    if (q >= Q) continue;
                    acc += dy[((n * K + k) * P + p) * Q + q] * w[(((long long)k * Cg + c) * R + r) * S + s];
                }
            }
        dx[i] = acc;
    }
}

// dw is K × Cg × R × S: one thread per weight.
extern "C" __global__ void conv_wgrad_naive(const float* __restrict__ x, const float* __restrict__ dy,
                                            float* __restrict__ dwt, CONV_GEOMETRY)
{
    const int Cg = C / G, Kg = K / G;
    const long long total = (long long)K * Cg * R * S;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int s = (int)(i % S), r = (int)((i / S) % R), c = (int)((i / ((long long)R * S)) % Cg);
        const int k = (int)(i / ((long long)Cg * R * S));
        const int ct = k / Kg * Cg + c;  // the input channel, counted over all groups
        float acc = 0.f;
        for (long long n = 0; n < N; ++n)
            for (int p = 0; p < P; ++p) {
                const int h = p * uh + r * dh - ph;
                if (h < 0 || h >= H) continue;
                for (int q = 0; q < Q; ++q) {
                    const int ww = q * uw + s * dw - pw;
                    if (ww < 0 || ww >= W) continue;
                    acc += dy[((n * K + k) * P + p) * Q + q] * x[((n * C + ct) * H + h) * W + ww];
                }
            }
        dwt[i] = acc;
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
