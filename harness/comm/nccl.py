"""Finding NCCL for cupy.cuda.nccl. CuPy's wheels do not ship libnccl: it comes from the nvidia-nccl-cu12/-cu13
wheels (the cuda12/cuda13 extras), which PyTorch also installs. When CuPy cannot find it by itself, the library of
such a wheel is loaded first (RTLD_GLOBAL) and the import is tried again."""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import site
import sys


def _candidates() -> list[str]:
    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    found = []
    for root in dict.fromkeys(r for r in roots if r and os.path.isdir(r)):
        found += glob.glob(os.path.join(root, "nvidia", "nccl", "lib", "libnccl.so*"))
        found += glob.glob(os.path.join(root, "nvidia", "cu1*", "lib", "libnccl.so*"))
    return found


@functools.cache
def nccl():
    """The cupy.cuda.nccl module; RuntimeError with the reason when NCCL cannot be loaded."""
    try:
        from cupy.cuda import nccl as module

        return module
    except (ImportError, AttributeError) as first:
        for path in _candidates():
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                import importlib

                return importlib.import_module("cupy.cuda.nccl")
            except (OSError, ImportError, AttributeError):
                continue
        raise RuntimeError(f"NCCL not found ({first}); install nvidia-nccl-cu13 or -cu12 (the cuda13/cuda12 "
                           "extras)") from None
