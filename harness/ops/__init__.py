"""Op specs: one module per operation, each exposing `SPEC: OpSpec` (`_`-prefixed modules are helpers)."""

from __future__ import annotations

import importlib
import pkgutil

from harness.errors import choices_error
from harness.spec import OpSpec

_OPS: dict[str, OpSpec] = {}


def all_ops() -> dict[str, OpSpec]:
    """Every op spec in this package, by name (modules are imported once)."""
    if not _OPS:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name.startswith("_"):
                continue
            spec = importlib.import_module(f"{__name__}.{mod.name}").SPEC
            _OPS[spec.name] = spec
    return dict(sorted(_OPS.items()))


def get_op(name: str) -> OpSpec:
    ops = all_ops()
    if name not in ops:
        raise choices_error("op", name, ops)
    return ops[name]
