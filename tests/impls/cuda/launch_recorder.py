"""Run the CUDA wrappers' host code without a GPU and record every kernel launch they make, to hold them against
the kernels' signatures in the .cu files (test_launch_contracts.py) or to run them on the CPU (cpu_cuda.py).

A RawKernel launch passes its arguments as a tuple that CuPy packs by their NumPy types: an int32 where the kernel
takes a `long long` (or the other way round) shifts every later argument, and nothing fails until the results are
wrong. `record(monkeypatch)` replaces cupy with a stand-in (buffers are FakeArray, aligned as CuPy's pool aligns
them; HostArray when the launches are also executed, cpu_cuda.py), impls.cuda.common.kernel with a recorder, and
the GEMM planner's device query and tuner with a fixed device and a given configuration; `signature(file, func)`
reads a kernel's parameter types from its source, macros included.
"""

from __future__ import annotations

import functools
import re
import sys
import types
from dataclasses import dataclass, field

import numpy as np

from impls.cuda import common as _cuda


@dataclass
class FakeArray:
    """What the wrappers read of a CuPy array: its device pointer (256-byte aligned, like CuPy's pool) and size."""

    size: int
    ptr: int = 1 << 20
    flags = types.SimpleNamespace(c_contiguous=True)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ptr)

    def reshape(self, *shape) -> FakeArray:
        return self  # a view: the same buffer

    def transpose(self, *axes) -> FakeArray:
        return self


class HostArray(FakeArray):
    """A FakeArray backed by a NumPy array (`host`, flat), whose pointer is the array's own, between two guard
    zones of GUARD elements holding a NaN of a pattern no kernel computes: `intact()` says whether a kernel wrote
    outside the buffer (a small overrun lands in a guard instead of corrupting the process)."""

    GUARD = 1 << 14
    PATTERN = np.uint32(0x7FC0DEAD)

    def __init__(self, data: np.ndarray):
        flat = np.ascontiguousarray(data).reshape(-1)
        self.base = np.empty(flat.size + 2 * self.GUARD, dtype=flat.dtype)
        self.base.view(np.uint32)[:] = self.PATTERN  # float32 and int32 buffers: 4-byte elements
        self.host = self.base[self.GUARD:self.GUARD + flat.size]
        self.host[:] = flat
        super().__init__(flat.size, self.host.ctypes.data)

    @classmethod
    def of(cls, a: np.ndarray) -> HostArray:
        return cls(a)

    def intact(self) -> bool:
        bits = self.base.view(np.uint32)
        return bool((bits[:self.GUARD] == self.PATTERN).all() and (bits[-self.GUARD:] == self.PATTERN).all())

    def reshape(self, *shape) -> HostView:
        return HostView(self.host.reshape(*shape))

    def transpose(self, *axes) -> HostView:
        return HostView(self.host.transpose(*axes))


class HostView(FakeArray):
    """A reshaped or transposed HostArray, as CuPy's views are: what cupy.ascontiguousarray copies, and what a
    kernel may be given only while it is contiguous."""

    def __init__(self, array: np.ndarray):
        super().__init__(array.size, array.ctypes.data)
        self.array = array

    def reshape(self, *shape) -> HostView:
        return HostView(self.array.reshape(*shape))

    def transpose(self, *axes) -> HostView:
        return HostView(self.array.transpose(*axes))


@dataclass
class Launch:
    file: str
    func: str
    defines: tuple
    grid: tuple
    block: tuple
    args: tuple
    shared_mem: int = 0

    @property
    def grid3(self) -> tuple[int, int, int]:
        return (*self.grid, 1, 1)[:3]

    @property
    def block3(self) -> tuple[int, int, int]:
        return (*self.block, 1, 1)[:3]


# Host code that goes through CuPy's own routines (cupy.matmul, reductions), which the stand-in does not have; its
# kernels (im2col, col2im) are launched the same way by cupy_opt's lowered dgrad, covered without it.
THROUGH_CUPY = {"cupy_im2col_cublas"}


def own_gpu_impls() -> list:
    """The project's own GPU implementations whose host code the stand-in cupy can run."""
    from harness.registry import all_impls

    return [i for i in all_impls() if i.device == "gpu" and i.family == "own" and i.name not in THROUGH_CUPY]


@dataclass
class Recorder:
    """The launches made so far; with `execute` (a callable taking a Launch) each launch is also run as it is
    made, and buffers are HostArray (cpu_cuda.py runs the kernels' own source on the CPU)."""

    launches: list[Launch] = field(default_factory=list)
    execute: object = None
    made: list[HostArray] = field(default_factory=list)  # the wrappers' own buffers (workspaces), when executing
    _next_ptr: int = 1 << 20

    def _host(self, data: np.ndarray) -> HostArray:
        self.made.append(HostArray.of(data))
        return self.made[-1]

    def empty(self, shape, dtype=None) -> FakeArray:
        size = int(np.prod(shape))
        if self.execute is not None:
            return self._host(np.full(size, np.nan, dtype=dtype or np.float32))
        arr = FakeArray(size, self._next_ptr)
        self._next_ptr += -(-size * 4 // 256) * 256 + 256
        return arr

    def zeros(self, shape, dtype=None) -> FakeArray:
        if self.execute is not None:
            return self._host(np.zeros(int(np.prod(shape)), dtype=dtype or np.float32))
        return self.empty(shape, dtype)

    def asarray(self, a) -> FakeArray:
        if self.execute is not None:  # a host table uploaded: its values
            return self._host(np.asarray(a))
        return self.empty(np.shape(a))

    def ascontiguousarray(self, a: FakeArray) -> FakeArray:
        if self.execute is not None:  # a copy, in the view's order (a transposed weight copy)
            return self._host(np.ascontiguousarray(a.array if isinstance(a, HostView) else a.host))
        return self.empty((a.size,))

    def take(self, a: FakeArray, indices: FakeArray) -> FakeArray:
        if self.execute is not None:  # a gather of a's flat elements (a stride phase's weight copy)
            return self._host(a.host.ravel()[indices.host.astype(np.int64)])
        return self.empty((indices.size,))

    def kernel(self, file: str, func: str, defines: tuple = ()):
        recorder = self

        class Kernel:
            max_dynamic_shared_size_bytes = 0
            num_regs, shared_size_bytes = 64, 0  # what occupancy-sized grids (bandwidth.py) read

            def __call__(self, grid, block, args, shared_mem=0):
                launch = Launch(file, func, tuple(defines), tuple(grid), tuple(block), tuple(args), shared_mem)
                recorder.launches.append(launch)
                if recorder.execute is not None:
                    recorder.execute(launch)
        return Kernel()


def record(monkeypatch, config=None, execute=None) -> Recorder:
    """Patch cupy, the kernel loader and the GEMM planner (every product runs `config`, a gemm_tune.Config, unsplit
    for the batched kernels; the heuristic's choice when None) and the tuner of other choices (each candidate
    runs once, the last is kept); returns the recorder whose .launches fill as the wrappers run. With `execute`
    (cpu_cuda.Executor) every launch also runs, on HostArray buffers."""
    from impls.cuda import gemm, gemm_tune

    rec = Recorder(execute=execute)
    stream = types.SimpleNamespace(is_capturing=lambda: False, ptr=0)
    device = (0, "recorded device", 132, 232448)
    gpu = types.SimpleNamespace(id=0, attributes={"MultiProcessorCount": device[2]})
    props = {"name": device[1], "multiProcessorCount": device[2], "sharedMemPerBlockOptin": device[3]}
    runtime = types.SimpleNamespace(getDeviceProperties=lambda dev: props)
    fake = types.SimpleNamespace(empty=rec.empty, zeros=rec.zeros, asarray=rec.asarray, take=rec.take,
                                 ascontiguousarray=rec.ascontiguousarray,
                                 float32=np.float32, int32=np.int32, uint32=np.uint32,
                                 cuda=types.SimpleNamespace(get_current_stream=lambda: stream, Device=lambda: gpu,
                                                            runtime=runtime))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_cuda, "kernel", rec.kernel)
    _fresh_caches(monkeypatch)
    monkeypatch.setattr(gemm, "device", lambda: device)

    def plan(layout, m, n, k, bias, relu, vec, launch, v6=False, batch=1, splits=gemm_tune.SPLITS):
        splittable = not gemm._batched(layout)
        if config is None:
            launch(gemm_tune.heuristic(m, n, k, device[2], device[3], batch, splittable))
        else:  # as the tuner's candidates: the batched kernels are never split
            launch(config if splittable else gemm_tune.Config(config.tile))
    monkeypatch.setattr(gemm, "_plan", plan)

    def tune(cands, launch):  # another tuner (conv2d_winograd.py's variants): every candidate runs; the last wins
        for c in cands:
            launch(c)
        return cands[-1], {c: 0.0 for c in cands}
    monkeypatch.setattr(gemm_tune, "tune", tune)
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")  # tuned choices in memory only, not in the user's cache file
    return rec


def _fresh_caches(monkeypatch) -> None:
    """Give every cached function of the impls package (device tables uploaded once per shape, the SM count) and
    every module-level table of them (_TICKETS, _CHOSEN, ...) an empty cache for this test: what they cache here
    are stand-ins, and a later test (or a GPU run in the same process) gets the originals back when monkeypatch
    undoes this."""
    for mod in [m for name, m in sys.modules.items() if name.startswith("impls.") and m is not None]:
        for name, value in list(vars(mod).items()):
            if callable(value) and hasattr(value, "cache_clear") and hasattr(value, "__wrapped__"):
                monkeypatch.setattr(mod, name, functools.cache(value.__wrapped__))
            elif re.fullmatch(r"_[A-Z_]+", name) and type(value) in (dict, set):  # _TICKETS, _CHOSEN, ...
                monkeypatch.setattr(mod, name, type(value)())


@functools.cache
def _source(file: str) -> str:
    """The .cu file's text with line continuations joined, comments removed and its object-like macros (a
    parameter list such as CONV_GEOMETRY) expanded."""
    text = _cuda.cuda_files()[file].read_text().replace("\\\n", " ")
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    macros = dict(re.findall(r"^[ \t]*#define[ \t]+(\w+)[ \t]+([^\n]*)$", text, flags=re.M))
    for _ in range(4):  # macros made of macros (CONV_ARGS of CONV_GEOMETRY)
        for name, value in macros.items():
            text = re.sub(rf"(?<!#define )\b{name}\b", lambda _, v=value: v, text)
    return text


_MACROS = re.compile(r"^[ \t]*#define[ \t]+(\w+)\(([^)]*)\)[ \t]*(.*)$", flags=re.M)  # name, parameters, body
_DECL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([\w#]+)\s*\(([^)]*)\)')


@functools.cache
def parameters(file: str, func: str) -> tuple[str, ...]:
    """The parameter declarations of kernel `func` in `file` ("const float* __restrict__ w", "int Kout", ...). A
    name built by a macro (sgemm_wt_##NAME##_b##LAYOUT) matches with its ## tokens as wildcards; when several do,
    the one with the most literal characters wins (_b##LAYOUT over _##LAYOUT for a batched kernel). A kernel named
    by a function-like macro's first argument (FPROP(name, ...)) is found through its instantiation
    FPROP(func, ...)."""
    text = _source(file)
    found = []
    for name, params in _DECL.findall(text):
        parts = re.split(r"##\w+##|##\w+$", name)
        pattern = r"\w+".join(re.escape(p.strip("#")) for p in parts)
        if re.fullmatch(pattern, func):
            found.append((sum(len(p) for p in parts), params))
    for macro, macro_params, body in _MACROS.findall(text):
        first = macro_params.split(",")[0].strip()
        for name, params in _DECL.findall(body):
            if name == first and re.search(rf"\b{macro}\(\s*{re.escape(func)}\s*,", text):
                found.append((len(func), params))
    if not found:
        raise KeyError(f"{file} declares no kernel {func}")
    return tuple(" ".join(p.split()) for p in max(found)[1].split(","))


def kernels(file: str) -> list[str]:
    """The kernels `file` declares: by name, and through a function-like macro that names its kernel by its first
    argument (FPROP(conv_fprop_128x128, ...)); not those whose names a macro pastes together (##)."""
    text = _source(file)
    found = [name for name, _ in _DECL.findall(text) if "#" not in name]
    for macro, macro_params, body in _MACROS.findall(text):
        first = macro_params.split(",")[0].strip()
        if any(name == first for name, _ in _DECL.findall(body)):
            found = [n for n in found if n != first]
            found += re.findall(rf"^[ \t]*{macro}\(\s*(\w+)\s*,", text, flags=re.M)
    return list(dict.fromkeys(found))


@functools.cache
def signature(file: str, func: str) -> list[str]:
    """The parameter types of kernel `func` in `file`, normalised: 'ptr', 'int', 'unsigned', 'long long',
    'unsigned long long' or 'float', in order."""
    return [_c_type(file, func, p) for p in parameters(file, func)]


def _c_type(file: str, func: str, param: str) -> str:
    words = [w for w in param.replace("*", " * ").split() if w not in ("const", "__restrict__")]
    if "*" in words:
        return "ptr"
    c_type = " ".join(words[:-1])  # the type, without the parameter's name
    if c_type == "unsigned int":
        c_type = "unsigned"
    if c_type not in PACKED:
        raise ValueError(f"{file} {func}: parameter {param.strip()!r} of a type this reader does not know")
    return c_type


PACKED = {"int": np.int32, "unsigned": np.uint32, "long long": np.int64, "unsigned long long": np.uint64,
          "float": np.float32}


def fits(c_type: str, arg) -> bool:
    """Whether CuPy packs `arg` as the kernel's parameter type: a buffer or NULL (_cuda.NULL, a uint64 0) for a
    pointer, the NumPy scalar of exactly that width and signedness otherwise."""
    if c_type == "ptr":
        return isinstance(arg, FakeArray) or (isinstance(arg, np.uint64) and int(arg) == 0)
    return type(arg) is PACKED[c_type]
