// conv2d_bias_grad.cu: the bias gradient of a convolution, db[k] = Σ_{n,p,q} dy[n,k,p,q] (seed 003, §2.6.1), NCHW.
//
// Strategy: two deterministic stages, no atomics.
// bias_grad_partial: grid (K, S), 256 threads. Block (k, j) sums channel k over images [j·N/S, (j+1)·N/S): the
//   block's elements (image n, position e < PQ) are numbered i = (n − n0)·PQ + e and thread t takes i = t, t + 256,
//   ... (consecutive threads read consecutive positions of a plane: coalesced, and every thread busy even for the
//   6×6 planes of the thesis's last conv), 4 loads in flight per thread; a warp-shuffle and shared-memory sum in a
//   fixed order gives partials[k·S + j] (or db[k] directly when S = 1).
// bias_grad_finish: one warp per channel sums its S partials in index order (lane-strided, then a shuffle tree).
// The host (impls/cuda/conv2d.py: bias_grad) picks S so that the K·S blocks fill the GPU (~4 per SM) with no block
// below ~4096 elements. The one-block-per-channel kernel it replaces ran K = 32 blocks on 132 SMs: 754 µs per
// thesis-4 step at batch 256 (benchmarks/NOTES.md, fused layers).

#define BG_THREADS 256

__device__ __forceinline__ float bg_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

extern "C" __global__ void __launch_bounds__(BG_THREADS)
bias_grad_partial(const float* __restrict__ dy, float* __restrict__ out, int N, int K, int PQ, int S) {
  const int k = blockIdx.x, j = blockIdx.y;
  const int n0 = (int)((long long)j * N / S), n1 = (int)((long long)(j + 1) * N / S);
  const int count = (n1 - n0) * PQ;  // < 2^31: the host keeps N·PQ / S in range
  float acc = 0.f;
  for (int i0 = threadIdx.x; i0 < count; i0 += 4 * BG_THREADS) {
    float v[4];  // four independent loads in flight, then summed in a fixed order
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int i = i0 + u * BG_THREADS;
      const int dn = i / PQ, e = i - dn * PQ;
      v[u] = i < count ? __ldg(&dy[((long long)(n0 + dn) * K + k) * PQ + e]) : 0.f;
    }
    acc += (v[0] + v[1]) + (v[2] + v[3]);
  }
  float v = bg_warp_sum(acc);
  __shared__ float warp_sums[BG_THREADS / 32];
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < BG_THREADS / 32; ++w) s += warp_sums[w];
    out[(long long)k * S + j] = s;
  }
}

extern "C" __global__ void __launch_bounds__(BG_THREADS)
bias_grad_finish(const float* __restrict__ partials, float* __restrict__ db, int K, int S) {
  const int k = blockIdx.x * (BG_THREADS / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (k >= K) return;
  float v = 0.f;
  for (int j = lane; j < S; j += 32) v += partials[(long long)k * S + j];
  v = bg_warp_sum(v);
  if (lane == 0) db[k] = v;
}
