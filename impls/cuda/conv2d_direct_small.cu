// conv2d_direct_small.cu: direct fprop convolution for layers with a short reduction (one group, C·R·S ≤ DTAB),
// the thesis's C = 3 layers above all.
//
// Formula (seed 003, §2.6.1), NCHW / KCRS, per-axis stride (uh, uw), padding (ph, pw), dilation (dh, dw):
//   y[n,k,p,q] = b[k] + Σ_{c<C,r<R,s<S} x[n,c,p·uh+r·dh−ph,q·uw+s·dw−pw]·w[k,c,r,s]
//
// Why: on these layers the implicit GEMM's blocks are bound by the latency of their chain of reduction slices
// (a slice = gather to registers, store to shared memory, barrier, multiply), not by FMAs; the GEMM is tiny
// (C = 3: 27-term reduction). Here there is no slice chain: each thread owns one output pixel (n, p, q) and DK = 16
// output channels k0 .. k0+15 (blockIdx.y picks k0), and
// - the block stages the (c, r, s) table (the fprop table of conv2d_implicit_gemm.cu: {c·H·W + r·dh·W + s·dw,
//   r·dh, s·dw, 0}) and its DK filters (transposed to [crs][DK], zero past K) in shared memory, one barrier;
// - the thread gathers DCRS = 32 patch elements at once into registers (independent loads: one memory round trip
//   per 32 reduction terms; neighbouring threads read neighbouring x, mostly L1 hits), then does 32 × DK FMAs
//   with the filters read as float4 broadcasts; C·R·S > 32 loops over chunks of 32 (in order c, r, s), the next
//   chunk's gathers issued before this chunk's FMAs (registers: 2 × 32 patch + 16 accumulators);
// - writes y[n, k, p, q] for its DK channels (consecutive threads: consecutive q, coalesced per channel), + bias.
// Threads: 256 per block, grid (ceil(N·P·Q / 256), ceil(K / DK)). Offsets are 64-bit. Strict FP32, one FMA per
// product-sum, reduction in (c, r, s) order.

#define NT 256
#define DK 16     // output channels per thread
#define DCRS 32   // patch elements gathered per round trip
#define DTAB 352  // largest C·R·S (impls/cuda/conv2d.py checks: DIRECT_CRS_MAX)

// The thread's patch elements base .. base+DCRS−1 (0 past CRS and outside the image): independent loads.
__device__ __forceinline__ void gather(float (&v)[DCRS], const float* __restrict__ x, const int4* stab,
                                       long long xbase, int h0, int w0, int H, int W, int base, int CRS)
{
#pragma unroll
    for (int i = 0; i < DCRS; ++i) {
        v[i] = 0.f;
        if (base + i < CRS) {
            const int4 t = stab[base + i];
            const int ih = h0 + t.y, iw = w0 + t.z;
            if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) v[i] = __ldg(&x[xbase + t.x]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(NT)
conv_fprop_direct(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                  float* __restrict__ y, const int4* __restrict__ tab, int N, int C, int H, int W, int K, int R,
                  int S, int P, int Q, int uh, int uw, int ph, int pw, int dh, int dw, int G)
{
    __shared__ int4 stab[DTAB];
    __shared__ __align__(16) float ws[DTAB][DK];
    const int CRS = C * R * S, k0 = blockIdx.y * DK;
    for (int e = threadIdx.x; e < CRS; e += NT) stab[e] = __ldg(&tab[e]);
    for (int e = threadIdx.x; e < CRS * DK; e += NT) {
        const int i = e / DK, j = e - i * DK;
        ws[i][j] = (k0 + j < K) ? __ldg(&w[(long long)(k0 + j) * CRS + i]) : 0.f;
    }
    __syncthreads();

    const long long PQ = (long long)P * Q, m = (long long)blockIdx.x * NT + threadIdx.x;
    if (m >= (long long)N * PQ) return;
    const long long n = m / PQ;
    const int pq = (int)(m - n * PQ), p = pq / Q, q = pq - p * Q;
    const int h0 = p * uh - ph, w0 = q * uw - pw;
    const long long xbase = n * C * H * W + (long long)h0 * W + w0;  // x offset of (n, 0, h0, w0); may be < 0

    float acc[DK];
#pragma unroll
    for (int j = 0; j < DK; ++j) acc[j] = 0.f;
    float xv[DCRS];
    gather(xv, x, stab, xbase, h0, w0, H, W, 0, CRS);
    for (int base = 0; base < CRS; base += DCRS) {
        const bool more = base + DCRS < CRS;
        float xn[DCRS];  // the next chunk's gathers in flight during this chunk's FMAs
        if (more) gather(xn, x, stab, xbase, h0, w0, H, W, base + DCRS, CRS);
#pragma unroll
        for (int i = 0; i < DCRS; ++i) {
            if (base + i < CRS) {
#pragma unroll
                for (int g = 0; g < DK / 4; ++g) {
                    const float4 v = *reinterpret_cast<const float4*>(&ws[base + i][g * 4]);
                    acc[g * 4] = fmaf(xv[i], v.x, acc[g * 4]);
                    acc[g * 4 + 1] = fmaf(xv[i], v.y, acc[g * 4 + 1]);
                    acc[g * 4 + 2] = fmaf(xv[i], v.z, acc[g * 4 + 2]);
                    acc[g * 4 + 3] = fmaf(xv[i], v.w, acc[g * 4 + 3]);
                }
            }
        }
        if (more) {
#pragma unroll
            for (int i = 0; i < DCRS; ++i) xv[i] = xn[i];
        }
    }
    float* __restrict__ yo = y + n * K * PQ + pq;
#pragma unroll
    for (int j = 0; j < DK; ++j)
        if (k0 + j < K) yo[(long long)(k0 + j) * PQ] = acc[j] + (b ? __ldg(&b[k0 + j]) : 0.f);
}
