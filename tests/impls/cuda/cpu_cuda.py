"""Run a .cu file's simple kernels on the CPU: the kernel source itself, compiled by the host's C++ compiler.

A kernel that uses no shared memory, barrier, warp intrinsic or asynchronous copy computes, thread by thread, what
its C++ text says; `compile_kernels(file, funcs)` builds it with a few definitions (__global__, threadIdx, ...)
into a shared library with one driver per kernel that runs every block and thread of a launch in order, and
`Executor` runs the launches a wrapper makes (launch_recorder.record(..., execute=Executor(...))) on HostArray
buffers. The v7 SGEMM (shared memory, cp.async) is run by its contract instead: `run_batched_gemm` computes what
a bnn launch of sgemm_wt_*_bnn is documented to write. What this cannot see: races between threads, memory
coalescing, anything about speed; it sees the index arithmetic, the bounds and the transforms of the kernel text.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from launch_recorder import HostArray, Launch, kernels, parameters, signature

from impls.cuda import common as _cuda

CXX = shutil.which("g++") or shutil.which("c++")
SHIM = """
#include <math.h>
#include <algorithm>
struct kh_dim3 { unsigned x, y, z; };
static kh_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __ldg(p) (*(p))
using std::min;
using std::max;
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
"""
CTYPES = {"ptr": ctypes.c_void_p, "int": ctypes.c_int32, "unsigned": ctypes.c_uint32, "long long": ctypes.c_int64,
          "unsigned long long": ctypes.c_uint64, "float": ctypes.c_float}
_BUILT: dict[str, ctypes.CDLL] = {}


def _driver(file: str, func: str) -> str:
    """extern "C" void cpu_<func>(grid x, y, z, block x, y, z, the kernel's parameters): every block and thread."""
    params = parameters(file, func)
    names = [f"a{i}" for i in range(len(params))]
    decl = ", ".join(f"{p.rsplit(' ', 1)[0].replace('__restrict__', '')} {n}" for p, n in zip(params, names,
                                                                                                  strict=True))
    return f"""
extern "C" void cpu_{func}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, {decl}) {{
    gridDim = {{gx, gy, gz}};
    blockDim = {{bx, by, bz}};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y) for (unsigned x = 0; x < gx; ++x)
        for (unsigned tz = 0; tz < bz; ++tz) for (unsigned ty = 0; ty < by; ++ty)
            for (unsigned tx = 0; tx < bx; ++tx) {{
                blockIdx = {{x, y, z}};
                threadIdx = {{tx, ty, tz}};
                {func}({", ".join(names)});
            }}
}}
"""


def compile_kernels(file: str, funcs: list[str] | None = None, defines: tuple[str, ...] = (),
                    build_dir: Path | None = None) -> ctypes.CDLL:
    """The kernels `funcs` of `file` (all it declares by name when None), with the NVRTC `defines` of its module
    ("-DCONV_RELU=1"), built for the CPU (-O1, strict IEEE: no -ffast-math; contraction of a*b + c
    into an FMA is left to the compiler, as NVRTC's default --fmad=true does on the GPU, so the last bits of a
    result may differ between the two); cached per source and kernel list."""
    if CXX is None:
        raise RuntimeError("no C++ compiler (g++) on this machine")
    funcs = kernels(file) if funcs is None else funcs
    source = _cuda.cuda_files()[file].read_text()
    macros = "".join(f"#define {d[2:].replace('=', ' ', 1)}\n" for d in defines)
    text = SHIM + macros + source + "".join(_driver(file, f) for f in funcs)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    if key not in _BUILT:
        out = Path(build_dir or tempfile.mkdtemp(prefix="cpu_cuda_"))
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
    return arg.ptr if isinstance(arg, HostArray) else (int(arg) if isinstance(arg, np.integer) else float(arg))


class Executor:
    """Runs each launch: a kernel from its source (its file compiled on first use), sgemm_wt_*_bnn by its
    contract. `files`: the .cu files it may compile; a launch from any other is an error."""

    def __init__(self, files: tuple[str, ...]):
        self.files = files
        self.libs: dict[tuple, ctypes.CDLL] = {}

    def __call__(self, launch: Launch) -> None:
        if launch.func.startswith("sgemm_wt_") and launch.func.endswith("_bnn"):
            run_batched_gemm(launch)
            return
        if launch.file not in self.files:
            raise RuntimeError(f"{launch.func} of {launch.file}: not a file this executor runs ({self.files})")
        module = (launch.file, launch.defines)
        if module not in self.libs:
            self.libs[module] = compile_kernels(launch.file, defines=launch.defines)
        grid = (*launch.grid, 1, 1)[:3]
        block = (*launch.block, 1, 1)[:3]
        getattr(self.libs[module], f"cpu_{launch.func}")(*grid, *block, *(_value(a) for a in launch.args))


def run_batched_gemm(launch: Launch) -> None:
    """What sgemm_wt_<tile>_bnn writes (gemm_warptile.cu): for z < grid.z, C_z (M×N, ldc) = A_z (M×K, lda) ·
    B_z (K×N, ldb) + bias per row, ReLU; A_z = A + z·sa and so on. Accumulated in float64, stored as float32."""
    a, b, c, bias, m, n, k, lda, ldb, ldc, relu, _, _, _, _, sa, sb, sc = launch.args
    m, n, k, lda, ldb, ldc, sa, sb, sc = (int(v) for v in (m, n, k, lda, ldb, ldc, sa, sb, sc))
    for z in range((*launch.grid, 1, 1)[2]):
        a_z = a.host[z * sa:z * sa + (m - 1) * lda + k].astype(np.float64)
        b_z = b.host[z * sb:z * sb + (k - 1) * ldb + n].astype(np.float64)
        a_z = np.lib.stride_tricks.as_strided(a_z, (m, k), (lda * 8, 8))
        b_z = np.lib.stride_tricks.as_strided(b_z, (k, n), (ldb * 8, 8))
        out = a_z @ b_z
        if isinstance(bias, HostArray):
            out += bias.host[:m, None]
        if int(relu):
            out = np.maximum(out, 0)
        for i in range(m):
            c.host[z * sc + i * ldc:z * sc + i * ldc + n] = out[i]
