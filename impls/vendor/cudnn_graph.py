"""cudnn (strict fp32) and cudnn_tf32: conv2d fprop/dgrad/wgrad and gemm fwd/bwd through the cuDNN Frontend graph API.

One graph per (op, pass, math, shape) and role (a pass may need several: gemm bwd has dx, dw and db), built on
the first call and cached with its execution plan and workspace; the build time is kept apart from the run time
and reported, with the plan's name, through `details` (a note such as "y: eng0{...} (plan 1 of 12, built in
41 ms)"). The cuDNN handle is one per device and is bound to CuPy's current stream before every call.

Plan choice. The heuristics (modes A, then FALLBACK) list the plans. Without --autotune the first plan in that
order that builds is used (cuDNN's own choice). With harness.options.current().autotune every listed plan is built
(what build_plan_policy.ALL does, here index by index with build_plan_at_index so that each plan that builds is
known and one that does not is skipped), each is timed with CUDA events on the call's buffers (median of TUNE_REPS
after one warm-up run), and the fastest is kept; the note names it and the heuristic first for comparison.

Precision.
- cudnn: the FP32 convolution plans that use tensor cores (TF32) are deselected through their numerical note
  (`deselect_numeric_notes([numerical_note.TENSOR_CORE])`). cuDNN's FP32 matmul plans all use TF32 unless the
  process was started with NVIDIA_TF32_OVERRIDE=0, so the strict gemm entries are available only then; there
  cuDNN 9.19 offers one non-TF32 matmul engine, no fused bias/relu (the CuPy epilogue below runs) and, for a few
  shapes, nothing at all (`supports=` then gives cuDNN's reason).
- cudnn_tf32: nothing is deselected, cuDNN may use TF32 tensor cores. With NVIDIA_TF32_OVERRIDE=0 set it cannot,
  and the note says so.

Fused where cuDNN fuses: conv2d fprop is conv_fprop → bias in one graph, gemm fwd is matmul (→ bias) (→ relu).
When cuDNN builds no plan for the fused graph, the unfused node runs on cuDNN and the epilogue on CuPy (a
broadcast add, a maximum); the note says which ran and why.

Bias gradients (conv2d wgrad db, gemm bwd db) are cupy.sum (CuPy's reduction kernel), named in the note: the
Frontend has no bias-gradient node, and cuDNN 9.19 lists no engine for a standalone REDUCTION graph (mode ADD)
over these layouts (checked on an H100: "No valid engine configs" for dy[N,K,P,Q] → [1,K,1,1] and for
dy[1,M,N] → [1,1,N]).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.context import current
from harness.device import gpu_unavailable_reason
from harness.errors import one_line
from harness.measure.events import event_times_ms
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.registry import register

MIN_FRONTEND = (1, 2)  # deselect_numeric_notes, build_plan_at_index, execute_plan_at_index
MIN_BACKEND = 90000  # cuDNN 9.0
TUNE_REPS = 5
MODES = {"cudnn": "fp32", "cudnn_tf32": "tf32"}
STRICT_NOTES = ("TENSOR_CORE",)  # numerical notes whose plans the strict `cudnn` convolutions exclude

_handles: dict[int, Any] = {}  # device id -> cudnn handle
_plans: dict[tuple, Built] = {}  # (op, pass, name, shape, autotune, role) -> built plan
_failed: dict[tuple, str] = {}  # same key -> why cuDNN built no plan (the caller falls back)
_notes: dict[tuple, str] = {}  # same key -> what the report shows for that role
_support: dict[tuple, str | None] = {}  # (pass, GemmShape) -> why strict cuDNN matmul cannot run it


class NoPlan(RuntimeError):
    """cuDNN lists or builds no execution plan for a graph."""


# ---------------------------------------------------------------- availability
def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def available() -> str | None:
    """None when a CUDA device and a recent enough cuDNN Frontend and cuDNN are present; otherwise why not."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        return reason
    try:
        import cudnn
    except Exception as exc:  # ImportError, or libcudnn failing to load
        return f"cudnn frontend not installed ({type(exc).__name__}: {exc}); pip install nvidia-cudnn-frontend"
    version = getattr(cudnn, "__version__", "0")
    if _version_tuple(version) < MIN_FRONTEND:
        return f"cudnn frontend {version} is too old (need >= {'.'.join(map(str, MIN_FRONTEND))})"
    backend = int(cudnn.backend_version())
    if backend < MIN_BACKEND:
        return f"cuDNN {backend} is too old for the frontend graph API here (need >= 9.0)"
    return None


def available_strict_matmul() -> str | None:
    """Strict FP32 cuDNN matmul: only in a process started with NVIDIA_TF32_OVERRIDE=0."""
    reason = available()
    if reason is None and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0":
        reason = ("strict FP32 cuDNN matmul needs the process started with NVIDIA_TF32_OVERRIDE=0 (otherwise every "
                  "cuDNN FP32 matmul plan uses TF32); e.g. NVIDIA_TF32_OVERRIDE=0 python -m harness run --op gemm "
                  "--impl cudnn, or use cudnn_tf32")
    return reason


# ---------------------------------------------------------------- plans
@dataclass
class Built:
    """A graph with its chosen, built execution plan and that plan's workspace."""

    graph: Any
    tensors: dict[str, Any]  # our tensor name -> the graph's tensor
    index: int
    name: str
    workspace: Any  # CuPy uint8 array, or None when the plan needs none
    listed: int
    build_ms: float
    tuning: str

    def run(self, handle, ptrs: dict[str, int]) -> None:
        ws = self.workspace.data.ptr if self.workspace is not None else None
        self.graph.execute_plan_at_index({self.tensors[k]: p for k, p in ptrs.items()}, ws, self.index,
                                         handle=handle)

    def describe(self) -> str:
        return f"{self.name} (plan {self.index + 1} of {self.listed}, built in {self.build_ms:.0f} ms{self.tuning})"


def _handle():
    """This device's cuDNN handle, bound to CuPy's current stream."""
    import cudnn
    import cupy

    dev = cupy.cuda.Device().id
    if dev not in _handles:
        _handles[dev] = cudnn.create_handle()
    cudnn.set_stream(_handles[dev], cupy.cuda.get_current_stream().ptr)
    return _handles[dev]


def _time_plan(b: Built, handle, ptrs: dict[str, int]) -> float:
    """Median milliseconds of one execution of plan b.index (CUDA events on the current stream)."""
    return statistics.median(event_times_ms(lambda: b.run(handle, ptrs), TUNE_REPS))


def _build(recipe: Callable, strict: bool, handle, ptrs: dict[str, int], autotune: bool) -> Built:
    """Build the graph `recipe(graph, cudnn)` describes and choose its plan (see the module docstring)."""
    import cudnn
    import cupy

    t0 = time.perf_counter()
    f32 = cudnn.data_type.FLOAT
    g = cudnn.pygraph(io_data_type=f32, intermediate_data_type=f32, compute_data_type=f32, handle=handle)
    tensors = recipe(g, cudnn)
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    if strict:
        g.deselect_numeric_notes([getattr(cudnn.numerical_note, n) for n in STRICT_NOTES])
    listed = g.get_execution_plan_count()
    built, first_error = [], None
    for i in range(listed):
        try:
            g.build_plan_at_index(i)
        except Exception as exc:  # deselected, or this engine does not take this graph
            first_error = first_error or exc
            continue
        built.append(i)
        if not autotune:
            break
    if not built:
        why = one_line(first_error, 240) if first_error else "the heuristics listed none"
        raise NoPlan(f"no cuDNN plan builds ({listed} listed{', tensor-core plans deselected' if strict else ''}): "
                     f"{why}")
    build_ms = (time.perf_counter() - t0) * 1e3
    sizes = {i: int(g.get_workspace_size_plan_at_index(i)) for i in built}
    b = Built(g, tensors, built[0], "", None, listed, build_ms, "")
    if autotune and len(built) == 1:
        b.tuning = "; autotune: the only plan that builds"
    if len(built) > 1:
        t1 = time.perf_counter()
        b.workspace = cupy.empty(max(sizes.values()), dtype=cupy.uint8) if max(sizes.values()) else None
        times = {}
        for i in built:
            b.index = i
            try:
                times[i] = _time_plan(b, handle, ptrs)
            except Exception:  # built but does not execute on these buffers: not a candidate
                continue
        if not times:
            raise NoPlan(f"none of the {len(built)} built cuDNN plans executes")
        b.index = min(times, key=times.get)
        first = min(times)
        b.tuning = (f"; autotuned: fastest of {len(times)} that ran, {times[b.index]:.4f} ms vs heuristic first "
                    f"{g.get_plan_name_at_index(first)} {times[first]:.4f} ms, tuned in "
                    f"{(time.perf_counter() - t1) * 1e3:.0f} ms")
    b.workspace = cupy.empty(sizes[b.index], dtype=cupy.uint8) if sizes[b.index] else None
    b.name = g.get_plan_name_at_index(b.index)
    return b


def _key(op: str, pass_: str, name: str, shape, role: str) -> tuple:
    return (op, pass_, name, shape, current().autotune, role)


def _try_plan(key: tuple, recipe: Callable, strict: bool, handle, ptrs: dict[str, int]) -> Built | None:
    """The cached plan for `key`, building it on first use; None (reason kept for the note) when cuDNN has none."""
    if key in _plans:
        return _plans[key]
    if key in _failed:
        return None
    try:
        b = _build(recipe, strict, handle, ptrs, current().autotune)
    except Exception as exc:
        _failed[key] = one_line(exc, 240)
        return None
    _plans[key] = b
    _notes[key] = b.describe()
    return b


def _plan(key: tuple, recipe: Callable, strict: bool, handle, ptrs: dict[str, int]) -> Built:
    """Like _try_plan, but a graph without a plan is an error (no fallback exists for it)."""
    b = _try_plan(key, recipe, strict, handle, ptrs)
    if b is None:
        raise NoPlan(f"{key[-1]}: {_failed[key]}")
    return b


def _fallback_note(key: tuple, what: str) -> None:
    _notes.setdefault(key, f"{what}, because cuDNN built no plan for the fused graph ({_failed[key]})")


def _override_note() -> str:
    overridden = os.environ.get("NVIDIA_TF32_OVERRIDE") == "0"
    return "; NVIDIA_TF32_OVERRIDE=0 is set, so no TF32 is used" if overridden else ""


def _details(op: str, pass_: str, name: str) -> Callable[[object], dict]:
    def details(shape) -> dict:
        prefix = (op, pass_, name, shape, current().autotune)
        notes = [f"{k[-1]}: {text}" for k, text in _notes.items() if k[:-1] == prefix]
        if name == "cudnn_tf32":
            notes = [n + _override_note() for n in notes]
        return {"note": "; ".join(notes)} if notes else {}
    return details


# ---------------------------------------------------------------- graph recipes
def _packed(*dims: int) -> list[int]:
    """Row-major (packed NCHW / [B, M, N]) strides of dims."""
    strides, acc = [], 1
    for d in reversed(dims):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def _tensor(g, name: str, dims: list[int], strides: list[int] | None = None):
    import cudnn

    return g.tensor(name=name, dim=dims, stride=strides or _packed(*dims), data_type=cudnn.data_type.FLOAT)


def _output(t, dims: list[int], strides: list[int] | None = None):
    import cudnn

    t.set_output(True).set_data_type(cudnn.data_type.FLOAT).set_dim(dims).set_stride(strides or _packed(*dims))
    return t


def _conv_args(s: Conv2dShape, c) -> dict:
    return {"padding": [s.pad, s.pad], "stride": [s.stride, s.stride], "dilation": [1, 1],
            "compute_data_type": c.data_type.FLOAT}


def _conv_fprop_recipe(s: Conv2dShape, bias: bool) -> Callable:
    def recipe(g, c):
        t = {"x": _tensor(g, "x", [s.N, s.C, s.H, s.W]), "w": _tensor(g, "w", [s.K, s.C, s.R, s.S])}
        y = g.conv_fprop(image=t["x"], weight=t["w"], name="conv", **_conv_args(s, c))
        if bias:
            t["b"] = _tensor(g, "b", [1, s.K, 1, 1])
            y = g.bias(input=y, bias=t["b"], name="bias", compute_data_type=c.data_type.FLOAT)
        t["y"] = _output(y, [s.N, s.K, s.P, s.Q])
        return t
    return recipe


def _conv_dgrad_recipe(s: Conv2dShape) -> Callable:
    def recipe(g, c):
        t = {"dy": _tensor(g, "dy", [s.N, s.K, s.P, s.Q]), "w": _tensor(g, "w", [s.K, s.C, s.R, s.S])}
        dx = g.conv_dgrad(loss=t["dy"], filter=t["w"], name="dgrad", out_dims=[s.N, s.C, s.H, s.W],
                          **_conv_args(s, c))
        t["dx"] = _output(dx, [s.N, s.C, s.H, s.W])
        return t
    return recipe


def _conv_wgrad_recipe(s: Conv2dShape) -> Callable:
    def recipe(g, c):
        t = {"x": _tensor(g, "x", [s.N, s.C, s.H, s.W]), "dy": _tensor(g, "dy", [s.N, s.K, s.P, s.Q])}
        dw = g.conv_wgrad(image=t["x"], loss=t["dy"], name="wgrad", out_dims=[s.K, s.C, s.R, s.S],
                          **_conv_args(s, c))
        t["dw"] = _output(dw, [s.K, s.C, s.R, s.S])
        return t
    return recipe


def _vector_strides(dims: list[int], strides: list[int]) -> list[int]:
    """[B, r, c] strides with a size-1 matrix dim given the other dim's extent as its stride.

    Any stride is valid for a dim of size 1, but cuDNN's strict-FP32 matmul engines (NVIDIA_TF32_OVERRIDE=0,
    cuDNN 9.19) list no engine when a vector's size-1 dim has stride 1 like its neighbour ([1, 129, 1] as
    [129, 1, 1]); written as a proper column ([129, 1, 129]) or row ([c, c, 1]) vector they do. Same memory.
    """
    _, r, c = dims
    sb, sr, sc = strides
    if r == 1 and sc == 1:
        sr = c
    if c == 1 and sr == 1:
        sc = r
    return [sb, sr, sc]


def _matmul_recipe(a: tuple[str, list[int], list[int]], b: tuple[str, list[int], list[int]], out: str,
                   bias: bool = False, relu: bool = False) -> Callable:
    """out[1, m, n] = a[1, m, k] · b[1, k, n] (→ + bias[1, 1, n]) (→ relu); a and b as (name, dims, strides)."""
    def recipe(g, c):
        f32 = c.data_type.FLOAT
        t = {name: _tensor(g, name, dims, _vector_strides(dims, strides)) for name, dims, strides in (a, b)}
        m, n = a[1][1], b[1][2]
        y = g.matmul(A=t[a[0]], B=t[b[0]], name="matmul", compute_data_type=f32)
        if bias:
            t["b"] = _tensor(g, "b", [1, 1, n])
            y = g.bias(input=y, bias=t["b"], name="bias", compute_data_type=f32)
        if relu:
            y = g.relu(input=y, name="relu", compute_data_type=f32)
        t[out] = _output(y, [1, m, n], _vector_strides([1, m, n], _packed(1, m, n)))
        return t
    return recipe


# ---------------------------------------------------------------- conv2d
def _conv2d_fprop(name: str):
    strict = name == "cudnn"

    def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
        h = _handle()
        ptrs = {"x": x.data.ptr, "w": w.data.ptr, "b": b.data.ptr, "y": y.data.ptr}
        fused_key = _key("conv2d", "fprop", name, s, "y = conv + bias")
        fused = _try_plan(fused_key, _conv_fprop_recipe(s, bias=True), strict, h, ptrs)
        if fused is not None:
            fused.run(h, ptrs)
            return
        del ptrs["b"]
        _plan(_key("conv2d", "fprop", name, s, "y = conv"), _conv_fprop_recipe(s, bias=False), strict, h,
              ptrs).run(h, ptrs)
        _fallback_note(fused_key, "bias added by CuPy (broadcast add)")
        y += b[None, :, None, None]
    conv2d_fprop.__doc__ = f"cuDNN Frontend conv_fprop → bias, one graph ({MODES[name]})."
    return conv2d_fprop


def _conv2d_dgrad(name: str):
    def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
        h = _handle()
        ptrs = {"dy": dy.data.ptr, "w": w.data.ptr, "dx": dx.data.ptr}
        _plan(_key("conv2d", "dgrad", name, s, "dx"), _conv_dgrad_recipe(s), name == "cudnn", h, ptrs).run(h, ptrs)
    conv2d_dgrad.__doc__ = f"cuDNN Frontend conv_dgrad ({MODES[name]})."
    return conv2d_dgrad


def _bias_grad(key: tuple, dy, db, axes: tuple[int, ...]) -> None:
    """db = Σ dy over `axes` with cupy.sum (see the module docstring for why not cuDNN)."""
    _notes.setdefault(key, f"cupy.sum over axes {axes} (no cuDNN engine for a standalone reduction)")
    dy.sum(axis=axes, out=db)


def _conv2d_wgrad(name: str):
    def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
        h = _handle()
        ptrs = {"x": x.data.ptr, "dy": dy.data.ptr, "dw": dw.data.ptr}
        _plan(_key("conv2d", "wgrad", name, s, "dw"), _conv_wgrad_recipe(s), name == "cudnn", h, ptrs).run(h, ptrs)
        _bias_grad(_key("conv2d", "wgrad", name, s, "db"), dy, db, (0, 2, 3))
    conv2d_wgrad.__doc__ = f"cuDNN Frontend conv_wgrad; db by cupy.sum ({MODES[name]})."
    return conv2d_wgrad


# ---------------------------------------------------------------- gemm
def _gemm_recipes(s: GemmShape) -> dict[str, Callable]:
    """The unfused graphs of a dense layer: y = x·w, dx = dy·wᵀ, dw = xᵀ·dy (row-major operands as [1, r, c])."""
    m, n, k = s.M, s.N, s.K
    x, w = ("x", [1, m, k], _packed(1, m, k)), ("w", [1, k, n], _packed(1, k, n))
    dy = ("dy", [1, m, n], _packed(1, m, n))
    w_t = ("w", [1, n, k], [k * n, 1, n])  # Wᵀ: W is K×N row-major
    x_t = ("x", [1, k, m], [m * k, 1, k])  # Xᵀ: X is M×K row-major
    return {"y": _matmul_recipe(x, w, "y"), "y fused": _matmul_recipe(x, w, "y", s.bias, s.relu),
            "dx": _matmul_recipe(dy, w_t, "dx"), "dw": _matmul_recipe(x_t, dy, "dw")}


def _gemm_fwd(name: str):
    def gemm_fwd(s: GemmShape, x, w, b=None, *, y):
        import cupy

        h, recipes = _handle(), _gemm_recipes(s)
        ptrs = {"x": x.data.ptr, "w": w.data.ptr, "y": y.data.ptr}
        if s.bias:
            ptrs["b"] = b.data.ptr
        fused_key = _key("gemm", "fwd", name, s, "y = matmul" + " + bias" * s.bias + " → relu" * s.relu)
        fused = _try_plan(fused_key, recipes["y fused"], False, h, ptrs)
        if fused is not None:
            fused.run(h, ptrs)
            return
        ptrs.pop("b", None)
        _plan(_key("gemm", "fwd", name, s, "y = matmul"), recipes["y"], False, h, ptrs).run(h, ptrs)
        _fallback_note(fused_key, "bias/relu applied by CuPy")
        if s.bias:
            y += b
        if s.relu:
            cupy.maximum(y, 0, out=y)
    gemm_fwd.__doc__ = f"cuDNN Frontend matmul (→ bias → relu fused) ({MODES[name]})."
    return gemm_fwd


def _gemm_bwd(name: str):
    def gemm_bwd(s: GemmShape, x, w, dy, *, dx, dw, db):
        h, recipes = _handle(), _gemm_recipes(s)
        ptrs = {"dy": dy.data.ptr, "w": w.data.ptr, "dx": dx.data.ptr}
        _plan(_key("gemm", "bwd", name, s, "dx = dy·wᵀ"), recipes["dx"], False, h, ptrs).run(h, ptrs)
        ptrs = {"x": x.data.ptr, "dy": dy.data.ptr, "dw": dw.data.ptr}
        _plan(_key("gemm", "bwd", name, s, "dw = xᵀ·dy"), recipes["dw"], False, h, ptrs).run(h, ptrs)
        _bias_grad(_key("gemm", "bwd", name, s, "db"), dy, db, (0,))
    gemm_bwd.__doc__ = f"cuDNN Frontend matmuls dy·wᵀ and xᵀ·dy; db by cupy.sum ({MODES[name]})."
    return gemm_bwd


def _strict_matmul_support(pass_: str) -> Callable[[GemmShape], str | None]:
    """supports= of the strict gemm entries. Under NVIDIA_TF32_OVERRIDE=0 cuDNN 9.19 lists a single matmul engine,
    so a shape it does not take has no plan at all (a 129×257 by 257×1 product did, until _vector_strides): the
    unfused graphs the pass needs are built once here and cuDNN's refusal is the reason. Plans built here are not
    reused (the call may fuse, and autotune needs the call's buffers)."""
    def supports(s: GemmShape) -> str | None:
        if available_strict_matmul() is not None:
            return None
        key = (pass_, s)
        if key not in _support:
            roles = ("y",) if pass_ == "fwd" else ("dx", "dw")
            try:
                for role in roles:
                    _build(_gemm_recipes(s)[role], False, _handle(), {}, autotune=False)
                _support[key] = None
            except Exception as exc:
                _support[key] = f"cuDNN has no strict-FP32 matmul engine for this shape ({one_line(exc, 240)})"
        return _support[key]
    return supports


def _register_all() -> None:
    for name, math in MODES.items():
        for pass_, make in (("fprop", _conv2d_fprop), ("dgrad", _conv2d_dgrad), ("wgrad", _conv2d_wgrad)):
            register("conv2d", pass_, name=name, device="gpu", math=math, available=available,
                     details=_details("conv2d", pass_, name))(make(name))
        strict = name == "cudnn"
        for pass_, make in (("fwd", _gemm_fwd), ("bwd", _gemm_bwd)):
            register("gemm", pass_, name=name, device="gpu", math=math,
                     available=available_strict_matmul if strict else available,
                     supports=_strict_matmul_support(pass_) if strict else None,
                     details=_details("gemm", pass_, name))(make(name))


_register_all()
