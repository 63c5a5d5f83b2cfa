// Elementwise maps: relu and sigmoid (forward and backward), the in-place SGD step, and the sigmoid-BCE gradient.
//
// Thesis formulas (seed 003): ReLU y = max(x, 0), dx = dy·[y > 0] (§2.5.3); sigmoid y = 1 / (1 + e^(−x)),
// dx = dy·y·(1 − y) (§2.5.3); SGD W ← W − lr·dW (§2.5.6); sigmoid cross-entropy gradient ∂L/∂z = (σ(z) − t) / N
// (§2.5.5; the mean's 1/N is passed in as `inv_n`).
//
// Strategy.
// *_naive: one thread per element, i = blockIdx.x·blockDim.x + threadIdx.x (64-bit), one scalar load per input and
//   one scalar store: the thesis's starting point. Coalesced already, but every thread moves only 4-8 bytes and
//   the grid has n / 256 blocks.
// *_vec: a persistent grid (as many blocks as are resident at once) walks the tensor with a grid-stride loop.
//   The body is split into three parts so that any size and any alignment work:
//     head  [0, head)                  scalar, up to the first 16-byte-aligned element (head < 4),
//     body  [head, head + 4·nvec)      float4 (16-byte) loads and stores, UNROLL float4 per input in flight
//                                      per thread before the first use (loads of one iteration all issue first),
//     tail  [head + 4·nvec, n)         scalar (< 4 elements).
//   The host computes head/nvec; when the tensors do not share one alignment modulo 16 bytes it passes head = n,
//   nvec = 0 and everything goes through the (still grid-strided, coalesced) scalar path.
// All arithmetic is IEEE float32 (no fast math); expf is CUDA's accurate (≤ 2 ulp) version; 1/(1+e) is an IEEE
// division. Indices are 64-bit: tensors may exceed 2^31 elements.

constexpr int UNROLL = 4;

__device__ __forceinline__ float relu_f(float x) { return x > 0.f ? x : 0.f; }
__device__ __forceinline__ float relu_b(float y, float dy) { return y > 0.f ? dy : 0.f; }
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float sigmoid_b(float y, float dy) { return dy * y * (1.f - y); }

template <class F>
__device__ __forceinline__ float4 apply1(F f, float4 a) {
  return make_float4(f(a.x), f(a.y), f(a.z), f(a.w));
}

template <class F>
__device__ __forceinline__ float4 apply2(F f, float4 a, float4 b) {
  return make_float4(f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w));
}

// out[i] = f(a[i]) over head / float4 body / tail, grid-stride.
template <class F>
__device__ __forceinline__ void map1(const float* a, float* out, long long n, long long head, long long nvec, F f) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const float4* av = reinterpret_cast<const float4*>(a + head);
  float4* ov = reinterpret_cast<float4*>(out + head);
  long long i = tid;
  for (; i + (UNROLL - 1) * stride < nvec; i += UNROLL * stride) {
    float4 ra[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) ra[u] = av[i + u * stride];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) ov[i + u * stride] = apply1(f, ra[u]);
  }
  for (; i < nvec; i += stride) ov[i] = apply1(f, av[i]);
  const long long tail0 = head + 4 * nvec;
  const long long nscalar = head + (n - tail0);
  for (long long j = tid; j < nscalar; j += stride) {
    const long long k = j < head ? j : tail0 + (j - head);
    out[k] = f(a[k]);
  }
}

// out[i] = f(a[i], b[i]) over head / float4 body / tail, grid-stride. `out` may be `a` (the SGD update): each
// element is read and then written by the same thread, and no load of a later iteration moves above a store.
template <class F>
__device__ __forceinline__ void map2(const float* a, const float* b, float* out, long long n, long long head,
                                     long long nvec, F f) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const float4* av = reinterpret_cast<const float4*>(a + head);
  const float4* bv = reinterpret_cast<const float4*>(b + head);
  float4* ov = reinterpret_cast<float4*>(out + head);
  long long i = tid;
  for (; i + (UNROLL - 1) * stride < nvec; i += UNROLL * stride) {
    float4 ra[UNROLL], rb[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      ra[u] = av[i + u * stride];
      rb[u] = bv[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) ov[i + u * stride] = apply2(f, ra[u], rb[u]);
  }
  for (; i < nvec; i += stride) ov[i] = apply2(f, av[i], bv[i]);
  const long long tail0 = head + 4 * nvec;
  const long long nscalar = head + (n - tail0);
  for (long long j = tid; j < nscalar; j += stride) {
    const long long k = j < head ? j : tail0 + (j - head);
    out[k] = f(a[k], b[k]);
  }
}

__device__ __forceinline__ long long global_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }

// ------------------------------------------------------------------------------------------------- naive
extern "C" __global__ void relu_fwd_naive(const float* __restrict__ x, float* __restrict__ y, long long n) {
  const long long i = global_index();
  if (i < n) y[i] = relu_f(x[i]);
}

extern "C" __global__ void relu_bwd_naive(const float* __restrict__ y, const float* __restrict__ dy,
                                          float* __restrict__ dx, long long n) {
  const long long i = global_index();
  if (i < n) dx[i] = relu_b(y[i], dy[i]);
}

extern "C" __global__ void sigmoid_fwd_naive(const float* __restrict__ x, float* __restrict__ y, long long n) {
  const long long i = global_index();
  if (i < n) y[i] = sigmoid_f(x[i]);
}

extern "C" __global__ void sigmoid_bwd_naive(const float* __restrict__ y, const float* __restrict__ dy,
                                             float* __restrict__ dx, long long n) {
  const long long i = global_index();
  if (i < n) dx[i] = sigmoid_b(y[i], dy[i]);
}

extern "C" __global__ void sgd_naive(float* w, const float* __restrict__ dw, float lr, long long n) {
  const long long i = global_index();
  if (i < n) w[i] = w[i] - lr * dw[i];
}

extern "C" __global__ void bce_bwd_naive(const float* __restrict__ z, const float* __restrict__ t,
                                         float* __restrict__ dz, float inv_n, long long n) {
  const long long i = global_index();
  if (i < n) dz[i] = (sigmoid_f(z[i]) - t[i]) * inv_n;
}

// ------------------------------------------------------------------------------------------------- vec
extern "C" __global__ void relu_fwd_vec(const float* __restrict__ x, float* __restrict__ y, long long n,
                                          long long head, long long nvec) {
  map1(x, y, n, head, nvec, [](float v) { return relu_f(v); });
}

extern "C" __global__ void relu_bwd_vec(const float* __restrict__ y, const float* __restrict__ dy,
                                          float* __restrict__ dx, long long n, long long head, long long nvec) {
  map2(y, dy, dx, n, head, nvec, [](float a, float g) { return relu_b(a, g); });
}

extern "C" __global__ void sigmoid_fwd_vec(const float* __restrict__ x, float* __restrict__ y, long long n,
                                             long long head, long long nvec) {
  map1(x, y, n, head, nvec, [](float v) { return sigmoid_f(v); });
}

extern "C" __global__ void sigmoid_bwd_vec(const float* __restrict__ y, const float* __restrict__ dy,
                                             float* __restrict__ dx, long long n, long long head, long long nvec) {
  map2(y, dy, dx, n, head, nvec, [](float a, float g) { return sigmoid_b(a, g); });
}

extern "C" __global__ void sgd_vec(float* w, const float* __restrict__ dw, float lr, long long n, long long head,
                                     long long nvec) {
  map2(w, dw, w, n, head, nvec, [lr](float a, float g) { return a - lr * g; });
}

extern "C" __global__ void bce_bwd_vec(const float* __restrict__ z, const float* __restrict__ t,
                                         float* __restrict__ dz, float inv_n, long long n, long long head,
                                         long long nvec) {
  map2(z, t, dz, n, head, nvec, [inv_n](float a, float b) { return (sigmoid_f(a) - b) * inv_n; });
}
