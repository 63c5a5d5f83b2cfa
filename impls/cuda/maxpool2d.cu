// Max pooling, NCHW, R×S window, stride u_h × u_w, padding pad_h × pad_w (counted as −inf); forward and backward;
// optionally fused with the ReLU before it (the maxpool2d_relu op).
//
// Thesis (seed 003, §2.6.2): y[n,c,p,q] = max_{r<R, s<S} x[n,c,p·u_h+r−pad_h, q·u_w+s−pad_w], positions outside
// the image being padding, which is never the maximum (pad < window, so every window holds a real element). Every
// kernel clips its windows to the image, so the padding is never read, compared or written. The backward pass
// routes dy[n,c,p,q] to the position of that maximum and sums where windows overlap. Tie rule
// (harness/ops/maxpool2d.py): the FIRST maximal element of the window in row-major (r, then s) order gets the
// gradient, among its real elements. The backward kernels find it as the first real window element equal to
// y[n,c,p,q] (the forward output, an exact max in any precision).
//
// Strategy.
// maxpool_fwd_naive: one thread per output element; it reads its R·S window (clipped to the image) with scalar
//   loads.
// maxpool_bwd_naive: one thread per INPUT element (a gather, so no atomics even where windows overlap): for each
//   window (p, q) that contains (h, w) it scans the window's real elements in row-major order for the first one
//   equal to y[p, q] and adds dy[p, q] if that element is (h, w). Every dx element is written exactly once (zero
//   when no window picks it, e.g. rows and columns no window covers).
// maxpool_*_generic: the same per-element bodies in a grid-stride loop over a persistent grid: the vec
//   implementation's path for any geometry other than 2×2 / stride 2 / no padding.
// maxpool_{fwd,bwd}_2x2_cell: 2×2 / stride 2 / no padding where the vector path cannot go (odd width, unaligned
//   tensors): one thread per window (forward) or per 2×2 cell of dx (backward), scalar loads, no clipping or
//   per-element window search (see the kernels, at the end of this file).
// maxpool_fwd_2x2_v{4,2} and maxpool_bwd_2x2_v{4,2}: the bandwidth path for 2×2 windows, stride 2 on both axes, no
//   padding, W a multiple of V (V = 4 or 2) and aligned tensors (the wrapper, maxpool2d.py: vector_width, sends
//   nothing else here). One item is V consecutive columns of one row pair (2p, 2p+1), i.e. V/2
//   adjacent windows: the forward pass loads one V-wide vector (16 or 8 bytes) from each of the two rows and stores
//   V/2 outputs as one vector; the backward pass loads the same two vectors of x and V/2 values of y and dy, and
//   stores two V-wide vectors of dx (the gradient at the first maximum of each window, zeros elsewhere; with H odd
//   the last row, which no window covers, is stored as zeros). Windows do not overlap, so each dx element is
//   written by exactly one thread, with no atomics. UNROLL items per thread are loaded before any is used, in a
//   grid-stride loop over a persistent grid.
//   UNROLL is 4 items (8 vector loads) per thread in the forward pass and 2 items (4 vector loads of x, 2 of y and
//   dy: 96 bytes) in the 16-byte backward pass, whose items are larger.
// Indices are 64-bit (tensors may exceed 2^31 elements); divisions by the tensor's dimensions take a 32-bit path
// when the dividend fits in 32 bits. Window corners are signed 32-bit (negative in the padding; H and W fit).
// Comparisons only: the results are exact.
//
// Fused ReLU (relu = 1, the maxpool2d_relu op: y = maxpool(ReLU(x)), seed 003 §2.5.3 and §2.6.2): ReLU is
// monotonic, so maxpool(ReLU(x)) = ReLU(maxpool(x)): every kernel pools x as above and applies ReLU to the window's
// maximum only (a quarter of the elements for 2×2 windows). Backward: the gradient reaching x through ReLU then the
// pool is dy·[y > 0] at the window's first maximum of x (where y > 0 that is also the first maximum of ReLU(x);
// where y = 0 nothing passes), so the kernels mask dy by y > 0 before routing it (pool_grad). Neither pass reads or
// writes ReLU(x): the full-size activation that the unfused relu op would store and re-read never exists.

// a / b and a % b for a 64-bit a and 32-bit b; 32-bit division when a fits in 32 bits (the common case).
__device__ __forceinline__ void divmod(unsigned long long a, unsigned b, unsigned long long& q, unsigned& r) {
  if ((a >> 32) == 0) {
    const unsigned a32 = (unsigned)a;
    q = a32 / b;
    r = a32 - (unsigned)q * b;
  } else {
    q = a / b;
    r = (unsigned)(a - q * b);
  }
}

// The geometry and the ReLU flag, passed to every kernel as eleven unsigned scalars (POOL_ARGS), gathered into a
// Pool.
struct Pool {
  unsigned H, W, R, S, uh, uw, ph, pw, P, Q;  // uh, uw: strides; ph, pw: padding
  unsigned relu;                              // 1: the ReLU before the pool is fused (see the header)
};
#define POOL_ARGS                                                                                            \
  unsigned H, unsigned W, unsigned R, unsigned S, unsigned uh, unsigned uw, unsigned ph, unsigned pw, unsigned P, \
      unsigned Q, unsigned relu
#define POOL_FIELDS H, W, R, S, uh, uw, ph, pw, P, Q, relu

// A window's output from its maximum m: m, or ReLU(m) when fused.
__device__ __forceinline__ float pool_out(const Pool& d, float m) { return d.relu && !(m > 0.f) ? 0.f : m; }
// The gradient a window routes to its first maximum, given its output y and dy: dy, or dy·[y > 0] when fused.
__device__ __forceinline__ float pool_grad(const Pool& d, float y, float g) { return d.relu && !(y > 0.f) ? 0.f : g; }

// Window (p, q) clipped to the image: its top-left corner (h0, w0) = (p·u_h − pad_h, q·u_w − pad_w) in image
// coordinates (negative in the padding) and the offsets r in [r_lo, r_hi), s in [s_lo, s_hi) that land inside.
// Never empty: h0 ≤ H − 1 and h0 + R − 1 ≥ 0 because pad < window (likewise for w0).
struct Window {
  int h0, w0;
  unsigned r_lo, r_hi, s_lo, s_hi;
};
__device__ __forceinline__ Window window_of(const Pool& d, unsigned p, unsigned q) {
  Window win;
  win.h0 = (int)(p * d.uh) - (int)d.ph;
  win.w0 = (int)(q * d.uw) - (int)d.pw;
  win.r_lo = win.h0 < 0 ? (unsigned)(-win.h0) : 0u;
  win.s_lo = win.w0 < 0 ? (unsigned)(-win.w0) : 0u;
  win.r_hi = min(d.R, (unsigned)((int)d.H - win.h0));
  win.s_hi = min(d.S, (unsigned)((int)d.W - win.w0));
  return win;
}

// y for output element i of the N·C·P·Q outputs.
__device__ __forceinline__ float pool_fwd_one(const float* x, const Pool& d, unsigned long long i) {
  unsigned long long t, nc;
  unsigned q, p;
  divmod(i, d.Q, t, q);
  divmod(t, d.P, nc, p);
  const Window win = window_of(d, p, q);
  const float* xc = x + nc * d.H * d.W;
  float m = xc[(unsigned long long)(win.h0 + (int)win.r_lo) * d.W + (unsigned)(win.w0 + (int)win.s_lo)];
  for (unsigned r = win.r_lo; r < win.r_hi; ++r) {
    const float* xr = xc + (unsigned long long)(win.h0 + (int)r) * d.W;
    for (unsigned s = win.s_lo; s < win.s_hi; ++s) {
      const float v = xr[win.w0 + (int)s];
      m = v > m ? v : m;
    }
  }
  return pool_out(d, m);
}

// dx for input element i of the N·C·H·W inputs: the sum of dy over the windows whose first maximum is i.
__device__ __forceinline__ float pool_bwd_one(const float* x, const float* y, const float* dy, const Pool& d,
                                              unsigned long long i) {
  unsigned long long t, nc;
  unsigned w, h;
  divmod(i, d.W, t, w);
  divmod(t, d.H, nc, h);
  // In padded coordinates hp = h + pad_h: windows p with p·u_h ≤ hp ≤ p·u_h + R − 1, i.e.
  // ceil((hp − R + 1) / u_h) ≤ p ≤ hp / u_h, clipped to [0, P) (likewise q).
  const unsigned hp = h + d.ph, wp = w + d.pw;
  const unsigned p_lo = hp + 1 > d.R ? (hp + 1 - d.R + d.uh - 1) / d.uh : 0;
  const unsigned q_lo = wp + 1 > d.S ? (wp + 1 - d.S + d.uw - 1) / d.uw : 0;
  const unsigned p_hi = min(hp / d.uh, d.P - 1);
  const unsigned q_hi = min(wp / d.uw, d.Q - 1);
  const float* xc = x + nc * d.H * d.W;
  float acc = 0.f;
  for (unsigned p = p_lo; p <= p_hi; ++p)
    for (unsigned q = q_lo; q <= q_hi; ++q) {
      const unsigned long long o = (nc * d.P + p) * d.Q + q;
      const float m = y[o];
      if (pool_grad(d, m, 1.f) == 0.f) continue;  // fused ReLU, y = 0: nothing passes
      const Window win = window_of(d, p, q);
      // first real (r, s) in row-major order with x == m
      unsigned fr = win.r_hi, fs = 0;
      for (unsigned r = win.r_lo; r < win.r_hi && fr == win.r_hi; ++r) {
        const float* xr = xc + (unsigned long long)(win.h0 + (int)r) * d.W;
        for (unsigned s = win.s_lo; s < win.s_hi; ++s)
          if (xr[win.w0 + (int)s] == m) {
            fr = r;
            fs = s;
            break;
          }
      }
      if (win.h0 + (int)fr == (int)h && win.w0 + (int)fs == (int)w) acc += dy[o];
    }
  return acc;
}

__device__ __forceinline__ unsigned long long global_index() {
  return (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ unsigned long long grid_stride() { return (unsigned long long)gridDim.x * blockDim.x; }

// ------------------------------------------------------------------------------------------------- naive
extern "C" __global__ void maxpool_fwd_naive(const float* __restrict__ x, float* __restrict__ y, POOL_ARGS,
                                             unsigned long long total) {
  const Pool d{POOL_FIELDS};
  const unsigned long long i = global_index();
  if (i < total) y[i] = pool_fwd_one(x, d, i);
}

extern "C" __global__ void maxpool_bwd_naive(const float* __restrict__ x, const float* __restrict__ y,
                                             const float* __restrict__ dy, float* __restrict__ dx, POOL_ARGS,
                                             unsigned long long total) {
  const Pool d{POOL_FIELDS};
  const unsigned long long i = global_index();
  if (i < total) dx[i] = pool_bwd_one(x, y, dy, d, i);
}

// ------------------------------------------------------------------------------------------------- vec
extern "C" __global__ void maxpool_fwd_generic(const float* __restrict__ x, float* __restrict__ y, POOL_ARGS,
                                               unsigned long long total) {
  const Pool d{POOL_FIELDS};
  for (unsigned long long i = global_index(); i < total; i += grid_stride()) y[i] = pool_fwd_one(x, d, i);
}

extern "C" __global__ void maxpool_bwd_generic(const float* __restrict__ x, const float* __restrict__ y,
                                               const float* __restrict__ dy, float* __restrict__ dx, POOL_ARGS,
                                               unsigned long long total) {
  const Pool d{POOL_FIELDS};
  for (unsigned long long i = global_index(); i < total; i += grid_stride()) dx[i] = pool_bwd_one(x, y, dy, d, i);
}

template <int V> struct Vec;
template <> struct Vec<4> {
  using full = float4;  // V floats of one row
  using half = float2;  // V/2 outputs
};
template <> struct Vec<2> {
  using full = float2;
  using half = float;
};

template <int V> __device__ __forceinline__ float elem(const typename Vec<V>::full& v, int k);
template <> __device__ __forceinline__ float elem<4>(const float4& v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}
template <> __device__ __forceinline__ float elem<2>(const float2& v, int k) { return k == 0 ? v.x : v.y; }

template <int V> __device__ __forceinline__ float half_elem(const typename Vec<V>::half& v, int k);
template <> __device__ __forceinline__ float half_elem<4>(const float2& v, int k) { return k == 0 ? v.x : v.y; }
template <> __device__ __forceinline__ float half_elem<2>(const float& v, int) { return v; }

__device__ __forceinline__ float4 make_full(const float (&a)[4]) { return make_float4(a[0], a[1], a[2], a[3]); }
__device__ __forceinline__ float2 make_full(const float (&a)[2]) { return make_float2(a[0], a[1]); }
__device__ __forceinline__ float2 make_half(const float (&a)[2]) { return make_float2(a[0], a[1]); }
__device__ __forceinline__ float make_half(const float (&a)[1]) { return a[0]; }

// Item i of N·C·P·J (J = W / V): row pair p of plane nc, columns [j·V, j·V + V).
template <int V, int UNROLL>
__device__ __forceinline__ void fwd_2x2(const float* __restrict__ x, float* __restrict__ y, const Pool& d,
                                        unsigned long long items) {
  using Full = typename Vec<V>::full;
  using Half = typename Vec<V>::half;
  const unsigned J = d.W / V;
  const unsigned long long stride = grid_stride();
  for (unsigned long long i0 = global_index(); i0 < items; i0 += UNROLL * stride) {
    Full a[UNROLL], b[UNROLL];
    unsigned long long yo[UNROLL];
#pragma unroll
    for (int k = 0; k < UNROLL; ++k) {
      const unsigned long long i = i0 + k * stride;
      if (i < items) {
        unsigned long long row, nc;
        unsigned j, p;
        divmod(i, J, row, j);
        divmod(row, d.P, nc, p);
        const Full* xr = reinterpret_cast<const Full*>(x + (nc * d.H + 2ull * p) * d.W) + j;
        a[k] = xr[0];
        b[k] = xr[d.W / V];
        yo[k] = row * d.Q + (unsigned long long)j * (V / 2);
      }
    }
#pragma unroll
    for (int k = 0; k < UNROLL; ++k) {
      if (i0 + k * stride < items) {
        float out[V / 2];
#pragma unroll
        for (int w = 0; w < V / 2; ++w)
          out[w] = pool_out(d, fmaxf(fmaxf(elem<V>(a[k], 2 * w), elem<V>(a[k], 2 * w + 1)),
                                     fmaxf(elem<V>(b[k], 2 * w), elem<V>(b[k], 2 * w + 1))));
        *reinterpret_cast<Half*>(y + yo[k]) = make_half(out);
      }
    }
  }
}

// Item i of N·C·PH·J (PH = ceil(H / 2), J = W / V): row pair ph of plane nc, columns [j·V, j·V + V). A row pair
// ph = P exists only when H is odd: its single row (H − 1) belongs to no window and gets zeros.
template <int V, int UNROLL>
__device__ __forceinline__ void bwd_2x2(const float* __restrict__ x, const float* __restrict__ y,
                                        const float* __restrict__ dy, float* __restrict__ dx, const Pool& d,
                                        unsigned long long items) {
  using Full = typename Vec<V>::full;
  using Half = typename Vec<V>::half;
  const unsigned J = d.W / V;
  const unsigned PH = (d.H + 1) / 2;
  const unsigned long long stride = grid_stride();
  for (unsigned long long i0 = global_index(); i0 < items; i0 += UNROLL * stride) {
    Full a[UNROLL], b[UNROLL];
    Half m[UNROLL], g[UNROLL];
    unsigned long long xo[UNROLL];
    bool pooled[UNROLL];
#pragma unroll
    for (int k = 0; k < UNROLL; ++k) {
      const unsigned long long i = i0 + k * stride;
      pooled[k] = false;
      if (i < items) {
        unsigned long long row, nc;
        unsigned j, ph;
        divmod(i, J, row, j);
        divmod(row, PH, nc, ph);
        xo[k] = (nc * d.H + 2ull * ph) * d.W + (unsigned long long)j * V;
        if (ph < d.P) {
          pooled[k] = true;
          const Full* xr = reinterpret_cast<const Full*>(x + xo[k]);
          a[k] = xr[0];
          b[k] = xr[d.W / V];
          const unsigned long long yo = (nc * d.P + ph) * d.Q + (unsigned long long)j * (V / 2);
          m[k] = *reinterpret_cast<const Half*>(y + yo);
          g[k] = *reinterpret_cast<const Half*>(dy + yo);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < UNROLL; ++k) {
      if (i0 + k * stride >= items) continue;
      float top[V], bot[V];
#pragma unroll
      for (int c = 0; c < V; ++c) top[c] = bot[c] = 0.f;
      if (pooled[k]) {
#pragma unroll
        for (int w = 0; w < V / 2; ++w) {
          const float mw = half_elem<V>(m[k], w), gw = pool_grad(d, mw, half_elem<V>(g[k], w));
          if (elem<V>(a[k], 2 * w) == mw) top[2 * w] = gw;
          else if (elem<V>(a[k], 2 * w + 1) == mw) top[2 * w + 1] = gw;
          else if (elem<V>(b[k], 2 * w) == mw) bot[2 * w] = gw;
          else if (elem<V>(b[k], 2 * w + 1) == mw) bot[2 * w + 1] = gw;
        }
        *reinterpret_cast<Full*>(dx + xo[k] + d.W) = make_full(bot);
      }
      *reinterpret_cast<Full*>(dx + xo[k]) = make_full(top);
    }
  }
}

extern "C" __global__ void maxpool_fwd_2x2_v4(const float* __restrict__ x, float* __restrict__ y, POOL_ARGS,
                                              unsigned long long items) {
  const Pool d{POOL_FIELDS};
  fwd_2x2<4, 4>(x, y, d, items);
}

extern "C" __global__ void maxpool_fwd_2x2_v2(const float* __restrict__ x, float* __restrict__ y, POOL_ARGS,
                                              unsigned long long items) {
  const Pool d{POOL_FIELDS};
  fwd_2x2<2, 4>(x, y, d, items);
}

extern "C" __global__ void maxpool_bwd_2x2_v4(const float* __restrict__ x, const float* __restrict__ y,
                                              const float* __restrict__ dy, float* __restrict__ dx, POOL_ARGS,
                                              unsigned long long items) {
  const Pool d{POOL_FIELDS};
  bwd_2x2<4, 2>(x, y, dy, dx, d, items);
}

extern "C" __global__ void maxpool_bwd_2x2_v2(const float* __restrict__ x, const float* __restrict__ y,
                                              const float* __restrict__ dy, float* __restrict__ dx, POOL_ARGS,
                                              unsigned long long items) {
  const Pool d{POOL_FIELDS};
  bwd_2x2<2, 4>(x, y, dy, dx, d, items);
}

// maxpool_bwd_2x2_cell: the 2×2 / stride 2 / unpadded backward pass for any width (odd W, or tensors the vector
// path cannot align to). The generic body gathers per dx element: each of the 4 elements of a window re-reads its
// window's 4 x values, y and dy (6 loads per element, 24 per window) and divides its index twice. Here one thread
// owns one cell (2 rows × 2 columns of dx, the cell (ph, pw) of plane nc, ph < ceil(H/2), pw < ceil(W/2)): it
// reads its window's x once (2 × 2 scalars, adjacent threads 8 bytes apart: coalesced), y and dy once, and writes
// the cell's (up to) 4 dx values: dy at the window's first maximum in row-major order, zeros elsewhere. Cells with
// ph = P or pw = Q exist only for odd H or W: the row or column no window covers, written as zeros. Windows do
// not overlap, so every dx element is written by exactly one thread.
extern "C" __global__ void maxpool_bwd_2x2_cell(const float* __restrict__ x, const float* __restrict__ y,
                                                const float* __restrict__ dy, float* __restrict__ dx, POOL_ARGS,
                                                unsigned long long cells) {
  const Pool d{POOL_FIELDS};
  const unsigned CH = (d.H + 1) / 2, CW = (d.W + 1) / 2;
  for (unsigned long long i = global_index(); i < cells; i += grid_stride()) {
    unsigned long long t, nc;
    unsigned cw, ch;
    divmod(i, CW, t, cw);
    divmod(t, CH, nc, ch);
    const unsigned h = 2 * ch, w = 2 * cw;
    const bool two_rows = h + 1 < d.H, two_cols = w + 1 < d.W;
    const unsigned long long o0 = (nc * d.H + h) * d.W + w;
    float g0 = 0.f, g1 = 0.f, g2 = 0.f, g3 = 0.f;  // (h, w), (h, w+1), (h+1, w), (h+1, w+1)
    if (ch < d.P && cw < d.Q) {  // a full window: h + 1 < H and w + 1 < W
      const unsigned long long o = (nc * d.P + ch) * d.Q + cw;
      const float m = y[o], gy = pool_grad(d, m, dy[o]);
      if (x[o0] == m) g0 = gy;  // the first maximum in row-major order (the generic body's scan, unrolled)
      else if (x[o0 + 1] == m) g1 = gy;
      else if (x[o0 + d.W] == m) g2 = gy;
      else if (x[o0 + d.W + 1] == m) g3 = gy;
    }
    dx[o0] = g0;
    if (two_cols) dx[o0 + 1] = g1;
    if (two_rows) {
      dx[o0 + d.W] = g2;
      if (two_cols) dx[o0 + d.W + 1] = g3;
    }
  }
}

// maxpool_fwd_2x2_cell: the 2×2 / stride 2 / unpadded forward pass for any width (odd W, or tensors the vector
// path cannot align to): one thread per output, its window's 4 elements read directly (no clipping: an unpadded
// 2×2/2 window always lies inside the image), compared in the generic body's row-major order.
extern "C" __global__ void maxpool_fwd_2x2_cell(const float* __restrict__ x, float* __restrict__ y, POOL_ARGS,
                                                unsigned long long total) {
  const Pool d{POOL_FIELDS};
  for (unsigned long long i = global_index(); i < total; i += grid_stride()) {
    unsigned long long t, nc;
    unsigned q, p;
    divmod(i, d.Q, t, q);
    divmod(t, d.P, nc, p);
    const float* xr = x + (nc * d.H + 2 * p) * d.W + 2 * q;
    const float v1 = xr[1], v2 = xr[d.W], v3 = xr[d.W + 1];
    float m = xr[0];
    m = v1 > m ? v1 : m;
    m = v2 > m ? v2 : m;
    y[i] = pool_out(d, v3 > m ? v3 : m);
  }
}
