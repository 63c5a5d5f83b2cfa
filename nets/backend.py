"""A training backend: which registered implementation runs each (op, pass), and how the layers call it.

`--backend NAME` asks for the implementations registered under NAME; `--use op=name` overrides one op (all its
passes). Where the chosen implementation does not exist or cannot run here, the pass falls back to the
implementations registered with a `fallback` rank on the backend's device, lowest first (GPU: cupy_opt, then
cupy_naive, e.g. where cudnn has no sgd or sigmoid_bce; CPU: numpy_opt), and finally to the oracle (numpy_ref),
which is written for any array module and any float dtype, so it also runs on CuPy arrays and in float32. The
network computes in one dtype, that of the backend's math mode (float64 for numpy_ref, float32 otherwise); an
explicit override in another precision is refused, because a float32 kernel cannot read float64 buffers.
`Backend.describe()` lists the choice for every op, fallbacks marked.

Calls follow harness.registry's contract: outputs are preallocated (by the layers, once per batch size, in the
backend's array module and dtype) and written in place; a library that returns a dict of arrays instead has
them copied into the layer's buffers, so later layers always read stable buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.device import float_dtype, xp_for
from harness.errors import UsageError
from harness.measure.execute import Call
from harness.ops import all_ops
from harness.registry import Impl, all_impls, canonical
from harness.spec import shape_str

BACKENDS = ("numpy_ref", "numpy_opt", "cupy_naive", "cupy_opt", "cudnn", "torch")
PASSES = {name: tuple(spec.passes) for name, spec in all_ops().items()}  # what each op's spec defines


@dataclass
class Choice:
    """The implementation picked for one (op, pass) and why: 'backend', 'override' or 'fallback'."""

    impl: Impl
    how: str


@dataclass
class Backend:
    """The implementations one network uses, their device, array module and dtype."""

    name: str
    device: str
    dtype: type
    family: str = "user"  # that of the implementations registered under the backend's name (registry.FAMILIES)
    choices: dict[tuple[str, str], Choice] = field(default_factory=dict)

    @property
    def xp(self):
        return xp_for(self.device)

    def call(self, op: str, pass_: str, shape, inputs: dict, outputs: dict) -> dict:
        """Run (op, pass_) on `shape`; outputs are written in place and returned."""
        call = Call(self.choices[(op, pass_)].impl, shape, inputs, outputs)
        if isinstance(call.run(), dict):  # a library that allocates: into the layer's stable buffers
            for name, value in call.returned.items():
                outputs[name][...] = value
        return outputs

    def check_shape(self, op: str, pass_: str, shape) -> None:
        """Refuse, before training starts, a shape that the chosen implementation says it cannot run."""
        impl = self.choices[(op, pass_)].impl
        reason = impl.unsupported_reason(shape)
        if reason:
            raise UsageError(f"{op}/{pass_} implementation {impl.name} cannot run {shape_str(shape)}: {reason}")

    def describe(self) -> list[str]:
        """One line per op: `conv2d: fprop=cudnn dgrad=cudnn wgrad=cudnn`, fallbacks and overrides marked."""
        lines = []
        for op in dict.fromkeys(op for op, _ in self.choices):
            parts = []
            for (o, p), c in self.choices.items():
                if o == op:
                    mark = "" if c.how == "backend" else f" ({c.how})"
                    parts.append(f"{p}={c.impl.name}{mark}")
            lines.append(f"{op}: {' '.join(parts)}")
        return lines

    def impl_names(self) -> dict[str, str]:
        """{"conv2d/fprop": "cudnn", ...}: what a results file records."""
        return {f"{op}/{p}": c.impl.name for (op, p), c in self.choices.items()}


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`["conv2d=cudnn", "gemm=cupy_opt"]` -> {"conv2d": "cudnn", ...}; malformed items and unknown ops are
    UsageErrors."""
    out: dict[str, str] = {}
    for item in items or []:
        op, sep, name = (t.strip() for t in item.partition("="))
        if not sep or not op or not name:
            raise UsageError(f"bad --use '{item}': expected OP=IMPLEMENTATION, e.g. conv2d=cudnn")
        if op not in PASSES:
            raise UsageError(f"unknown op '{op}' in --use; valid: {', '.join(sorted(PASSES))}")
        out[op] = canonical(name)
    return out


def backend_names() -> list[str]:
    """Every backend name that can be asked for: the documented ones and any other registered implementation."""
    return list(dict.fromkeys([*BACKENDS, *sorted({i.name for i in all_impls()})]))


def _registered(name: str) -> list[Impl]:
    return [i for i in all_impls() if i.name == name]


def resolve(name: str, ops: list[str], overrides: dict[str, str] | None = None) -> Backend:
    """Pick an implementation for every pass of `ops` on backend `name`, with `overrides` per op.

    UsageError when the backend is unknown or cannot run here, when an override does not exist, runs elsewhere
    or in another precision, or when no implementation of a pass can run.
    """
    overrides = overrides or {}
    unused = sorted(set(overrides) - set(ops))
    if unused:
        raise UsageError(f"--use {unused[0]}=...: this network has no {unused[0]}; its ops: {', '.join(ops)}")
    name = canonical(name)
    own = _registered(name)
    if not own:
        raise UsageError(f"unknown backend '{name}' (no implementation is registered under that name); "
                         f"valid: {', '.join(n for n in backend_names() if _registered(n))}")
    runnable = [i for i in own if i.unavailable_reason() is None]
    if not runnable:
        raise UsageError(f"backend {name} cannot run here: {own[0].unavailable_reason()}")
    device = runnable[0].device
    dtype = float_dtype(runnable[0].math)
    backend = Backend(name, device, dtype, runnable[0].family)
    for op in ops:
        for pass_ in PASSES[op]:
            backend.choices[(op, pass_)] = _choose(op, pass_, name, device, dtype, overrides.get(op))
    return backend


def _choose(op: str, pass_: str, backend: str, device: str, dtype, override: str | None) -> Choice:
    if override is not None:
        impls = [i for i in _registered(override) if i.op == op and i.pass_ == pass_]
        if not impls:
            raise UsageError(f"--use {op}={override}: no implementation '{override}' of {op}/{pass_}; valid: "
                             f"{', '.join(sorted(i.name for i in all_impls() if i.op == op and i.pass_ == pass_))}")
        problem = _unfit(impls[0], device, dtype)
        if problem:
            raise UsageError(f"--use {op}={override} cannot be used with backend {backend}: {problem}")
        return Choice(impls[0], "override")
    same = [i for i in all_impls() if i.op == op and i.pass_ == pass_]
    ranked = sorted((i for i in same if i.fallback is not None and i.device == device), key=lambda i: i.fallback)
    oracle = [i for i in same if i.family == "oracle"]  # any array module and float dtype: the last resort
    candidates = [("backend", i) for i in same if i.name == backend] + [("fallback", i) for i in (*ranked, *oracle)]
    for how, impl in candidates:
        if _unfit(impl, device, dtype) is None:
            return Choice(impl, how)
    raise UsageError(f"no implementation of {op}/{pass_} can run with backend {backend}")


def _unfit(impl: Impl, device: str, dtype) -> str | None:
    """Why `impl` cannot serve a network on `device` computing in `dtype`, or None."""
    reason = impl.unavailable_reason()
    if reason:
        return f"{impl.name} is unavailable here: {reason}"
    if impl.family == "oracle":
        return None
    if impl.device != device:
        return f"{impl.name} runs on the {impl.device}, the backend on the {device}"
    if float_dtype(impl.math) != dtype:
        return f"{impl.name} computes in {np.dtype(float_dtype(impl.math)).name}, the backend in {np.dtype(dtype).name}"
    return None
