"""The registry: every implementation of every (op, pass) registers itself with one decorator.

    @register("conv2d", "fprop", name="numpy_ref", device="cpu", math="fp64", family="oracle")
    def conv2d_fprop(s: Conv2dShape, x, w, b, *, y): ...

An implementation receives the shape object, its input tensors by name and its output tensors by keyword. The
harness allocates the outputs and fills them with NaN before the call, so an output element the implementation
forgets to write stays NaN and is caught. The implementation writes into the outputs in place and returns None;
a library that can only allocate may instead return a dict of arrays, which the checker then validates for shape
and dtype. Inputs and outputs live on the implementation's device (NumPy arrays for "cpu", CuPy arrays for
"gpu") and have the dtype of its math mode (float64 for fp64, float32 otherwise; labels are int32).

`discover()` imports every module of the `impls` package and its sub-packages (reference/, cuda/, nvidia/, peers/),
so adding an implementation means adding a file (or a decorated function) there and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import choices_error, one_line

DEVICES = ("cpu", "gpu")
MATH_MODES = ("fp64", "fp32", "tf32")
# What an implementation is to the harness. The oracle is what every other is checked against; "own" are this
# project's kernels, "vendor" the libraries they are compared with, "peer" other frameworks; a plugin is "user"
# unless it says otherwise.
FAMILIES = ("oracle", "own", "vendor", "peer", "user")


def always_available() -> str | None:
    return None


@dataclass(frozen=True)
class Impl:
    """One registered implementation of one pass of one op."""

    op: str
    pass_: str
    name: str
    fn: Callable
    device: str
    math: str
    available: Callable[[], str | None] = always_available
    supports: Callable[[object], str | None] | None = None
    details: Callable[[object], dict] | None = field(default=None, compare=False)
    doc: str = ""
    family: str = "user"
    group: str = ""  # implementations of one library in several math modes share it (cudnn, cudnn_tf32: "cudnn")
    fallback: int | None = None  # training: where a backend lacks an op, lower numbers are used first
    # The numerical algorithm, when it is not a direct sum (the checker's bound depends on it): a string such as
    # "winograd-f2x2-3x3", or a callable(shape) returning one (or None), read after the call ran.
    algorithm: str | Callable[[object], str | None] | None = field(default=None, compare=False)

    def __post_init__(self):
        if not self.group:
            object.__setattr__(self, "group", self.name)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.op, self.pass_, self.name)

    def unavailable_reason(self) -> str | None:
        """Why this implementation cannot run on this machine, or None when it can."""
        try:
            return self.available()
        except Exception as exc:  # an availability probe must never crash a run
            return f"availability check failed: {exc}"

    def algorithm_for(self, shape) -> str | None:
        """The algorithm this implementation used for `shape` (None: a direct sum)."""
        return self.algorithm(shape) if callable(self.algorithm) else self.algorithm

    def unsupported_reason(self, shape) -> str | None:
        """Why this implementation cannot run this shape (e.g. a library limit), or None."""
        return self.supports(shape) if self.supports else None


_REGISTRY: dict[tuple[str, str, str], Impl] = {}

# Old implementation names, accepted (with a note) for one release so that commands in notes and scripts still run.
RENAMED = {"cupy_tiled": "cupy_opt", "numpy_im2col": "numpy_opt"}
_noted: set[str] = set()


def canonical(name: str) -> str:
    """The current name of implementation `name`; an old name is mapped, with a note on stderr the first time."""
    new = RENAMED.get(name)
    if new is None:
        return name
    if name not in _noted:
        _noted.add(name)
        print(f"note: implementation '{name}' is now '{new}'; the old name works until the next release",
              file=sys.stderr)
    return new


def register(
    op: str,
    pass_: str,
    *,
    name: str,
    device: str,
    math: str,
    available: Callable[[], str | None] = always_available,
    supports: Callable[[object], str | None] | None = None,
    details: Callable[[object], dict] | None = None,
    family: str = "user",
    group: str = "",
    fallback: int | None = None,
    algorithm: str | Callable[[object], str | None] | None = None,
):
    """Decorator that adds `fn` as implementation `name` of (op, pass_).

    available: returns a reason string when the implementation cannot run here ("no CUDA device").
    supports:  returns a reason string when it cannot run a given shape.
    details:   details(shape) returns what the report should know about the call for that shape, after it ran:
               {"kernels": {name: {"regs": .., "smem": .., "spill": ..}}, "note": "plan 3 of 12, built in 41 ms"};
               both keys optional.
    family:    "oracle", "own", "vendor", "peer" or "user" (FAMILIES); the one "oracle" of each (op, pass) is what
               every implementation is checked against.
    group:     the name shared by one library's implementations in several math modes (default: `name`): a
               baseline is a group, and a TF32 row is compared with the TF32 member of the baseline's group.
    fallback:  for training backends that lack this op: the lowest number on the backend's device is used.
    algorithm: what the implementation computes when it is not a direct sum ("winograd-f2x2-3x3"), or
               algorithm(shape) after the call ran; the checker widens the bound by the algorithm's growth factor
               (harness.measure.check.algorithm_growth).
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if math not in MATH_MODES:
        raise ValueError(f"math must be one of {MATH_MODES}, not {math!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")

    def wrap(fn: Callable) -> Callable:
        key = (op, pass_, name)
        if key in _REGISTRY and _REGISTRY[key].fn is not fn:
            raise ValueError(f"implementation {key} registered twice")
        _REGISTRY[key] = Impl(op, pass_, name, fn, device, math, available, supports, details,
                              (fn.__doc__ or "").strip().split("\n")[0], family, group, fallback, algorithm)
        return fn

    return wrap


def unregister(op: str, pass_: str, name: str) -> None:
    """Remove implementation `name` of (op, pass_), if registered (for throw-away implementations, e.g. in tests)."""
    _REGISTRY.pop((op, pass_, name), None)


_discovered = False
BROKEN: dict[str, str] = {}  # module name (impls.cuda.gemm) -> why it failed to import (shown by `harness list`)


def discover() -> None:
    """Import every module under the `impls` package so that their decorators run.

    A module that fails to import is recorded in BROKEN with its error instead of stopping the harness:
    one broken implementation file must not take the others down.
    """
    global _discovered
    if _discovered:
        return
    import impls

    for mod in pkgutil.walk_packages(impls.__path__, "impls.", onerror=_broken):
        if not mod.ispkg:
            try:
                importlib.import_module(mod.name)
            except Exception as exc:
                _broken(mod.name, exc)
    _discovered = True


def _broken(module: str, exc: BaseException | None = None) -> None:
    BROKEN[module] = one_line(exc) if exc else "could not be imported"


def all_impls() -> list[Impl]:
    discover()
    return sorted(_REGISTRY.values(), key=lambda i: i.key)


def impls_for(op: str, pass_: str | None = None) -> list[Impl]:
    """The implementations of `op` (and of `pass_`, when given)."""
    return [i for i in all_impls() if i.op == op and (pass_ is None or i.pass_ == pass_)]


def get(op: str, pass_: str, name: str) -> Impl:
    discover()
    name = canonical(name)
    try:
        return _REGISTRY[(op, pass_, name)]
    except KeyError:
        raise choices_error(f"implementation of {op}/{pass_}", name,
                            {i.name for i in all_impls() if i.op == op and i.pass_ == pass_}) from None


def oracle(op: str, pass_: str) -> Impl:
    """The implementation of family "oracle" for (op, pass_): what every other is checked against."""
    found = [i for i in all_impls() if i.op == op and i.pass_ == pass_ and i.family == "oracle"]
    if len(found) != 1:
        raise LookupError(f"{op}/{pass_} needs exactly one oracle implementation, has {[i.name for i in found]}")
    return found[0]
