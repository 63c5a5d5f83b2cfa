"""What the CuPy RawKernel implementations share: loading `.cu` files, launch geometry, kernel attributes.

CUDA sources live beside their Python wrappers as .cu files anywhere under impls/, named uniquely, and are found by
file name. `module(name)` compiles one file with NVRTC through cupy.RawModule (cached per process) and
`kernel(file, func)` returns one of its `extern "C"` kernels. `defines` (e.g. ("-DCONV_RELU=1",)) compile a variant
of a file, a second module beside the first (conv2d_bias_relu's fused epilogue).
The same files are compiled by tests/impls/cuda/test_nvrtc_compile.py on machines without a GPU, with the same
options (NVRTC_OPTIONS).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from harness import cuda
from harness.device import gpu_unavailable_reason

IMPLS_DIR = Path(__file__).parent.parent
NVRTC_OPTIONS = cuda.DEFAULT_OPTIONS  # strict IEEE float32: no --use_fast_math anywhere
NULL = np.uint64(0)  # a null pointer kernel argument (e.g. no bias)


def available() -> str | None:
    """Availability check for every CuPy implementation."""
    return gpu_unavailable_reason()


@functools.cache
def cuda_files() -> dict[str, Path]:
    """Every .cu file under impls/, by file name (names are unique, so a wrapper can say "gemm_tiled.cu")."""
    files: dict[str, Path] = {}
    for path in sorted(IMPLS_DIR.rglob("*.cu")):
        if path.name in files:
            raise RuntimeError(f"two CUDA files are named {path.name}: {files[path.name]} and {path}")
        files[path.name] = path
    return files


@functools.cache
def module(name: str, defines: tuple[str, ...] = ()):
    """The compiled cupy.RawModule of the .cu file `name` under impls/, with `defines` added to the NVRTC options
    (harness.cuda compiles and caches it)."""
    return cuda.module(cuda_files()[name], NVRTC_OPTIONS + defines)


def kernel(name: str, func: str, defines: tuple[str, ...] = ()):
    """One `extern "C"` kernel of the .cu file `name` (compiled with `defines`)."""
    return module(name, defines).get_function(func)


def attributes(name: str, funcs: list[str], launch: dict[str, tuple[int, int]] | None = None,
               defines: tuple[str, ...] = ()) -> dict:
    """A `details` result: registers, shared bytes and local (spill) bytes of the compiled kernels; with `launch`
    ({func: (threads, dynamic shared bytes)}) also dynamic shared memory and occupancy (harness.cuda.attributes)."""
    return cuda.attributes(cuda_files()[name], funcs, NVRTC_OPTIONS + defines, launch)


def blocks(n: int, threads: int) -> int:
    """Number of blocks of `threads` to cover n items (at least one)."""
    return max(1, -(-n // threads))


TICKETS = 4096  # counters per (device, stream) for the kernels whose last block to finish sums the others' work
_TICKETS: dict[tuple[int, int], object] = {}


def tickets(n: int):
    """n zeroed uint32 counters for a last-block reduction (losses.cu's fused mean, conv2d_direct_small.cu's
    wgrad across blocks): one set per device and stream, so that launches on different streams never share one;
    every kernel leaves the counters it used at zero again."""
    import cupy

    if n > TICKETS:
        raise ValueError(f"{n} last-block counters asked for, at most {TICKETS}")
    key = (cupy.cuda.Device().id, cupy.cuda.get_current_stream().ptr)
    if key not in _TICKETS:
        _TICKETS[key] = cupy.zeros(TICKETS, dtype=cupy.uint32)
    return _TICKETS[key]
