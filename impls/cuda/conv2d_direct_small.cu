// conv2d_direct_small.cu: direct fprop convolution for layers with a short reduction (one group, C·R·S ≤ DTAB),
// the thesis's C = 3 layers above all (conv_fprop_direct); conv_fprop_direct_split (below) splits a longer
// reduction inside the block (the C = 16 / 32 layers), and conv_dgrad_direct_split runs stride-1 dgrad through it;
// conv_wgrad_direct (end of file) computes dw and db of such layers in one launch.
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
// conv2d_bias_relu compiles this file again with -DCONV_RELU=1: the fprop kernels then write max(0, y) (the
// dgrad kernel, FLIP, never: it is not launched from that module, and ignores the flag).

#define NT 256
#define DK 16     // output channels per thread
#define DCRS 32   // patch elements gathered per round trip
#define DTAB 352  // largest C·R·S (impls/cuda/conv2d.py checks: DIRECT_CRS_MAX)
#ifndef CONV_RELU
#define CONV_RELU 0
#endif

// fprop's output epilogue: v, or ReLU(v) in the -DCONV_RELU=1 module (as eltwise.cu's relu_f).
__device__ __forceinline__ float fprop_out(float v) { return CONV_RELU ? (v > 0.f ? v : 0.f) : v; }

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

// acc[j] += Σ_{i in [lo, hi)} patch[i] · ws[i][j]: chunks of DCRS gathers, the next chunk's loads issued before
// this chunk's DCRS × DK FMAs (the filters read as float4 broadcasts), terms in index order.
__device__ __forceinline__ void accumulate(float (&acc)[DK], const float* __restrict__ x, const int4* stab,
                                           const float (*ws)[DK], long long xbase, int h0, int w0, int H, int W,
                                           int lo, int hi)
{
    float xv[DCRS];
    gather(xv, x, stab, xbase, h0, w0, H, W, lo, hi);
    for (int base = lo; base < hi; base += DCRS) {
        const bool more = base + DCRS < hi;
        float xn[DCRS];  // the next chunk's gathers in flight during this chunk's FMAs
        if (more) gather(xn, x, stab, xbase, h0, w0, H, W, base + DCRS, hi);
#pragma unroll
        for (int i = 0; i < DCRS; ++i) {
            if (base + i < hi) {
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
    accumulate(acc, x, stab, ws, xbase, h0, w0, H, W, 0, CRS);
    float* __restrict__ yo = y + n * K * PQ + pq;
#pragma unroll
    for (int j = 0; j < DK; ++j)
        if (k0 + j < K) yo[(long long)(k0 + j) * PQ] = fprop_out(acc[j] + (b ? __ldg(&b[k0 + j]) : 0.f));
}

// conv_fprop_direct_split: the same direct fprop for a longer reduction (C·R·S up to DTAB: the thesis's C = 16 and
// C = 32 layers, 144 and 288 terms), with the reduction split INSIDE the block so that each thread's chain of
// gather round trips stays short and the layer spreads over more blocks (the implicit GEMM ran 9-36 blocks there).
// A block is SPX = 32 pixels × SPART = 8 parts of the reduction (256 threads; thread t: pixel t % SPX, part
// t / SPX, so a warp is one part over 32 consecutive pixels); part j takes the contiguous terms
// [j·L, min((j+1)·L, CRS)), L = ceil(CRS / SPART), in chunks of DCRS (≤ 2 round trips for CRS ≤ 352), into DK = 16
// accumulators, as conv_fprop_direct. The partial sums go to shared memory (red[part][channel][pixel]); after a
// barrier thread t sums outputs o = t and t + 256 (channel o / SPX, pixel o % SPX) over the parts in order
// 0 .. SPART−1 (deterministic), + bias, and writes y (consecutive threads: consecutive pixels).
// Grid (ceil(N·P·Q / SPX), ceil(K / DK)); shared memory: table 5.6 KB + filters 22.5 KB + partials 16 KB.
//
// conv_dgrad_direct_split: dgrad with stride 1 as this fprop (FLIP = true). For stride 1,
//   dx[n,c,h,w] = Σ_{k,r,s} dy[n,k,h+ph−r·dh,w+pw−s·dw]·w[k,c,r,s]
// is the fprop of dy (N × K × P × Q) with the filters w'[c,k,r',s'] = w[k,c,R−1−r',S−1−s'], stride 1, padding
// (dh·(R−1)−ph, dw·(S−1)−pw) (≥ 0: the host checks), the same dilation: r = R−1−r' turns h + r'·dh − ph' into
// h + ph − r·dh. The host passes that fprop's geometry (C := K, H := P, W := Q, K := C, its table); only the filter
// load differs: entry i = kk·R·S + rs (kk < the geometry's C = the layer's K) of channel c reads
// w[(kk·K' + c)·R·S + R·S−1−rs] (K' = the geometry's K = the layer's C).
#define SPX 32
#define SPART 8

template <bool FLIP>
__device__ __forceinline__ void direct_split(const float* __restrict__ x, const float* __restrict__ w,
                                             const float* __restrict__ b, float* __restrict__ y,
                                             const int4* __restrict__ tab, int N, int C, int H, int W, int K,
                                             int R, int S, int P, int Q, int uh, int uw, int ph, int pw)
{
    __shared__ int4 stab[DTAB];
    __shared__ __align__(16) float ws[DTAB][DK];
    __shared__ float red[SPART][DK][SPX];
    const int CRS = C * R * S, k0 = blockIdx.y * DK;
    for (int e = threadIdx.x; e < CRS; e += NT) stab[e] = __ldg(&tab[e]);
    const int RS = R * S;
    for (int e = threadIdx.x; e < CRS * DK; e += NT) {
        const int i = e / DK, j = e - i * DK;
        long long src = (long long)(k0 + j) * CRS + i;
        if (FLIP) {
            const int kk = i / RS, rs = i - kk * RS;
            src = ((long long)kk * K + k0 + j) * RS + (RS - 1 - rs);
        }
        ws[i][j] = (k0 + j < K) ? __ldg(&w[src]) : 0.f;
    }
    __syncthreads();

    const int px = threadIdx.x % SPX, part = threadIdx.x / SPX;
    const long long PQ = (long long)P * Q, NPQ = (long long)N * PQ, m = (long long)blockIdx.x * SPX + px;
    float acc[DK];
#pragma unroll
    for (int j = 0; j < DK; ++j) acc[j] = 0.f;
    const int L = (CRS + SPART - 1) / SPART, lo = part * L, hi = min(lo + L, CRS);
    if (m < NPQ && lo < hi) {
        const long long n = m / PQ;
        const int pq = (int)(m - n * PQ), p = pq / Q, q = pq - p * Q;
        const int h0 = p * uh - ph, w0 = q * uw - pw;
        const long long xbase = n * C * H * W + (long long)h0 * W + w0;  // x offset of (n, 0, h0, w0); may be < 0
        accumulate(acc, x, stab, ws, xbase, h0, w0, H, W, lo, hi);
    }
#pragma unroll
    for (int j = 0; j < DK; ++j) red[part][j][px] = acc[j];
    __syncthreads();

#pragma unroll
    for (int t = 0; t < SPX * DK / NT; ++t) {
        const int o = threadIdx.x + t * NT, j = o / SPX, opx = o - j * SPX;
        const long long mo = (long long)blockIdx.x * SPX + opx;
        if (mo < NPQ && k0 + j < K) {
            float sum = red[0][j][opx];
#pragma unroll
            for (int pt = 1; pt < SPART; ++pt) sum += red[pt][j][opx];
            const long long n = mo / PQ, pq = mo - n * PQ;
            const float v = sum + (b ? __ldg(&b[k0 + j]) : 0.f);
            y[(n * K + k0 + j) * PQ + pq] = FLIP ? v : fprop_out(v);
        }
    }
}

extern "C" __global__ void __launch_bounds__(NT)
conv_fprop_direct_split(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                        float* __restrict__ y, const int4* __restrict__ tab, int N, int C, int H, int W, int K,
                        int R, int S, int P, int Q, int uh, int uw, int ph, int pw, int dh, int dw, int G)
{
    direct_split<false>(x, w, b, y, tab, N, C, H, W, K, R, S, P, Q, uh, uw, ph, pw);
}

// dy, w: the layer's; dx: the output; geometry and table: the equivalent fprop's (see conv_dgrad_direct_split above).
extern "C" __global__ void __launch_bounds__(NT)
conv_dgrad_direct_split(const float* __restrict__ dy, const float* __restrict__ w, const float* __restrict__ b,
                        float* __restrict__ dx, const int4* __restrict__ tab, int N, int C, int H, int W, int K,
                        int R, int S, int P, int Q, int uh, int uw, int ph, int pw, int dh, int dw, int G)
{
    direct_split<true>(dy, w, b, dx, tab, N, C, H, W, K, R, S, P, Q, uh, uw, ph, pw);
}

// conv_wgrad_direct: dw and db of a layer with few output pixels (the thesis's 6×6 .. 16×16 layers), in one launch.
//   dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x[n,c,p·uh+r·dh−ph,q·uw+s·dw−pw]   (seed 003, §2.6.2);   db[k] = Σ dy[n,k,p,q]
// Why: the implicit GEMM (conv_wgrad_32x128_s) runs such a layer as a few blocks each chaining its reduction
// slices, then splitk_reduce and bias_grad_partial: three launches for ~5 M FMAs. Here a block owns WE = 16
// (c, r, s) entries × DK = 16 output channels (grid (ceil(C·R·S / WE), ceil(K / DK))) and the WHOLE reduction over
// the N·P·Q pixels, split inside the block: thread t takes entry t % WE and part t / WE of WPARTS = 16. The pixels
// go in chunks of WPARTS × WCH = 512: the block stages the chunk's dy for its DK channels in shared memory
// ([pixel][channel + pad], whole 32-byte sectors along the pixels), each thread gathers its entry's x at its
// part's WCH = 32 pixels (independent loads, issued before the barrier) and does 32 × DK FMAs with dy read as
// float4 broadcasts.
// The blocks of the first entry chunk also add up db from the same staged dy (thread t: channel t % DK). Then the WPARTS partial sums go
// through shared memory and thread t sums output (channel t / WE, entry t % WE) over the parts in order 0 ..
// WPARTS−1 (deterministic). One group; the table is fprop's ({c·H·W + r·dh·W + s·dw, r·dh, s·dw, 0}). Offsets are
// 64-bit; strict FP32, each thread's terms in pixel order.
// v2 (the pixels across blocks too, for layers whose entry × channel blocks are far fewer than the SMs: C16 6×6
// has 18): grid.z = Z blocks share an (entry, channel) block's reduction, block z taking pixels [z·ppb, (z+1)·ppb).
// With Z > 1 each writes its block sum (dw: Z × K × C·R·S, db: Z × K floats in ws) and takes a ticket (atomicAdd
// on tickets[blockIdx.y·gridDim.x + blockIdx.x] after a __threadfence); the block that takes ticket Z − 1 adds the
// Z sums in order z = 0 .. Z−1 (deterministic whatever the arrival order), writes dw and db and resets the
// ticket for the next launch on this stream (impls/cuda/common.py's tickets: one set per device and stream).
#define WE 16
#define WPARTS 16
#define WCH 32
#define WROW (DK + 4)  // dys's row: DK channels and a pad that keeps rows 16-byte aligned, stores conflict-free

extern "C" __global__ void __launch_bounds__(NT)
conv_wgrad_direct(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
                  float* __restrict__ db, const int4* __restrict__ tab, int N, int C, int H, int W, int K, int R,
                  int S, int P, int Q, int uh, int uw, int ph, int pw, int dh, int dwl, int G, int ppb,
                  float* ws, unsigned* tickets)
{
    __shared__ __align__(16) float dys[WPARTS * WCH][WROW];  // the chunk's dy; then the parts' partial sums
    __shared__ bool last;
    const int CRS = C * R * S, e0 = blockIdx.x * WE, k0 = blockIdx.y * DK;
    const int ei = threadIdx.x % WE, part = threadIdx.x / WE, e = e0 + ei;
    const bool with_db = db != nullptr && blockIdx.x == 0;
    const int4 t = e < CRS ? __ldg(&tab[e]) : make_int4(0, 0, 0, 0);
    const int PQ = P * Q, NPQ = min(N * PQ, (int)(blockIdx.z + 1) * ppb);  // this block's pixel end; < 2^31
    const long long CHW = (long long)C * H * W;
    float acc[DK], dbacc = 0.f;
#pragma unroll
    for (int j = 0; j < DK; ++j) acc[j] = 0.f;

    for (int base = blockIdx.z * ppb; base < NPQ; base += WPARTS * WCH) {
        float xv[WCH];  // this thread's entry at its part's pixels: gathers in flight while dy is staged
        const int m0 = base + part * WCH;
        int n = m0 / PQ, p = (m0 - n * PQ) / Q, q = m0 - n * PQ - p * Q;  // of pixel m0, then stepped
#pragma unroll
        for (int i = 0; i < WCH; ++i) {
            const int ih = p * uh - ph + t.y, iw = q * uw - pw + t.z;
            xv[i] = (e < CRS && m0 + i < NPQ && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W)
                        ? __ldg(&x[n * CHW + (long long)(ih - t.y) * W + (iw - t.z) + t.x]) : 0.f;
            if (++q == Q) {
                q = 0;
                if (++p == P) p = 0, ++n;
            }
        }
        // dy[n, k0 + j, pixel] of the chunk's pixels: a warp's 32 loads are 8 consecutive pixels (one 32-byte
        // sector) × 4 channels, and land in 32 different banks (rows padded to WROW floats)
#pragma unroll
        for (int a = 0; a < WPARTS * WCH / (8 * NT / 32); ++a) {
            const int px = (a * (NT / 32) + threadIdx.x / 32) * 8 + threadIdx.x % 8, m = base + px, mn = m / PQ;
            const long long row = (long long)mn * K * PQ + (m - mn * PQ);
#pragma unroll
            for (int b = 0; b < DK / 4; ++b) {
                const int j = b * 4 + threadIdx.x % 32 / 8;
                dys[px][j] = (m < NPQ && k0 + j < K) ? __ldg(&dy[row + (long long)(k0 + j) * PQ]) : 0.f;
            }
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < WCH; ++i) {
#pragma unroll
            for (int g = 0; g < DK / 4; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(&dys[part * WCH + i][g * 4]);
                acc[g * 4] = fmaf(xv[i], v.x, acc[g * 4]);
                acc[g * 4 + 1] = fmaf(xv[i], v.y, acc[g * 4 + 1]);
                acc[g * 4 + 2] = fmaf(xv[i], v.z, acc[g * 4 + 2]);
                acc[g * 4 + 3] = fmaf(xv[i], v.w, acc[g * 4 + 3]);
            }
        }
        if (with_db) {  // db: thread t adds channel t % DK at pixels t / DK, + NT / DK, ... of the chunk
            for (int px = threadIdx.x / DK; px < WPARTS * WCH; px += NT / DK) dbacc += dys[px][threadIdx.x % DK];
        }
        __syncthreads();  // dys is restaged (or reused for the partials) only after every thread read it
    }

    float(*red)[DK][WE] = reinterpret_cast<float(*)[DK][WE]>(&dys[0][0]);  // [part][channel][entry]: 16 KB
#pragma unroll
    for (int j = 0; j < DK; ++j) red[part][j][ei] = acc[j];
    __syncthreads();
    const int j = threadIdx.x / WE, o = threadIdx.x - j * WE;  // NT = DK × WE outputs, one per thread
    const bool mine = k0 + j < K && e0 + o < CRS;
    const long long out = (long long)(k0 + j) * CRS + e0 + o, zsize = (long long)K * CRS;
    float sum = red[0][j][o];
#pragma unroll
    for (int pt = 1; pt < WPARTS; ++pt) sum += red[pt][j][o];
    float dbsum = 0.f;
    if (with_db) {  // uniform per block
        __syncthreads();
        float* dbs = &dys[0][0];  // [pixel offset t / DK][channel t % DK]
        dbs[threadIdx.x] = dbacc;
        __syncthreads();
        if (threadIdx.x < DK) {
            dbsum = dbs[threadIdx.x];
            for (int pt = 1; pt < NT / DK; ++pt) dbsum += dbs[pt * DK + threadIdx.x];
        }
    }
    const bool db_out = with_db && threadIdx.x < DK && k0 + threadIdx.x < K;
    if (gridDim.z == 1) {
        if (mine) dw[out] = sum;
        if (db_out) db[k0 + threadIdx.x] = dbsum;
        return;
    }
    // v2: this block's sums into ws, a ticket; the last of the Z blocks adds them in z order
    float* wsdb = ws + gridDim.z * zsize;  // [z][k]
    if (mine) ws[blockIdx.z * zsize + out] = sum;
    if (db_out) wsdb[blockIdx.z * K + k0 + threadIdx.x] = dbsum;
    __threadfence();  // the sums are visible device-wide before the ticket says so
    __syncthreads();
    unsigned* ticket = &tickets[blockIdx.y * gridDim.x + blockIdx.x];
    if (threadIdx.x == 0) last = atomicAdd(ticket, 1u) == gridDim.z - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const volatile float* vws = ws;
    if (mine) {
        float total = vws[out];
        for (unsigned z = 1; z < gridDim.z; ++z) total += vws[z * zsize + out];
        dw[out] = total;
    }
    if (db_out) {
        float total = vws[gridDim.z * zsize + k0 + threadIdx.x];
        for (unsigned z = 1; z < gridDim.z; ++z) total += vws[gridDim.z * zsize + z * K + k0 + threadIdx.x];
        db[k0 + threadIdx.x] = total;
    }
    if (threadIdx.x == 0) *ticket = 0u;
}
