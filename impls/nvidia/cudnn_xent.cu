// The two small steps cuDNN's softmax lacks for softmax cross-entropy over integer labels (impls/nvidia/cudnn_legacy.py).
//
// Thesis formulas (seed 003, §2.5.5 and §3.1.1): L = −(1/N) Σ_n log p[n, label_n], with log p from cuDNN's
// CUDNN_SOFTMAX_LOG forward; the gradient ∂L/∂z = (p − onehot(label)) / N is cuDNN's log-softmax backward applied
// to ∂L/∂(log p) = −onehot(label) / N, which `xent_onehot_seed` writes.
//
// Strategy.
// xent_nll_mean: ONE block of XENT_THREADS threads (the label gather is N loads, far too little work for more).
//   Thread t sums logp[n·K + label_n] for n = t, t + XENT_THREADS, ... in float32; the block then adds the
//   partial sums in shared memory by halving (a fixed order: the result is deterministic), and thread 0 writes
//   −sum / N. The gather reads one float per row, so the kernel costs N·8 bytes.
// xent_onehot_seed: one thread per element i of the N×K seed (64-bit index), writes −1/N where the column is the
//   row's label and 0 elsewhere: coalesced stores, one int32 label load per element (cached in L1/L2).
// IEEE float32 throughout (no fast math).

constexpr int XENT_THREADS = 256;

extern "C" __global__ void xent_nll_mean(const float* __restrict__ logp, const int* __restrict__ labels, int n,
                                         int k, float* __restrict__ loss) {
    __shared__ float partial[XENT_THREADS];
    float acc = 0.f;
    for (int row = threadIdx.x; row < n; row += XENT_THREADS) {
        acc += logp[(long long)row * k + labels[row]];
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = XENT_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss = -partial[0] / (float)n;
}

extern "C" __global__ void xent_onehot_seed(const int* __restrict__ labels, int n, int k, float* __restrict__ seed) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * k) return;
    long long row = i / k;
    int col = (int)(i - row * k);
    seed[i] = col == labels[row] ? -1.f / (float)n : 0.f;
}
