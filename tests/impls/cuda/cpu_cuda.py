"""Run a .cu file's kernels on the CPU: the kernel source itself, compiled by the host's C++ compiler.

`compile_kernels(file)` builds the file with cpu_cuda_runtime.h (threadIdx, vector types, atomics; the threads of
a block as fibers when the file uses barriers or warp shuffles, so __syncthreads and __shfl_*_sync mean what they
mean on the GPU) into a shared library with one driver per kernel that runs every block of a launch in turn, and
`Executor` runs the launches a wrapper makes (launch_recorder.record(..., execute=Executor())) on HostArray
buffers. Inline PTX has a C++ branch beside it in the source (#ifndef __CUDA_ARCH__: gemm_warptile.cu's cp.async
is a copy done at once, which has completed by its wait). What this cannot see: races between threads that a
barrier does not order (threads run one at a time), memory coalescing, anything about speed; it sees the index
arithmetic, the bounds, the barriers (a missing one reads shared memory before it is written) and the math of the
kernel text.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from launch_recorder import HostArray, HostView, Launch, parameters, signature

from impls.cuda import common as _cuda

CXX = shutil.which("g++") or shutil.which("c++")
RUNTIME = Path(__file__).with_name("cpu_cuda_runtime.h")  # threadIdx, vector types, fibers, shuffles, atomics
BARRIERS = ("__syncthreads", "__syncwarp", "__shfl")  # a file using any of these runs its blocks as fibers
CTYPES = {"ptr": ctypes.c_void_p, "int": ctypes.c_int32, "unsigned": ctypes.c_uint32, "long long": ctypes.c_int64,
          "unsigned long long": ctypes.c_uint64, "float": ctypes.c_float}
_BUILT: dict[str, ctypes.CDLL] = {}
_BUILD_DIR = tempfile.TemporaryDirectory(prefix="cpu_cuda_")  # this process's libraries, removed at its exit


def _driver(file: str, func: str, fibers: bool) -> str:
    """extern "C" void cpu_<func>(grid x, y, z, block x, y, z, the kernel's parameters): every block of the launch,
    its threads as fibers (`fibers`) or one after the other."""
    params = parameters(file, func)
    names = [f"a{i}" for i in range(len(params))]
    decl = ", ".join(f"{p.rsplit(' ', 1)[0].replace('__restrict__', '')} {n}" for p, n in zip(params, names,
                                                                                                  strict=True))
    return f"""
extern "C" void cpu_{func}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, {decl}) {{
    kh_body = [=]() {{ {func}({", ".join(names)}); }};
    kh_launch(gx, gy, gz, bx, by, bz, {"kh_run_block" if fibers else "kh_run_block_plain"});
}}
"""


def _host_source(file: str) -> str:
    """The .cu text as C++: dynamic shared memory (`extern __shared__ T name[];`) made a pointer into the runtime's
    buffer."""
    text = _cuda.cuda_files()[file].read_text()
    return re.sub(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?(\w+)\s+(\w+)\[\]\s*;",
                  lambda m: f"{m[1]}* {m[2]} = ({m[1]}*)kh_dynamic_smem;", text)


def _compiled_kernels(text: str) -> list[str]:
    """The kernels this text declares once preprocessed (with its defines: a kernel under #if GEMM_BATCHED only
    in that module; macro-built names spelled out)."""
    pre = subprocess.run([CXX, "-E", "-P", "-x", "c++", "-"], input=text, check=True, capture_output=True,
                         text=True).stdout
    return list(dict.fromkeys(re.findall(r'extern\s+"C"\s+void\s+(\w+)\s*\(', pre)))


def compile_kernels(file: str, funcs: list[str] | None = None, defines: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The kernels `funcs` of `file` (all it declares when None), with the NVRTC `defines` of its module
    ("-DCONV_RELU=1"), built for the CPU (-O1, strict IEEE: no -ffast-math; contraction of a*b + c
    into an FMA is left to the compiler, as NVRTC's default --fmad=true does on the GPU, so the last bits of a
    result may differ between the two); cached per source and kernel list."""
    if CXX is None:
        raise RuntimeError("no C++ compiler (g++) on this machine")
    source = _host_source(file)
    fibers = any(b in source for b in BARRIERS)
    macros = "".join(f"#define {d[2:].replace('=', ' ', 1)}\n" for d in defines)
    head = f'#include "{RUNTIME}"\n' + macros + source
    funcs = _compiled_kernels(head) if funcs is None else funcs
    text = head + "".join(_driver(file, f, fibers) for f in funcs)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    if key not in _BUILT:
        out = Path(_BUILD_DIR.name)
        cpp, lib = out / f"{Path(file).stem}_{key}.cpp", out / f"{Path(file).stem}_{key}.so"
        cpp.write_text(text)
        subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-w", "-o", str(lib), str(cpp)],
                       check=True, capture_output=True, text=True)
        _BUILT[key] = ctypes.CDLL(str(lib))
    lib = _BUILT[key]
    for f in funcs:
        fn = getattr(lib, f"cpu_{f}")
        fn.argtypes = [ctypes.c_uint32] * 6 + [CTYPES[t] for t in signature(file, f)]
        fn.restype = None
    return lib


def _value(arg):
    if isinstance(arg, HostView):
        assert arg.array.flags.c_contiguous, "a non-contiguous view passed to a kernel"
        return arg.ptr
    if isinstance(arg, HostArray):
        return arg.ptr
    return int(arg) if isinstance(arg, np.integer) else float(arg)


@functools.cache
def _module(file: str, defines: tuple[str, ...]) -> ctypes.CDLL:
    """Every kernel of one module (a file and its defines), built once per process."""
    return compile_kernels(file, defines=defines)


class Executor:
    """Runs each launch: a kernel from its source, its module built on first use with the launch's defines."""

    def __call__(self, launch: Launch) -> None:
        kernel = getattr(_module(launch.file, launch.defines), f"cpu_{launch.func}")
        kernel(*launch.grid3, *launch.block3, *(_value(a) for a in launch.args))
