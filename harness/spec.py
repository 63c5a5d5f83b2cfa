"""One description per op: its shape type, its passes, the tensors of each pass, FLOPs, bytes and shape sets.

Every implementation, the checker, the timers and the reports read the same `OpSpec`, so a FLOP count or a
tensor layout is written down exactly once. Bytes are derived, never written by hand: the minimal traffic of a
pass is every input read once plus every output written once (an in-place tensor counts as both).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.errors import UsageError, choices_error


@dataclass(frozen=True)
class Tensor:
    """A tensor of a pass: its shape, dtype and how the spec fills it when it is an input."""

    shape: tuple[int, ...]
    dtype: str = "float32"  # "float32" tensors follow the implementation's math mode; "int32" ones never change

    @property
    def numel(self) -> int:
        return math.prod(self.shape)  # Python ints: no int64 overflow for huge shapes

    def nbytes(self, float_bytes: int = 4) -> int:
        return self.numel * (4 if self.dtype == "int32" else float_bytes)


@dataclass(frozen=True)
class PassSpec:
    """What one pass reads and writes.

    inputs/outputs: name -> Tensor, as functions of the shape.
    flops:          exact floating-point operation count (a multiply-add is 2).
    reduction:      per output, the length of the longest sum that produces one of its elements; the checker
                    derives the tolerance from it (see harness.measure.check.tolerance).
    transcendental: the output goes through exp/log (adds a few ulps to the tolerance).
    inplace:        outputs that are also inputs of the same name (sgd's weights): the harness passes a fresh copy
                    of the input as the output buffer, not as an input, and the implementation updates it.
    make_inputs:    seeded float64 inputs (signed, never zero tensors) for one seed.
    """

    inputs: Callable[[object], dict[str, Tensor]]
    outputs: Callable[[object], dict[str, Tensor]]
    flops: Callable[[object], int]
    reduction: Callable[[object], dict[str, int]]
    make_inputs: Callable[[object, np.random.Generator], dict[str, np.ndarray]]
    transcendental: bool = False
    inplace: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpSpec:
    """An operation: its shape dataclass, its passes and its named shape sets."""

    name: str
    shape_type: type
    passes: dict[str, PassSpec]
    shape_sets: dict[str, list]
    bound: str  # "compute" or "memory": which ceiling its % of peak is taken against
    doc: str = ""
    # implementation groups (registry.Impl.group) that speedups are taken against, the first that runs here
    baselines: tuple[str, ...] = ("cudnn", "numpy_opt")

    def pass_spec(self, pass_: str) -> PassSpec:
        if pass_ not in self.passes:
            raise choices_error(f"pass of {self.name}", pass_, self.passes)
        return self.passes[pass_]

    def shapes(self, set_name: str) -> list:
        if set_name not in self.shape_sets:
            raise choices_error(f"shape set for {self.name}", set_name, self.shape_sets)
        return list(self.shape_sets[set_name])

    def bytes(self, shape, pass_: str, float_bytes: int = 4) -> int:
        """Minimal bytes moved: inputs read once, outputs written once (an in-place tensor is both)."""
        ps = self.pass_spec(pass_)
        tensors = [*ps.inputs(shape).values(), *ps.outputs(shape).values()]
        return sum(t.nbytes(float_bytes) for t in tensors)

    def flops(self, shape, pass_: str) -> int:
        return int(self.pass_spec(pass_).flops(shape))

    def make_inputs(self, shape, pass_: str, seed: int) -> dict[str, np.ndarray]:
        """Seeded inputs: float64 arrays holding float32-representable values (int32 for labels).

        Every tensor of the ops is float32, so the values are rounded to float32 here, once: the float64 oracle
        then computes on exactly the inputs a float32 implementation receives, and the checker measures only the
        implementation's own rounding (and ties, e.g. in max pooling, are the same ties for both)."""
        rng = np.random.default_rng(seed)
        arrays = self.pass_spec(pass_).make_inputs(shape, rng)
        arrays = {k: a.astype(np.float32).astype(np.float64) if a.dtype.kind == "f" else a for k, a in arrays.items()}
        declared = self.pass_spec(pass_).inputs(shape)
        assert arrays.keys() == declared.keys(), (self.name, pass_, arrays.keys(), declared.keys())
        for name, t in declared.items():
            assert arrays[name].shape == t.shape, (self.name, pass_, name, arrays[name].shape, t.shape)
        return arrays


def signed_uniform(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    """Uniform in [-scale, scale): signed, and zero with probability ~0 (never an all-zero tensor)."""
    return rng.uniform(-scale, scale, size=shape)


def shape_str(shape) -> str:
    """`N=32,C=3,H=32,...`: the form the CLI's --shape takes and the results use. A shape type may say which keys
    its strings show with a `key_values()` method (conv2d: per-axis keys only where the axes differ)."""
    items = shape.key_values() if hasattr(shape, "key_values") else {
        f.name: getattr(shape, f.name) for f in dataclasses.fields(shape)}
    return ",".join(f"{k}={_fmt(v)}" for k, v in items.items())


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _key_types(shape_type: type) -> dict[str, type]:
    """Every key the shape type's constructor takes (fields and shorthands such as conv2d's `stride`) -> its type."""
    hints = typing.get_type_hints(shape_type)
    types = {}
    for name in inspect.signature(shape_type).parameters:
        t = hints[name]
        t = t.type if isinstance(t, dataclasses.InitVar) else t
        types[name] = next((a for a in typing.get_args(t) if a is not type(None)), t)  # int | None -> int
    return types


def parse_shape(shape_type: type, text: str):
    """Parse `N=32,C=3,...` into `shape_type`; unknown keys, bad numbers and invalid shapes are UsageErrors."""
    fields = _key_types(shape_type)
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"bad --shape item '{part}': expected KEY=VALUE; keys: {', '.join(fields)}")
        if key not in fields:
            raise choices_error("shape key", key, fields)
        if key in values:
            raise UsageError(f"shape key {key} is given twice in '{text}'")
        ftype = fields[key]
        try:
            values[key] = ftype(val)
            if ftype is bool:
                if val.strip() not in ("0", "1"):
                    raise ValueError(val)
                values[key] = val.strip() == "1"
        except ValueError:
            raise UsageError(f"bad value '{val}' for shape key {key}: expected {ftype.__name__}") from None
    try:
        shape = shape_type(**values)
    except TypeError:
        params = inspect.signature(shape_type).parameters
        missing = [n for n, p in params.items() if n not in values and p.default is inspect.Parameter.empty]
        raise UsageError(f"--shape is missing {', '.join(missing)}; keys: {', '.join(fields)}") from None
    return shape


def resolve_axes(shape, **shorthands: tuple[int | None, int]) -> None:
    """Fill a shape's per-axis fields `key_h`, `key_w` from the shorthand `key` that sets both (conv2d's stride,
    pad, dilation), or from the default where neither is given. Called from a frozen shape's __post_init__ as
    resolve_axes(self, stride=(stride, 1), ...); a shorthand and a per-axis key that disagree are a UsageError."""
    for key, (both, default) in shorthands.items():
        for axis in ("h", "w"):
            name = f"{key}_{axis}"
            own = getattr(shape, name)
            if both is not None and own is not None and own != both:
                raise UsageError(f"{key}={both} and {name}={own} disagree: give one of them")
            object.__setattr__(shape, name, own if own is not None else both if both is not None else default)


def both_axes(key: str) -> property:
    """A read-only `key` for a shape with `key_h` and `key_w`: their value where they agree (square layers, the
    common case), an error naming the per-axis keys where they differ, so code written for square layers cannot
    silently use one axis's value for both."""
    def get(shape):
        h, w = getattr(shape, f"{key}_h"), getattr(shape, f"{key}_w")
        if h != w:
            raise UsageError(f"{key} differs per axis ({key}_h={h}, {key}_w={w}): read {key}_h and {key}_w")
        return h
    return property(get, doc=f"{key}_h where it equals {key}_w (else a UsageError)")


def axis_keys(shape, key: str, hide: int | None = None) -> dict[str, int]:
    """The shape-string keys of a per-axis pair: {key: v} when both axes agree (nothing when v == hide), else
    {key_h: h, key_w: w}."""
    h, w = getattr(shape, f"{key}_h"), getattr(shape, f"{key}_w")
    if h == w:
        return {} if h == hide else {key: h}
    return {f"{key}_h": h, f"{key}_w": w}


def positive(**sizes: int) -> None:
    """Raise a UsageError naming the first size that is not a positive integer."""
    for k, v in sizes.items():
        if v < 1:
            raise UsageError(f"{k} must be >= 1, got {v}")
