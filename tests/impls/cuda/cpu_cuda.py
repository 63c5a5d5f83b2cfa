"""Run a .cu file's kernels on the CPU: the kernel source itself, compiled by the host's C++ compiler.

`compile_kernels(file)` builds the file with cpu_cuda_runtime.h (threadIdx, vector types, atomics; the threads of
a block as fibers when the file uses barriers or warp shuffles, so __syncthreads and __shfl_*_sync mean what they
mean on the GPU) into a shared library with one driver per kernel that runs every block of a launch in turn, and
`Executor` runs the launches a wrapper makes (launch_recorder.record(..., execute=Executor())) on HostArray
buffers. The v7 SGEMM (gemm_warptile.cu: cp.async in inline PTX) is not compiled; its batched bnn product runs by
its contract (`run_batched_gemm`). What this cannot see: races between threads that a barrier does not order
(threads run one at a time), memory coalescing, anything about speed; it sees the index arithmetic, the bounds,
the barriers (a missing one reads shared memory before it is written) and the math of the kernel text.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from launch_recorder import HostArray, HostView, Launch, kernels, parameters, signature

from impls.cuda import common as _cuda

CXX = shutil.which("g++") or shutil.which("c++")
RUNTIME = Path(__file__).with_name("cpu_cuda_runtime.h")  # threadIdx, vector types, fibers, shuffles, atomics
BARRIERS = ("__syncthreads", "__syncwarp", "__shfl")  # a file using any of these runs its blocks as fibers
CTYPES = {"ptr": ctypes.c_void_p, "int": ctypes.c_int32, "unsigned": ctypes.c_uint32, "long long": ctypes.c_int64,
          "unsigned long long": ctypes.c_uint64, "float": ctypes.c_float}
_BUILT: dict[str, ctypes.CDLL] = {}


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


def compile_kernels(file: str, funcs: list[str] | None = None, defines: tuple[str, ...] = (),
                    build_dir: Path | None = None) -> ctypes.CDLL:
    """The kernels `funcs` of `file` (all it declares by name when None), with the NVRTC `defines` of its module
    ("-DCONV_RELU=1"), built for the CPU (-O1, strict IEEE: no -ffast-math; contraction of a*b + c
    into an FMA is left to the compiler, as NVRTC's default --fmad=true does on the GPU, so the last bits of a
    result may differ between the two); cached per source and kernel list."""
    if CXX is None:
        raise RuntimeError("no C++ compiler (g++) on this machine")
    funcs = kernels(file) if funcs is None else funcs
    source = _host_source(file)
    fibers = any(b in source for b in BARRIERS)
    macros = "".join(f"#define {d[2:].replace('=', ' ', 1)}\n" for d in defines)
    text = f'#include "{RUNTIME}"\n' + macros + source + "".join(_driver(file, f, fibers) for f in funcs)
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
    if isinstance(arg, HostView):
        assert arg.array.flags.c_contiguous, "a non-contiguous view passed to a kernel"
        return arg.ptr
    if isinstance(arg, HostArray):
        return arg.ptr
    return int(arg) if isinstance(arg, np.integer) else float(arg)


NOT_ON_CPU = ("gemm_warptile.cu",)  # inline PTX (cp.async): its batched bnn product runs by contract instead


def runs_on_cpu(launch: Launch) -> bool:
    """Whether the Executor can run this launch."""
    return launch.file not in NOT_ON_CPU or _by_contract(launch)


def _by_contract(launch: Launch) -> bool:
    return launch.func.startswith("sgemm_wt_") and launch.func.endswith("_bnn")


class Executor:
    """Runs each launch: a kernel from its source (its module compiled on first use, with the launch's defines),
    sgemm_wt_*_bnn by its contract; any other kernel of NOT_ON_CPU is an error."""

    def __init__(self):
        self.libs: dict[tuple, ctypes.CDLL] = {}

    def __call__(self, launch: Launch) -> None:
        if _by_contract(launch):
            run_batched_gemm(launch)
            return
        if not runs_on_cpu(launch):
            raise RuntimeError(f"{launch.func} of {launch.file}: does not run on the CPU (inline PTX)")
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
