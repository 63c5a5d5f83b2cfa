"""cudnn (strict fp32) and cudnn_tf32: conv2d fprop/dgrad/wgrad and gemm fwd/bwd through the cuDNN Frontend graph API.

One graph per (op, pass, math, shape) and role (a pass may need several: gemm bwd has dx, dw and db), built on
the first call and cached with its execution plan and workspace; the build time is kept apart from the run time
and reported, with the plan's name, through `details` (a note such as "y: eng0{...} (plan 1 of 12, built in
41 ms)"). The cuDNN handle is one per device and is bound to CuPy's current stream before every call.

Plan choice, the handle and the caches: impls/nvidia/cudnn_plans.py.

Precision.
- cudnn: the FP32 convolution plans that use tensor cores (TF32) are deselected through their numerical note
  (`deselect_numeric_notes([numerical_note.TENSOR_CORE])`). cuDNN's FP32 matmul plans all use TF32 unless the
  process was started with NVIDIA_TF32_OVERRIDE=0, so the strict gemm entries are available only then; there
  cuDNN 9.19 offers one non-TF32 matmul engine, no fused bias/relu (the CuPy epilogue below runs) and, for a few
  shapes, nothing at all (`supports=` then gives cuDNN's reason).
- cudnn_tf32: nothing is deselected, cuDNN may use TF32 tensor cores. With NVIDIA_TF32_OVERRIDE=0 set it cannot,
  and the note says so.
- Winograd: a conv plan's WINOGRAD numerical notes are read once, when it is built (cudnn_plans.declare_algorithm:
  a second graph that deselects them refuses that plan), and declared as the entry's `algorithm=` (a 4x4 tile is
  F(2x2, 3x3), 6x6 is F(4x4, 3x3)), so that the checker applies that algorithm's bound; the note says what was
  found.

Fused where cuDNN fuses: conv2d fprop is conv_fprop → bias in one graph (conv2d_bias_relu's → relu too), gemm fwd
is matmul (→ bias) (→ relu).
When cuDNN builds no plan for the fused graph, the unfused node runs on cuDNN and the epilogue on CuPy (a
broadcast add, a maximum); the note says which ran and why.

Bias gradients, named in the note: the Frontend has no bias-gradient node, and cuDNN 9.19 lists no engine for a
standalone REDUCTION graph (mode ADD) over these layouts (checked on an H100: "No valid engine configs" for
dy[N,K,P,Q] → [1,K,1,1] and for dy[1,M,N] → [1,1,N]). conv2d wgrad's db is the project's two-stage kernel
(conv2d_bias_grad.cu; cupy.sum over (n, p, q) was 40 % of a thesis-4 training step at batch 256), gemm bwd's db is
cupy.sum over the rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from harness.errors import one_line
from harness.ops.conv2d import Conv2dShape
from harness.ops.gemm import GemmShape
from harness.registry import register
from impls.nvidia.cudnn_plans import (
    NOTES,
    algorithm_for,
    available,
    bound_handle,
    build,
    details_for,
    fallback_note,
    get_plan,
    plan_key,
    try_plan,
)

MODES = {"cudnn": "fp32", "cudnn_tf32": "tf32"}
_support: dict[tuple, str | None] = {}  # (pass, [name,] shape) -> why cuDNN cannot run it (None: it can)


def available_strict_matmul() -> str | None:
    """Strict FP32 cuDNN matmul: only in a process started with NVIDIA_TF32_OVERRIDE=0."""
    reason = available()
    if reason is None and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0":
        reason = ("strict FP32 cuDNN matmul needs the process started with NVIDIA_TF32_OVERRIDE=0 (otherwise every "
                  "cuDNN FP32 matmul plan uses TF32); e.g. NVIDIA_TF32_OVERRIDE=0 python -m harness run --op gemm "
                  "--impl cudnn, or use cudnn_tf32")
    return reason


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
    """Per-axis geometry. cuDNN has no groups argument: it infers them from the tensor dims (C of x or dx over the
    weights' C/groups, cuDNN Frontend issue #114), so every w and dw is [K, C/groups, R, S]."""
    return {"padding": [s.pad_h, s.pad_w], "stride": [s.stride_h, s.stride_w],
            "dilation": [s.dilation_h, s.dilation_w], "compute_data_type": c.data_type.FLOAT}


def _conv_fprop_recipe(s: Conv2dShape, bias: bool, relu: bool = False) -> Callable:
    def recipe(g, c):
        t = {"x": _tensor(g, "x", [s.N, s.C, s.H, s.W]), "w": _tensor(g, "w", [s.K, s.Cg, s.R, s.S])}
        y = g.conv_fprop(image=t["x"], weight=t["w"], name="conv", **_conv_args(s, c))
        if bias:
            t["b"] = _tensor(g, "b", [1, s.K, 1, 1])
            y = g.bias(input=y, bias=t["b"], name="bias", compute_data_type=c.data_type.FLOAT)
        if relu:
            y = g.relu(input=y, name="relu", compute_data_type=c.data_type.FLOAT)
        t["y"] = _output(y, [s.N, s.K, s.P, s.Q])
        return t
    return recipe


def _conv_dgrad_recipe(s: Conv2dShape) -> Callable:
    def recipe(g, c):
        t = {"dy": _tensor(g, "dy", [s.N, s.K, s.P, s.Q]), "w": _tensor(g, "w", [s.K, s.Cg, s.R, s.S])}
        dx = g.conv_dgrad(loss=t["dy"], filter=t["w"], name="dgrad", out_dims=[s.N, s.C, s.H, s.W],
                          **_conv_args(s, c))
        t["dx"] = _output(dx, [s.N, s.C, s.H, s.W])
        return t
    return recipe


def _conv_wgrad_recipe(s: Conv2dShape) -> Callable:
    def recipe(g, c):
        t = {"x": _tensor(g, "x", [s.N, s.C, s.H, s.W]), "dy": _tensor(g, "dy", [s.N, s.K, s.P, s.Q])}
        dw = g.conv_wgrad(image=t["x"], loss=t["dy"], name="wgrad", out_dims=[s.K, s.Cg, s.R, s.S],
                          **_conv_args(s, c))
        t["dw"] = _output(dw, [s.K, s.Cg, s.R, s.S])
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
def _conv2d_fprop(name: str, relu: bool = False):
    """conv2d fprop, or with `relu` conv2d_bias_relu's: the most fused graph cuDNN builds a plan for, of conv → bias
    (→ relu), conv → bias, conv; what the graph lacks runs on CuPy after it (a broadcast add, a maximum in place)."""
    strict, op = name == "cudnn", "conv2d_bias_relu" if relu else "conv2d"
    graphs = [("y = conv + bias + relu", True, True)] if relu else []
    graphs += [("y = conv + bias", True, False), ("y = conv", False, False)]  # (role, bias, relu) in the graph

    def conv2d_fprop(s: Conv2dShape, x, w, b, *, y):
        import cupy

        h = bound_handle()
        first = plan_key(op, "fprop", name, s, graphs[0][0])
        for role, with_bias, with_relu in graphs:
            ptrs = {"x": x.data.ptr, "w": w.data.ptr, "y": y.data.ptr} | ({"b": b.data.ptr} if with_bias else {})
            find = get_plan if role == "y = conv" else try_plan  # the plain conv always has a plan
            plan = find(plan_key(op, "fprop", name, s, role), _conv_fprop_recipe(s, with_bias, with_relu), strict,
                        h, ptrs)
            if plan is not None:
                break
        plan.run(h, ptrs)
        if role != graphs[0][0]:
            fallback_note(first, " and ".join([*(["bias added by CuPy (broadcast add)"] if not with_bias else []),
                                               *(["ReLU by CuPy (maximum)"] if relu and not with_relu else [])]))
        if not with_bias:
            y += b[None, :, None, None]
        if relu and not with_relu:
            cupy.maximum(y, 0, out=y)
    conv2d_fprop.__doc__ = f"cuDNN Frontend conv_fprop → bias{' → relu' if relu else ''}, one graph ({MODES[name]})."
    return conv2d_fprop


def _conv2d_dgrad(name: str):
    def conv2d_dgrad(s: Conv2dShape, dy, w, *, dx):
        h = bound_handle()
        ptrs = {"dy": dy.data.ptr, "w": w.data.ptr, "dx": dx.data.ptr}
        key = plan_key("conv2d", "dgrad", name, s, "dx")
        get_plan(key, _conv_dgrad_recipe(s), name == "cudnn", h, ptrs).run(h, ptrs)
    conv2d_dgrad.__doc__ = f"cuDNN Frontend conv_dgrad ({MODES[name]})."
    return conv2d_dgrad


def _bias_grad(key: tuple, dy, db, axes: tuple[int, ...]) -> None:
    """db = Σ dy over `axes` with cupy.sum (see the module docstring for why not cuDNN)."""
    NOTES.setdefault(key, f"cupy.sum over axes {axes} (no cuDNN engine for a standalone reduction)")
    dy.sum(axis=axes, out=db)


def _conv_bias_grad(key: tuple, s: Conv2dShape, dy, db) -> None:
    """db = Σ dy over (n, p, q) by the project's two-stage kernel (impls/cuda/conv2d.py: bias_grad): cuDNN has no
    engine for it, and cupy.sum over those axes took 754 µs of a 1.7 ms thesis-4 step (batch 256)."""
    from impls.cuda.conv2d import bias_grad

    NOTES.setdefault(key, "db by conv2d_bias_grad.cu (the project's; no cuDNN engine for a standalone reduction)")
    bias_grad(s, dy, db)


def _conv2d_wgrad(name: str):
    def conv2d_wgrad(s: Conv2dShape, x, dy, *, dw, db):
        h = bound_handle()
        ptrs = {"x": x.data.ptr, "dy": dy.data.ptr, "dw": dw.data.ptr}
        key = plan_key("conv2d", "wgrad", name, s, "dw")
        get_plan(key, _conv_wgrad_recipe(s), name == "cudnn", h, ptrs).run(h, ptrs)
        _conv_bias_grad(plan_key("conv2d", "wgrad", name, s, "db"), s, dy, db)
    conv2d_wgrad.__doc__ = f"cuDNN Frontend conv_wgrad; db by conv2d_bias_grad.cu ({MODES[name]})."
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

        h, recipes = bound_handle(), _gemm_recipes(s)
        ptrs = {"x": x.data.ptr, "w": w.data.ptr, "y": y.data.ptr}
        if s.bias:
            ptrs["b"] = b.data.ptr
        fused_key = plan_key("gemm", "fwd", name, s, "y = matmul" + " + bias" * s.bias + " → relu" * s.relu)
        fused = try_plan(fused_key, recipes["y fused"], False, h, ptrs)
        if fused is not None:
            fused.run(h, ptrs)
            return
        ptrs.pop("b", None)
        get_plan(plan_key("gemm", "fwd", name, s, "y = matmul"), recipes["y"], False, h, ptrs).run(h, ptrs)
        fallback_note(fused_key, "bias/relu applied by CuPy")
        if s.bias:
            y += b
        if s.relu:
            cupy.maximum(y, 0, out=y)
    gemm_fwd.__doc__ = f"cuDNN Frontend matmul (→ bias → relu fused) ({MODES[name]})."
    return gemm_fwd


def _gemm_bwd(name: str):
    def gemm_bwd(s: GemmShape, x, w, dy, *, dx, dw, db):
        h, recipes = bound_handle(), _gemm_recipes(s)
        ptrs = {"dy": dy.data.ptr, "w": w.data.ptr, "dx": dx.data.ptr}
        get_plan(plan_key("gemm", "bwd", name, s, "dx = dy·wᵀ"), recipes["dx"], False, h, ptrs).run(h, ptrs)
        ptrs = {"x": x.data.ptr, "dy": dy.data.ptr, "dw": dw.data.ptr}
        get_plan(plan_key("gemm", "bwd", name, s, "dw = xᵀ·dy"), recipes["dw"], False, h, ptrs).run(h, ptrs)
        _bias_grad(plan_key("gemm", "bwd", name, s, "db"), dy, db, (0,))
    gemm_bwd.__doc__ = f"cuDNN Frontend matmuls dy·wᵀ and xᵀ·dy; db by cupy.sum ({MODES[name]})."
    return gemm_bwd


def _probe(key: tuple, recipes: list[Callable], strict: bool, refusal: str) -> str | None:
    """Build each graph once, without autotuning, and remember the outcome under `key`: None where every one
    builds, else `refusal` with cuDNN's message. What the supports= callables below share; the plans built here are
    not reused (the call may fuse, and autotune needs the call's buffers)."""
    if key not in _support:
        try:
            for recipe in recipes:
                build(recipe, strict, bound_handle(), {}, autotune=False)
            _support[key] = None
        except Exception as exc:
            _support[key] = f"{refusal} ({one_line(exc, 240)})"
    return _support[key]


def _strict_matmul_support(pass_: str) -> Callable[[GemmShape], str | None]:
    """supports= of the strict gemm entries. Under NVIDIA_TF32_OVERRIDE=0 cuDNN 9.19 lists a single matmul engine,
    so a shape it does not take has no plan at all (a 129×257 by 257×1 product did, until _vector_strides): the
    unfused graphs the pass needs are built once here and cuDNN's refusal is the reason."""
    def supports(s: GemmShape) -> str | None:
        if available_strict_matmul() is not None:
            return None
        roles = ("y",) if pass_ == "fwd" else ("dx", "dw")
        return _probe((pass_, s), [_gemm_recipes(s)[role] for role in roles], False,
                      "cuDNN has no strict-FP32 matmul engine for this shape")
    return supports


_CONV_RECIPES = {"fprop": lambda s: _conv_fprop_recipe(s, bias=False), "dgrad": _conv_dgrad_recipe,
                 "wgrad": _conv_wgrad_recipe}


def _conv_support(pass_: str, name: str) -> Callable[[Conv2dShape], str | None]:
    """supports= of the conv entries: a layer beyond the square geometry (per-axis stride or padding, dilation,
    groups) is built once here, without autotuning, and cuDNN's refusal becomes the row's reason (a skipped row,
    not an error). Square layers always build; they are not probed."""
    def supports(s: Conv2dShape) -> str | None:
        if s.square or available() is not None:
            return None
        return _probe((pass_, name, s), [_CONV_RECIPES[pass_](s)], name == "cudnn",
                      f"cuDNN builds no {MODES[name]} plan for this geometry")
    return supports


def _register_all() -> None:
    for name, math in MODES.items():
        for pass_, make in (("fprop", _conv2d_fprop), ("dgrad", _conv2d_dgrad), ("wgrad", _conv2d_wgrad)):
            register("conv2d", pass_, name=name, device="gpu", math=math, available=available, family="vendor",
                     group="cudnn", supports=_conv_support(pass_, name),
                     details=details_for("conv2d", pass_, name),
                     algorithm=algorithm_for("conv2d", pass_, name))(make(name))
        register("conv2d_bias_relu", "fprop", name=name, device="gpu", math=math, available=available,
                 family="vendor", group="cudnn", supports=_conv_support("fprop", name),
                 details=details_for("conv2d_bias_relu", "fprop", name),
                 algorithm=algorithm_for("conv2d_bias_relu", "fprop", name))(_conv2d_fprop(name, relu=True))
        strict = name == "cudnn"
        for pass_, make in (("fwd", _gemm_fwd), ("bwd", _gemm_bwd)):
            register("gemm", pass_, name=name, device="gpu", math=math, family="vendor", group="cudnn",
                     available=available_strict_matmul if strict else available,
                     supports=_strict_matmul_support(pass_) if strict else None,
                     details=details_for("gemm", pass_, name))(make(name))


_register_all()
