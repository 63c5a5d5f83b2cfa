// What a .cu file's kernels need to compile and run as C++ on the CPU (tests/impls/cuda/cpu_cuda.py).
//
// A launch runs its blocks one after the other. Kernels without barriers run their threads in order, each to the
// end (kh_run_block_plain). Kernels with __syncthreads or warp shuffles run each thread of a block as a fiber
// (ucontext, its own stack): a thread runs until it reaches a barrier or returns; when every live thread of the
// block waits at __syncthreads, they all go on; when every live lane of a warp waits at a warp exchange, that warp
// goes on. __shared__ variables are static locals (one copy, shared by the block's fibers); dynamic shared memory
// (`extern __shared__ T name[];`, rewritten by cpu_cuda.py) is one static buffer. Atomics are plain
// read-modify-writes (one thread runs at a time). Threads waiting at different barriers abort the process with a
// message: that is a divergent barrier, undefined in CUDA.
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <functional>

struct kh_dim3 {
    unsigned x, y, z;
};
static kh_dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __ldg(p) (*(p))
using std::max;
using std::min;

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }

alignas(16) static char kh_dynamic_smem[256 * 1024];

// ---------------------------------------------------------------- fibers
enum { KH_RUN, KH_BLOCK_BARRIER, KH_WARP_BARRIER, KH_DONE };
struct KhFiber {
    ucontext_t ctx;
    int state;
    kh_dim3 tid;
};
static std::function<void()> kh_body;
static KhFiber* kh_fibers = nullptr;
static char* kh_stacks = nullptr;
static int kh_capacity = 0, kh_current = -1;
static ucontext_t kh_scheduler;
static const size_t KH_STACK = 256 * 1024;
static unsigned long long kh_exchange[32][32];  // [warp][lane], up to 1024 threads a block

inline void kh_wait(int state) {
    if (kh_current < 0) {
        fprintf(stderr, "cpu_cuda: a barrier in a kernel run without fibers\n");
        abort();
    }
    kh_fibers[kh_current].state = state;
    swapcontext(&kh_fibers[kh_current].ctx, &kh_scheduler);
}
inline void __syncthreads() { kh_wait(KH_BLOCK_BARRIER); }
inline void __syncwarp(unsigned = 0xffffffffu) { kh_wait(KH_WARP_BARRIER); }
inline void __threadfence() {}

inline int kh_linear() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

// v as lane `src` of this warp holds it (every live lane of the warp takes part, as with a full mask).
template <class T>
T kh_from_lane(T v, int src) {
    const int lin = kh_linear(), warp = lin / 32;
    unsigned long long bits = 0, got;
    memcpy(&bits, &v, sizeof(T));
    kh_exchange[warp][lin % 32] = bits;
    kh_wait(KH_WARP_BARRIER);
    got = kh_exchange[warp][src];
    kh_wait(KH_WARP_BARRIER);  // every lane has read before any writes again
    T out;
    memcpy(&out, &got, sizeof(T));
    return out;
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask, int = 32) { return kh_from_lane(v, (kh_linear() % 32) ^ mask); }
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = kh_linear() % 32;
    return kh_from_lane(v, lane % width + (int)delta < width ? lane + (int)delta : lane);
}
template <class T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    const int lane = kh_linear() % 32;
    return kh_from_lane(v, lane - lane % width + src % width);
}

template <class T>
T atomicAdd(T* a, T v) { const T old = *a; *a = old + v; return old; }
inline unsigned atomicInc(unsigned* a, unsigned limit) {
    const unsigned old = *a;
    *a = old >= limit ? 0u : old + 1u;
    return old;
}

static void kh_trampoline() {
    kh_body();
    kh_fibers[kh_current].state = KH_DONE;
}

// One block of bx·by·bz threads as fibers, until every thread has returned.
static void kh_run_block(unsigned bx, unsigned by, unsigned bz) {
    const int n = (int)(bx * by * bz);
    if (n > kh_capacity) {
        free(kh_fibers);
        free(kh_stacks);
        kh_fibers = (KhFiber*)calloc(n, sizeof(KhFiber));
        kh_stacks = (char*)malloc(KH_STACK * n);
        kh_capacity = n;
    }
    for (int i = 0; i < n; ++i) {
        KhFiber& f = kh_fibers[i];
        f.state = KH_RUN;
        f.tid = {i % bx, (i / bx) % by, i / (bx * by)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = kh_stacks + KH_STACK * i;
        f.ctx.uc_stack.ss_size = KH_STACK;
        f.ctx.uc_link = &kh_scheduler;
        makecontext(&f.ctx, kh_trampoline, 0);
    }
    for (;;) {
        for (int i = 0; i < n; ++i) {
            if (kh_fibers[i].state != KH_RUN) continue;
            kh_current = i;
            threadIdx = kh_fibers[i].tid;
            swapcontext(&kh_scheduler, &kh_fibers[i].ctx);
        }
        int live = 0, at_block = 0;
        bool released = false;
        for (int w = 0; w * 32 < n; ++w) {
            int lanes = 0, waiting = 0;
            for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i) {
                const int s = kh_fibers[i].state;
                lanes += s != KH_DONE;
                waiting += s == KH_WARP_BARRIER;
                at_block += s == KH_BLOCK_BARRIER;
            }
            live += lanes;
            if (waiting && waiting == lanes) {
                for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i) kh_fibers[i].state = KH_RUN;
                released = true;
            }
        }
        if (live == 0) break;
        if (released) continue;
        if (at_block != live) {
            fprintf(stderr, "cpu_cuda: block (%u, %u, %u): threads wait at different barriers\n", blockIdx.x,
                    blockIdx.y, blockIdx.z);
            abort();
        }
        for (int i = 0; i < n; ++i)
            if (kh_fibers[i].state == KH_BLOCK_BARRIER) kh_fibers[i].state = KH_RUN;
    }
    kh_current = -1;
}

// One block, its threads one after the other (kernels without barriers).
static void kh_run_block_plain(unsigned bx, unsigned by, unsigned bz) {
    for (unsigned tz = 0; tz < bz; ++tz)
        for (unsigned ty = 0; ty < by; ++ty)
            for (unsigned tx = 0; tx < bx; ++tx) {
                threadIdx = {tx, ty, tz};
                kh_body();
            }
}

// A launch: every block in order, each by `run` (kh_run_block or kh_run_block_plain).
static void kh_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                      void (*run)(unsigned, unsigned, unsigned)) {
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                blockIdx = {x, y, z};
                run(bx, by, bz);
            }
}
