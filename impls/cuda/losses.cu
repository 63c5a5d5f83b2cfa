// Losses: softmax + cross-entropy over integer labels (forward: mean loss; backward: fused gradient) and the
// forward (mean) sigmoid binary cross-entropy. The sigmoid-BCE gradient is an elementwise map: eltwise.cu.
//
// Thesis (seed 003, §2.5.5, §3.1.1): p = softmax(z), L = −(1/N) Σ_n log p[n, label_n] with
// log p = z − m − log Σ_k e^(z_k − m), m = max_k z_k; ∂L/∂z = (p − onehot(label)) / N.
// Sigmoid BCE: L = (1/N) Σ max(z, 0) − z·t + log(1 + e^(−|z|)).
//
// Strategy.
// xent_fwd_naive / xent_bwd_naive: one thread per row of the N×K logits, three sequential loops (max, sum of
//   exponentials, then the label's term or the K gradients). The forward pass writes each row's loss to a
//   buffer of N floats and reduce_mean (one block) averages it.
// bce_fwd_naive: one thread per element writes its loss to a buffer of N floats; reduce_mean averages it.
// xent_fwd_vec: one warp per row, grid-stride over rows on a persistent grid. Softmax and cross-entropy are
//   fused in ONE pass over the row: each lane keeps an online (max m, sum s of e^(z − m)) pair, updated per
//   float4 (s ← s·e^(m_old − m_new) + Σ e^(z − m_new)); the 32 pairs are merged with warp shuffles (xor
//   butterfly, so every lane holds the same result). The row's loss is m + log s − z[label]. Each lane issues up
//   to 4 float4 loads per round (guarded, so a row of nvec float4 takes ceil(nvec / 128) rounds). Rows are split
//   into a scalar head up to the first 16-byte boundary, a float4 body and a scalar tail, so any K and any
//   alignment work. (Holding the row in registers instead, as the backward pass does, measured 75–89% of copy
//   against 85–91% for this kernel: the registers cost more occupancy than the single round trip saves; see
//   benchmarks/NOTES.md.)
// xent_bwd_vec_c8: one warp per row; a row of up to 32·8 float4 (1024 floats) is loaded into registers in one
//   go (8 float4 per lane, all issued before the first use), its statistics computed as in the forward pass, then
//   the gradient (e^(z − m)·(1/s) − [k = label])·(1/N) is written from the registers, as float4 when the gradient
//   and the logits share their alignment modulo 16 bytes: the logits are read from memory once.
// xent_bwd_vec_c0: the same for longer rows: the write pass reads the row again (from L2 / L1: the warp read it
//   just before).
// xent_fused_vec_c8 / _c0: the softmax_xent `fused` pass, loss and gradient in ONE launch: the backward kernels'
//   row loop, where lane 0 also adds the row's loss m + log s − z[label] from the statistics it already has; each
//   block writes its partial sum, takes a ticket (atomicInc on a per-stream counter, after a __threadfence), and
//   the block that takes the last ticket sums all partials in index order, writes the mean and resets the counter
//   (the threadfence reduction of the CUDA samples). The sum's order does not depend on which block ends last, so
//   the loss is the same bits from run to run, as with the two-stage mean. Three launches (fwd, reduce_mean, bwd)
//   and two reads of the logits become one launch and one read.
// bce_fwd_vec: a grid-stride float4 loop (head / body / tail as in eltwise.cu) with 4 float4 of each input in
//   flight per thread, a per-thread sum, a warp-shuffle sum and a block sum.
// Mean: deterministic two-stage reduction. Each block of a vec kernel writes its partial sum to partials[block]
//   in a fixed order (per-thread or per-warp sums, warp shuffles, then warp 0 over the warps' sums); reduce_mean,
//   one block, sums the partials in a fixed order and multiplies by 1/N. No atomics, so the loss is bit-identical
//   from run to run on one device.
// All arithmetic is IEEE float32 (no fast math): expf, logf and log1pf are CUDA's accurate versions.

#define NEG_INF __int_as_float(0xff800000)

constexpr int WARP = 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The block's sum of `v` over its threads, valid in thread 0. Fixed order: warp shuffles, then warp 0 sums the
// warps' sums. Every thread of the block must call it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x / WARP) ? warp_sums[lane] : 0.f;
    v = warp_sum(v);
  }
  return v;
}

// out[0] = (Σ v[i]) · inv_n, launched as ONE block (of up to 1024 threads): the second stage of every mean.
extern "C" __global__ void reduce_mean(const float* __restrict__ v, long long n, float inv_n,
                                       float* __restrict__ out) {
  float acc = 0.f;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = acc * inv_n;
}

// ------------------------------------------------------------------------------------------------- naive
extern "C" __global__ void xent_fwd_naive(const float* __restrict__ logits, const int* __restrict__ labels,
                                          long long N, int K, float* __restrict__ row_loss) {
  const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const float* z = logits + n * K;
  float m = z[0];
  for (int k = 1; k < K; ++k) m = fmaxf(m, z[k]);
  float s = 0.f;
  for (int k = 0; k < K; ++k) s += expf(z[k] - m);
  row_loss[n] = m + logf(s) - z[labels[n]];
}

extern "C" __global__ void xent_bwd_naive(const float* __restrict__ logits, const int* __restrict__ labels,
                                          long long N, int K, float inv_n, float* __restrict__ dlogits) {
  const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const float* z = logits + n * K;
  float* g = dlogits + n * K;
  float m = z[0];
  for (int k = 1; k < K; ++k) m = fmaxf(m, z[k]);
  float s = 0.f;
  for (int k = 0; k < K; ++k) s += expf(z[k] - m);
  const int label = labels[n];
  for (int k = 0; k < K; ++k) g[k] = (expf(z[k] - m) / s - (k == label ? 1.f : 0.f)) * inv_n;
}

__device__ __forceinline__ float bce_term(float z, float t) { return fmaxf(z, 0.f) - z * t + log1pf(expf(-fabsf(z))); }

extern "C" __global__ void bce_fwd_naive(const float* __restrict__ z, const float* __restrict__ t, long long n,
                                         float* __restrict__ elem_loss) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) elem_loss[i] = bce_term(z[i], t[i]);
}

// ------------------------------------------------------------------------------------------------- vec
// Online softmax statistics: the running max m and the sum s of e^(z − m) over the values seen.
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum ms_merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == NEG_INF) return {m, 0.f};
  return {m, (a.m == m ? a.s : a.s * expf(a.m - m)) + (b.m == m ? b.s : b.s * expf(b.m - m))};
}

__device__ __forceinline__ MaxSum ms_add(MaxSum a, float v) { return ms_merge(a, {v, 1.f}); }

__device__ __forceinline__ MaxSum ms_add4(MaxSum a, float4 v) {
  const float cm = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
  const float m = fmaxf(a.m, cm);
  const float s = (a.m == m ? a.s : a.s * expf(a.m - m)) + expf(v.x - m) + expf(v.y - m) + expf(v.z - m) +
                  expf(v.w - m);
  return {m, s};
}

// Every lane gets the merge of the 32 lanes' pairs (xor butterfly; ms_merge is commutative, so all agree).
__device__ __forceinline__ MaxSum warp_merge(MaxSum a) {
#pragma unroll
  for (int o = WARP / 2; o > 0; o /= 2) {
    const MaxSum b = {__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o)};
    a = ms_merge(a, b);
  }
  return a;
}

// A row of K floats at z: scalar head [0, head), float4 body [head, head + 4·nvec), scalar tail after it.
// With vec = false the whole row is "head" (scalar).
struct RowSplit {
  int head, nvec, tail0;
};

__device__ __forceinline__ RowSplit split_row(const float* z, int K, bool vec) {
  if (!vec) return {K, 0, K};
  const int head = min(K, (int)(((16 - (reinterpret_cast<unsigned long long>(z) & 15)) & 15) >> 2));
  const int nvec = (K - head) / 4;
  return {head, nvec, head + 4 * nvec};
}

// Statistics of the scalar head and tail of a row (lane-strided).
__device__ __forceinline__ MaxSum edge_stats(MaxSum a, const float* z, int K, const RowSplit& r, int lane) {
  for (int k = lane; k < r.head; k += WARP) a = ms_add(a, z[k]);
  for (int k = r.tail0 + lane; k < K; k += WARP) a = ms_add(a, z[k]);
  return a;
}

// One pass over the row from memory, up to 4 float4 per lane in flight (guarded, so a row of nvec float4 takes
// ceil(nvec / 128) dependent rounds whatever its length); returns the warp-merged statistics.
__device__ __forceinline__ MaxSum row_stats_stream(const float* z, int K, const RowSplit& r, int lane) {
  constexpr int U = 4;
  MaxSum a = edge_stats({NEG_INF, 0.f}, z, K, r, lane);
  const float4* zv = reinterpret_cast<const float4*>(z + r.head);
  for (int c = lane; c < r.nvec; c += U * WARP) {
    float4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (c + u * WARP < r.nvec) v[u] = zv[c + u * WARP];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (c + u * WARP < r.nvec) a = ms_add4(a, v[u]);
  }
  return warp_merge(a);
}

__device__ __forceinline__ long long warp_id() { return ((long long)blockIdx.x * blockDim.x + threadIdx.x) / WARP; }
__device__ __forceinline__ long long warp_count() { return ((long long)gridDim.x * blockDim.x) / WARP; }

// Loads the row's float4 body into v (N float4 per lane, all loads issued before the first use; needs
// r.nvec <= N·32) and returns the warp-merged statistics of the whole row.
template <int N>
__device__ __forceinline__ MaxSum row_stats_cached(const float* z, int K, const RowSplit& r, int lane,
                                                   float4 (&v)[N]) {
  const float4* zv = reinterpret_cast<const float4*>(z + r.head);
#pragma unroll
  for (int i = 0; i < N; ++i)
    if (lane + i * WARP < r.nvec) v[i] = zv[lane + i * WARP];
  MaxSum a = edge_stats({NEG_INF, 0.f}, z, K, r, lane);
#pragma unroll
  for (int i = 0; i < N; ++i)
    if (lane + i * WARP < r.nvec) a = ms_add4(a, v[i]);
  return warp_merge(a);
}

// One warp per row, each row streamed once (see row_stats_stream). Lane 0 of each warp sums its rows' losses;
// each block writes one partial sum.
extern "C" __global__ void xent_fwd_vec(const float* __restrict__ logits, const int* __restrict__ labels,
                                          long long N, int K, float* __restrict__ partials) {
  const int lane = threadIdx.x % WARP;
  float acc = 0.f;
  for (long long n = warp_id(); n < N; n += warp_count()) {
    const float* z = logits + n * K;
    const MaxSum st = row_stats_stream(z, K, split_row(z, K, true), lane);
    if (lane == 0) acc += st.m + logf(st.s) - z[labels[n]];
  }
  acc = block_sum(lane == 0 ? acc : 0.f);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// The gradient of one logit: (e^(z − m) / s − [k = label]) / N, with 1/s and 1/N as factors.
__device__ __forceinline__ float xent_grad(float z, int k, float m, float rs, int label, float inv_n) {
  return (expf(z - m) * rs - (k == label ? 1.f : 0.f)) * inv_n;
}

// One warp per row; CH float4 per lane cached in registers when the row's body fits (CH = 0: never).
// `vec`: the logits and the gradient share their alignment modulo 16 bytes, so both use the same row split.
// With LOSS, returns (in lane 0 of each warp) the sum of the warp's rows' losses; 0 otherwise.
template <int CH, bool LOSS>
__device__ __forceinline__ float xent_bwd_rows(const float* __restrict__ logits, const int* __restrict__ labels,
                                               long long N, int K, float inv_n, bool vec,
                                               float* __restrict__ dlogits) {
  const int lane = threadIdx.x % WARP;
  float acc = 0.f;
  for (long long n = warp_id(); n < N; n += warp_count()) {
    const float* z = logits + n * K;
    float* g = dlogits + n * K;
    const RowSplit r = split_row(z, K, vec);
    const float4* zv = reinterpret_cast<const float4*>(z + r.head);
    float4* gv = reinterpret_cast<float4*>(g + r.head);
    const bool cached = CH > 0 && r.nvec <= CH * WARP;
    float4 v[CH > 0 ? CH : 1];
    const MaxSum st = cached ? row_stats_cached(z, K, r, lane, v) : row_stats_stream(z, K, r, lane);
    const float rs = 1.f / st.s;
    const int label = labels[n];
    if (LOSS && lane == 0) acc += st.m + logf(st.s) - z[label];
    for (int k = lane; k < r.head; k += WARP) g[k] = xent_grad(z[k], k, st.m, rs, label, inv_n);
    for (int k = r.tail0 + lane; k < K; k += WARP) g[k] = xent_grad(z[k], k, st.m, rs, label, inv_n);
    if (cached) {
#pragma unroll
      for (int i = 0; i < CH; ++i) {
        const int c = lane + i * WARP;
        if (c < r.nvec) {
          const int k = r.head + 4 * c;
          gv[c] = make_float4(xent_grad(v[i].x, k, st.m, rs, label, inv_n),
                              xent_grad(v[i].y, k + 1, st.m, rs, label, inv_n),
                              xent_grad(v[i].z, k + 2, st.m, rs, label, inv_n),
                              xent_grad(v[i].w, k + 3, st.m, rs, label, inv_n));
        }
      }
    } else {
      for (int c = lane; c < r.nvec; c += WARP) {
        const float4 w = zv[c];
        const int k = r.head + 4 * c;
        gv[c] = make_float4(xent_grad(w.x, k, st.m, rs, label, inv_n), xent_grad(w.y, k + 1, st.m, rs, label, inv_n),
                            xent_grad(w.z, k + 2, st.m, rs, label, inv_n),
                            xent_grad(w.w, k + 3, st.m, rs, label, inv_n));
      }
    }
  }
  return acc;
}

extern "C" __global__ void xent_bwd_vec_c8(const float* __restrict__ logits, const int* __restrict__ labels,
                                             long long N, int K, float inv_n, int vec, float* __restrict__ dlogits) {
  xent_bwd_rows<8, false>(logits, labels, N, K, inv_n, vec != 0, dlogits);
}

extern "C" __global__ void xent_bwd_vec_c0(const float* __restrict__ logits, const int* __restrict__ labels,
                                             long long N, int K, float inv_n, int vec, float* __restrict__ dlogits) {
  xent_bwd_rows<0, false>(logits, labels, N, K, inv_n, vec != 0, dlogits);
}

// out[0] = inv_n · Σ of every block's `acc` (valid in lane 0 of each warp, 0 elsewhere), by the last block to
// finish: each block writes its sum to partials[block] and takes a ticket; the one that takes ticket gridDim.x − 1
// sums the partials in index order and resets the counter for the next launch on this stream.
__device__ __forceinline__ void last_block_mean(float acc, float* partials, unsigned* ticket, float inv_n,
                                                float* __restrict__ out) {
  __shared__ bool last;
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = acc;
    __threadfence();  // the partial is visible device-wide before the ticket says so
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();  // also ends block_sum's use of its shared memory before the second call
  if (!last) return;
  __threadfence();
  float v = 0.f;
  for (unsigned i = threadIdx.x; i < gridDim.x; i += blockDim.x) v += ((volatile float*)partials)[i];
  v = block_sum(v);
  if (threadIdx.x == 0) {
    out[0] = v * inv_n;
    *ticket = 0u;
  }
}

extern "C" __global__ void xent_fused_vec_c8(const float* __restrict__ logits, const int* __restrict__ labels,
                                               long long N, int K, float inv_n, int vec, float* __restrict__ dlogits,
                                               float* partials, unsigned* ticket, float* __restrict__ loss) {
  const float acc = xent_bwd_rows<8, true>(logits, labels, N, K, inv_n, vec != 0, dlogits);
  last_block_mean(acc, partials, ticket, inv_n, loss);
}

extern "C" __global__ void xent_fused_vec_c0(const float* __restrict__ logits, const int* __restrict__ labels,
                                               long long N, int K, float inv_n, int vec, float* __restrict__ dlogits,
                                               float* partials, unsigned* ticket, float* __restrict__ loss) {
  const float acc = xent_bwd_rows<0, true>(logits, labels, N, K, inv_n, vec != 0, dlogits);
  last_block_mean(acc, partials, ticket, inv_n, loss);
}

// Per-block sums of the BCE terms over head / float4 body / tail (as eltwise.cu's map2), grid-stride.
extern "C" __global__ void bce_fwd_vec(const float* __restrict__ z, const float* __restrict__ t, long long n,
                                         long long head, long long nvec, float* __restrict__ partials) {
  constexpr int U = 4;
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const float4* zv = reinterpret_cast<const float4*>(z + head);
  const float4* tv = reinterpret_cast<const float4*>(t + head);
  float acc = 0.f;
  long long i = tid;
  for (; i + (U - 1) * stride < nvec; i += U * stride) {
    float4 a[U], b[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      a[u] = zv[i + u * stride];
      b[u] = tv[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
      acc += bce_term(a[u].x, b[u].x) + bce_term(a[u].y, b[u].y) + bce_term(a[u].z, b[u].z) +
             bce_term(a[u].w, b[u].w);
  }
  for (; i < nvec; i += stride) {
    const float4 a = zv[i], b = tv[i];
    acc += bce_term(a.x, b.x) + bce_term(a.y, b.y) + bce_term(a.z, b.z) + bce_term(a.w, b.w);
  }
  const long long tail0 = head + 4 * nvec;
  const long long nscalar = head + (n - tail0);
  for (long long j = tid; j < nscalar; j += stride) {
    const long long k = j < head ? j : tail0 + (j - head);
    acc += bce_term(z[k], t[k]);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}
