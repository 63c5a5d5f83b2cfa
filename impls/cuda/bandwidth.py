"""Launch helpers shared by the bandwidth-bound CuPy kernels (elementwise maps, pooling, losses).

Each op has a naive kernel (`*_naive`, registered as cupy_naive: one thread per element) and a vectorised one
(`*_vec`, registered as cupy_opt). The `_vec` kernels run on a persistent grid: as many blocks as fit on the
device at once, each walking the tensor with a grid-stride loop, so that no block waits for a free multiprocessor
and each thread keeps several loads in flight. Their vector paths need a head/body/tail split of the flat tensor:
a scalar head up to the first 16-byte boundary, a float4 body and a scalar tail, which works for any size and any
alignment as long as every tensor of the call has the same address modulo 16 (otherwise everything takes the
scalar path).

Imports cupy lazily: this module is imported on machines without a GPU by `harness.registry.discover()`.
"""

from __future__ import annotations

import functools

import numpy as np

from impls.cuda import common as _cuda

IMPL_NAMES = {"naive": "cupy_naive", "vec": "cupy_opt"}  # kernel suffix -> registered implementation name
FALLBACK = {"naive": 2, "vec": 1}  # training backends that lack the op take cupy_opt first
THREADS = 256  # threads per block of every bandwidth kernel
REGISTERS_PER_SM = 65536
THREADS_PER_SM = 2048
BLOCKS_PER_SM = 32
SHARED_PER_SM = 228 * 1024


@functools.cache
def sm_count(device_id: int) -> int:
    import cupy

    return int(cupy.cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"])


def resident_blocks(regs: int, smem: int, threads: int = THREADS) -> int:
    """Blocks of `threads` that fit on one multiprocessor at once (registers are allocated per warp in units of 256)."""
    warps = threads // 32
    regs_per_warp = -(-max(regs, 1) * 32 // 256) * 256
    by_regs = (REGISTERS_PER_SM // regs_per_warp) // warps
    by_smem = SHARED_PER_SM // smem if smem else BLOCKS_PER_SM
    return max(1, min(by_regs, by_smem, THREADS_PER_SM // threads, BLOCKS_PER_SM))


@functools.cache
def _resident_grid(file: str, func: str, threads: int, device_id: int) -> int:
    """Blocks of `func` resident at once on the whole device (cached: the kernel attributes are driver calls)."""
    k = _cuda.kernel(file, func)
    return sm_count(device_id) * resident_blocks(k.num_regs, k.shared_size_bytes, threads)


def persistent_blocks(file: str, func: str, work_threads: int, threads: int = THREADS) -> int:
    """Grid size of a grid-stride kernel: the blocks resident at once on this device, capped by the work (at least
    one block)."""
    import cupy

    resident = _resident_grid(file, func, threads, cupy.cuda.Device().id)
    return max(1, min(resident, _cuda.blocks(work_threads, threads)))


def require_contiguous(*arrays) -> None:
    """The kernels index flat C-order tensors: refuse anything else (it becomes an error row, not wrong numbers)."""
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError(f"expected a C-contiguous array, got shape {a.shape} strides {a.strides}")


def vector_split(n: int, *arrays) -> tuple[int, int]:
    """(head, nvec) for float32 tensors of n elements: head scalar elements up to the first 16-byte boundary, then
    nvec float4; (n, 0), all scalar, when the tensors do not share their address modulo 16."""
    offsets = {a.data.ptr % 16 for a in arrays}
    if len(offsets) != 1:
        return n, 0
    off = offsets.pop()
    if off % 4:
        return n, 0
    head = min(n, (16 - off) % 16 // 4)
    return head, (n - head) // 4


def launch_naive(file: str, func: str, n: int, arrays: tuple, scalars: tuple = ()) -> None:
    """One thread per element: kernel(*arrays, *scalars, n) over ceil(n / THREADS) blocks."""
    require_contiguous(*arrays)
    _cuda.kernel(file, func)((_cuda.blocks(n, THREADS),), (THREADS,), (*arrays, *scalars, np.int64(n)))


def launch_map(file: str, func: str, n: int, arrays: tuple, scalars: tuple = ()) -> None:
    """A grid-stride float4 map: kernel(*arrays, *scalars, n, head, nvec) on a persistent grid."""
    require_contiguous(*arrays)
    head, nvec = vector_split(n, *arrays)
    grid = persistent_blocks(file, func, max(nvec, n - 4 * nvec))
    _cuda.kernel(file, func)((grid,), (THREADS,), (*arrays, *scalars, np.int64(n), np.int64(head), np.int64(nvec)))
