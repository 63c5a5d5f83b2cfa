"""Where arrays live: NumPy on the CPU, CuPy on the GPU. The only module that decides how to reach CuPy."""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def gpu_unavailable_reason() -> str | None:
    """None when CuPy imports and sees a CUDA device; otherwise the reason, e.g. 'no CUDA device'."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return f"cupy not installed ({type(exc).__name__}); pip install .[cuda13] or .[cuda12]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no CUDA device ({str(exc).splitlines()[0]})"
    return None if count > 0 else "no CUDA device"


def array_module(a):
    """numpy for NumPy arrays, cupy for CuPy arrays (without importing cupy when it is not needed)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def xp_for(device: str):
    """The array module of a device: numpy for 'cpu', cupy for 'gpu'."""
    if device == "gpu":
        import cupy

        return cupy
    return np


def float_dtype(math: str):
    """float64 for the fp64 oracle, float32 for everything else (fp32 and tf32 read and write float32)."""
    return np.float64 if math == "fp64" else np.float32


def to_host(a) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def to_device(a: np.ndarray, device: str, dtype=None):
    """`a` on `device`, cast to `dtype` (int32 arrays are never cast)."""
    if dtype is not None and a.dtype.kind == "f":
        a = a.astype(dtype, copy=False)
    return xp_for(device).asarray(a)


def synchronize(device: str) -> None:
    """Wait for all work on the device, on every stream (not only the current one: an implementation that put
    work on a stream of its own must not have its outputs read before that work is done)."""
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()
