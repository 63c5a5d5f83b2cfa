"""Compile a CUDA source file with NVRTC and get its kernels: for your own implementations and for the built-in ones
(impls/cuda/common.py finds those by name and calls this).

    from harness import cuda
    conv = cuda.kernel("my_conv.cu", "my_conv_fprop")          # path relative to the calling file, or absolute
    conv((blocks,), (threads,), (x, w, y, np.int32(n)))          # a cupy RawKernel launch, on the current stream
    details = lambda s: cuda.attributes("my_conv.cu", ["my_conv_fprop"])   # registers, shared memory, spills

The default options are strict IEEE float32 (`-std=c++17 --ftz=false`, no fast math), the same as the built-in
kernels'. NVRTC is called here (cuda-python's bindings), not through CuPy's compiler: CuPy appends `-ftz=true` to
every option list it is given, and NVRTC honours the last occurrence, so every kernel it builds flushes subnormal
inputs and results to zero, which cuBLAS's and cuDNN's FP32 kernels do not. The machine code (cubin, for the current
device's sm_XY) is cached on disk by (source, options, architecture, NVRTC version) under
~/.cache/kernel-harness/cubin (KH_CUBIN_CACHE=<folder> moves it; "" keeps it per process), and loaded with
cupy.RawModule; modules are cached in memory per (file, its modification time, options). A file that does not
compile raises CompileError, whose message is the first compiler error (that row's `error` reason); the full log is
kept in COMPILE_LOGS, and the runner writes it to the run folder (compile-logs/). Imports cupy lazily.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

# strict IEEE float32: subnormals kept (NVRTC's default, said explicitly), no --use_fast_math
DEFAULT_OPTIONS = ("-std=c++17", "--ftz=false")
CUBIN_CACHE = Path("~/.cache/kernel-harness/cubin")
COMPILE_LOGS: list[tuple[Path, str]] = []  # (file, NVRTC log) of each failed compile, in order


class CompileError(RuntimeError):
    """A CUDA file that NVRTC could not compile: the message is its first error, `log` the whole output."""

    def __init__(self, path: Path, log: str):
        self.path, self.log = path, log
        errors = [line.strip() for line in log.splitlines() if "error" in line]
        super().__init__(f"{path.name} does not compile: {errors[0] if errors else log.strip()[:200]}")


def resolve(path: str | Path, caller_depth: int = 2) -> Path:
    """An absolute path as is; a relative one against the calling module's folder, then the working folder."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    # sys._getframe, not inspect.stack(): this runs on every launch, and inspect.stack() reads source files
    beside = Path(sys._getframe(caller_depth).f_code.co_filename).resolve().parent / path
    return beside if beside.is_file() else path.resolve()


def module(path: str | Path, options: tuple[str, ...] = DEFAULT_OPTIONS):
    """The compiled cupy.RawModule of one .cu file (cached); CompileError when it does not compile."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"CUDA source {path} does not exist")
    return _compiled(path, path.stat().st_mtime_ns, tuple(options))


@functools.cache
def _compiled(path: Path, mtime_ns: int, options: tuple[str, ...]):
    import cupy

    cubin = cached_cubin(path.read_bytes(), path.name, options, device_arch())
    if isinstance(cubin, str):
        COMPILE_LOGS.append((path, cubin))
        raise CompileError(path, cubin)
    return cupy.RawModule(path=str(cubin))


def device_arch() -> str:
    """The current CUDA device's real architecture, e.g. "sm_90" (NVRTC builds machine code for it)."""
    import cupy

    return f"sm_{cupy.cuda.Device().compute_capability}"


def compile_cubin(source: bytes, name: str, options: tuple[str, ...], arch: str) -> tuple[bytes | None, str]:
    """(machine code, log) of one CUDA source compiled by NVRTC for `arch` (e.g. "sm_90") with exactly `options`;
    for a virtual architecture ("compute_90") the code is its PTX instead (no ptxas). The code is None when it
    does not compile. Needs no GPU (the CI's compile test calls it too)."""
    from cuda.bindings import nvrtc

    def ok(err, what: str) -> None:
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"NVRTC {what} failed: {err}")

    err, prog = nvrtc.nvrtcCreateProgram(source, name.encode(), 0, [], [])
    ok(err, "nvrtcCreateProgram")
    try:
        opts = [o.encode() for o in (*options, f"--gpu-architecture={arch}")]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = nvrtc.nvrtcGetProgramLogSize(prog)
        ok(err, "nvrtcGetProgramLogSize")
        log = b" " * size
        ok(nvrtc.nvrtcGetProgramLog(prog, log)[0], "nvrtcGetProgramLog")
        log_text = log.rstrip(b"\0").decode(errors="replace").strip()
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            return None, log_text
        ptx = arch.startswith("compute_")
        get_size, get = (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX) if ptx else (nvrtc.nvrtcGetCUBINSize,
                                                                                nvrtc.nvrtcGetCUBIN)
        err, size = get_size(prog)
        ok(err, get_size.__name__)
        code = b" " * size
        ok(get(prog, code)[0], get.__name__)
        return code, log_text
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def cubin_cache_dir() -> Path:
    """The folder of cached machine code (KH_CUBIN_CACHE; empty: a folder of this process's own)."""
    value = os.environ.get("KH_CUBIN_CACHE")
    if value == "":
        return Path(_process_cache_dir())
    return Path(value or CUBIN_CACHE).expanduser()


@functools.cache
def _process_cache_dir() -> str:
    return tempfile.mkdtemp(prefix="kh-cubin-")


def cached_cubin(source: bytes, name: str, options: tuple[str, ...], arch: str) -> Path | str:
    """The cubin file of `source` built with `options` for `arch`, compiled first when the cache has none; the
    compiler's log (a str) when it does not compile."""
    from cuda.bindings import nvrtc

    _, major, minor = nvrtc.nvrtcVersion()
    key = hashlib.sha256(repr((source, options, arch, major, minor)).encode()).hexdigest()[:32]
    file = cubin_cache_dir() / f"{Path(name).stem}-{arch}-{key}.cubin"
    if file.is_file():
        return file
    code, log = compile_cubin(source, name, options, arch)
    if code is None:
        return log or f"{name}: NVRTC gave no log"
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(code)
    os.replace(tmp, file)  # atomic: a concurrent process sees the whole file or none
    return file


def kernel(path: str | Path, func: str, options: tuple[str, ...] = DEFAULT_OPTIONS):
    """One `extern "C"` kernel of a .cu file, ready to launch: kernel(grid, block, args[, shared_mem=...])."""
    path = resolve(path)
    return module(path, options).get_function(func)


def attributes(path: str | Path, funcs: list[str], options: tuple[str, ...] = DEFAULT_OPTIONS,
               launch: dict[str, tuple[int, int]] | None = None) -> dict:
    """A `details` result, {"kernels": {func: {"regs", "smem", "spill", ...}}}: registers per thread, shared memory
    per block and local (spill) bytes of the compiled kernels, as the report shows them.

    launch: {func: (threads per block, dynamic shared bytes)} of how the implementation launches each kernel; for
    those, "smem" is static + dynamic shared memory, "dyn_smem" the dynamic part, and "occupancy" the resident
    blocks per SM on the current device (`occupancy`)."""
    out = {}
    for f in funcs:
        k = kernel(resolve(path), f, options)
        row = {"regs": k.num_regs, "smem": k.shared_size_bytes, "spill": k.local_size_bytes}
        if launch and f in launch:
            threads, dyn = launch[f]
            row.update(smem=k.shared_size_bytes + dyn, dyn_smem=dyn,
                       occupancy=occupancy(k.num_regs, k.shared_size_bytes + dyn, threads, device_limits()))
        out[f] = row
    return {"kernels": out}


# The per-SM limits `occupancy` reads, with the values of compute capability 8.0-9.0 where a device does not say.
LIMIT_DEFAULTS = {"regsPerMultiprocessor": 65536, "maxThreadsPerMultiProcessor": 2048,
                  "maxBlocksPerMultiProcessor": 32, "sharedMemPerMultiprocessor": 233472,
                  "reservedSharedMemPerBlock": 1024}
REG_ALLOC_UNIT = 256  # registers are allocated per warp in units of 256 (compute capability 5.0-9.0)
SMEM_ALLOC_UNIT = 128  # shared memory is allocated per block in units of 128 bytes


@functools.cache
def _device_limits(dev: int) -> dict[str, int]:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(dev)
    return {k: int(props.get(k, v)) for k, v in LIMIT_DEFAULTS.items()}


def device_limits() -> dict[str, int]:
    """The per-SM resource limits of the current CUDA device (LIMIT_DEFAULTS' keys)."""
    import cupy

    return _device_limits(cupy.cuda.Device().id)


def occupancy(regs: int, smem: int, threads: int, limits: dict[str, int]) -> int:
    """Resident blocks per SM of a kernel with `regs` registers per thread, `smem` shared bytes per block and
    `threads` per block: the least of the thread, block, register and shared-memory limits, with the hardware's
    allocation granularities (as CUDA's occupancy calculator computes it)."""
    warps = -(-threads // 32)
    by_threads = limits["maxThreadsPerMultiProcessor"] // (warps * 32)
    by_regs = by_threads
    if regs:
        per_warp = -(-regs * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
        by_regs = (limits["regsPerMultiprocessor"] // per_warp) // warps
    per_block = -(-(smem + limits["reservedSharedMemPerBlock"]) // SMEM_ALLOC_UNIT) * SMEM_ALLOC_UNIT
    by_smem = limits["sharedMemPerMultiprocessor"] // per_block
    return max(0, min(by_threads, limits["maxBlocksPerMultiProcessor"], by_regs, by_smem))
