"""The cuDNN Frontend machinery the graph implementations share: availability, the per-device handle, building a
graph and choosing its execution plan (cuDNN's first, or with --autotune the fastest), and the caches of built plans,
failures and report notes. impls/nvidia/cudnn_graph.py holds the graphs themselves (conv2d and gemm recipes).

Plan choice. The heuristics (modes A, then FALLBACK) list the plans. Without --autotune the first plan in that
order that builds is used (cuDNN's own choice). With harness.context.current().autotune every listed plan is built
(what build_plan_policy.ALL does, here index by index with build_plan_at_index so that each plan that builds is
known and one that does not is skipped), each is timed with CUDA events on the call's buffers (median of TUNE_REPS
after one warm-up run), and the fastest is kept; the note names it and the heuristic first for comparison.
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

MIN_FRONTEND = (1, 2)  # deselect_numeric_notes, build_plan_at_index, execute_plan_at_index
MIN_BACKEND = 90000  # cuDNN 9.0
TUNE_REPS = 5
STRICT_NOTES = ("TENSOR_CORE",)  # numerical notes whose plans the strict `cudnn` convolutions exclude

_handles: dict[int, Any] = {}  # device id -> cudnn handle
_plans: dict[tuple, Built] = {}  # (op, pass, name, shape, autotune, role) -> built plan
FAILED: dict[tuple, str] = {}  # same key -> why cuDNN built no plan (the caller falls back)
NOTES: dict[tuple, str] = {}  # same key -> what the report shows for that role
ALGORITHMS: dict[tuple, str | None] = {}  # same key -> the Winograd algorithm its plan declares (declare_algorithm)
# Numerical notes of Winograd engines, the tile ones first: a 4x4 input tile is F(2x2, 3x3), 6x6 is F(4x4, 3x3);
# the 13x13 tile and a note without a tile have no transform known to the checker (None).
WINOGRAD_NOTES = (("WINOGRAD_TILE_4x4", "winograd-f2x2-3x3"), ("WINOGRAD_TILE_6x6", "winograd-f4x4-3x3"),
                  ("WINOGRAD_TILE_13x13", None), ("WINOGRAD", None))


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


def bound_handle():
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


def _listed_plans(recipe: Callable, deselected: tuple[str, ...], handle):
    """(graph, tensors): the graph `recipe(graph, cudnn)` describes with the heuristics' plans listed (modes A,
    then FALLBACK), those with any of the numerical notes `deselected` barred from building."""
    import cudnn

    f32 = cudnn.data_type.FLOAT
    g = cudnn.pygraph(io_data_type=f32, intermediate_data_type=f32, compute_data_type=f32, handle=handle)
    tensors = recipe(g, cudnn)
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    if deselected:
        g.deselect_numeric_notes([getattr(cudnn.numerical_note, n) for n in deselected])
    return g, tensors


def build(recipe: Callable, strict: bool, handle, ptrs: dict[str, int], autotune: bool) -> Built:
    """Build the graph `recipe(graph, cudnn)` describes and choose its plan (see the module docstring)."""
    import cupy

    t0 = time.perf_counter()
    g, tensors = _listed_plans(recipe, STRICT_NOTES if strict else (), handle)
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


def _carries_note(recipe: Callable, strict: bool, b: Built, notes: tuple[str, ...]) -> bool:
    """Whether b's plan carries any of the numerical `notes`: in a second graph of the same recipe that also
    deselects them, building b's index is refused as deselected (the frontend's "Deselecting execution plan").
    The heuristics list the same plans both times (a built second plan must have b's name); another failure is
    raised (the caller reports the notes as unknown). Costs one graph and, where the plan carries none of them,
    one plan build."""
    g, _ = _listed_plans(recipe, (*(STRICT_NOTES if strict else ()), *notes), bound_handle())
    index = b.index
    if index >= g.get_execution_plan_count():
        raise NoPlan(f"the heuristics listed fewer plans the second time ({g.get_execution_plan_count()})")
    try:
        g.build_plan_at_index(index)
    except Exception as exc:
        if "deselect" in str(exc).lower():
            return True
        raise
    if g.get_plan_name_at_index(index) != b.name:  # asked once built: older frontends name built plans only
        raise NoPlan(f"the heuristics listed other plans the second time (plan {index + 1}: "
                     f"{g.get_plan_name_at_index(index)}, not {b.name})")
    return False


def declare_algorithm(key: tuple, recipe: Callable, strict: bool) -> None:
    """ALGORITHMS[key]: the Winograd algorithm of key's built plan, from its numerical notes, for the checker's
    bound (harness.measure.check.algorithm_growth): first all WINOGRAD_NOTES at once (the usual answer, no), then
    the tiles one by one; None for a direct sum, a tile without a transform known here, or notes that cannot be
    read (the report's note says which). Once per key, after the plan is built (the first call, untimed)."""
    if key in ALGORITHMS or key not in _plans:
        return
    ALGORITHMS[key] = None
    b = _plans[key]
    try:
        if not _carries_note(recipe, strict, b, tuple(n for n, _ in WINOGRAD_NOTES)):
            NOTES[key] += "; no Winograd numerical note"
            return
        for note, algorithm in WINOGRAD_NOTES:
            if note == "WINOGRAD" or _carries_note(recipe, strict, b, (note,)):
                ALGORITHMS[key] = algorithm
                NOTES[key] += f"; numerical note {note}" + (f": checked as {algorithm}" if algorithm else
                                                            ": no transform known here, checked as a direct sum")
                return
    except Exception as exc:  # reading the notes must never turn a result into an error
        NOTES[key] += f"; numerical notes unknown ({one_line(exc, 120)})"


def algorithm_for(op: str, pass_: str, name: str) -> Callable[[object], str | None]:
    """algorithm= of a registered entry: what declare_algorithm found for the shape's plans (the first declared)."""
    def algorithm(shape) -> str | None:
        prefix = (op, pass_, name, shape, current().autotune)
        return next((a for k, a in ALGORITHMS.items() if k[:-1] == prefix and a), None)
    return algorithm


def plan_key(op: str, pass_: str, name: str, shape, role: str) -> tuple:
    return (op, pass_, name, shape, current().autotune, role)


def try_plan(key: tuple, recipe: Callable, strict: bool, handle, ptrs: dict[str, int]) -> Built | None:
    """The cached plan for `key`, building it on first use; None (reason kept for the note) when cuDNN has none."""
    if key in _plans:
        return _plans[key]
    if key in FAILED:
        return None
    try:
        b = build(recipe, strict, handle, ptrs, current().autotune)
    except Exception as exc:
        FAILED[key] = one_line(exc, 240)
        return None
    _plans[key] = b
    NOTES[key] = b.describe()
    if key[0].startswith("conv2d"):
        declare_algorithm(key, recipe, strict)
    return b


def get_plan(key: tuple, recipe: Callable, strict: bool, handle, ptrs: dict[str, int]) -> Built:
    """Like try_plan, but a graph without a plan is an error (no fallback exists for it)."""
    b = try_plan(key, recipe, strict, handle, ptrs)
    if b is None:
        raise NoPlan(f"{key[-1]}: {FAILED[key]}")
    return b


def fallback_note(key: tuple, what: str) -> None:
    NOTES.setdefault(key, f"{what}, because cuDNN built no plan for the fused graph ({FAILED[key]})")


def override_note() -> str:
    overridden = os.environ.get("NVIDIA_TF32_OVERRIDE") == "0"
    return "; NVIDIA_TF32_OVERRIDE=0 is set, so no TF32 is used" if overridden else ""


def details_for(op: str, pass_: str, name: str) -> Callable[[object], dict]:
    def details(shape) -> dict:
        prefix = (op, pass_, name, shape, current().autotune)
        notes = [f"{k[-1]}: {text}" for k, text in NOTES.items() if k[:-1] == prefix]
        if name == "cudnn_tf32":
            notes = [n + override_note() for n in notes]
        return {"note": "; ".join(notes)} if notes else {}
    return details
