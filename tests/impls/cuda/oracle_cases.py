"""The check every GPU implementation file runs (imported by this unique name): every pass of an op on every shape
of the smoke, thesis and edge sets, against the float64 oracle on three seeds with NaN-poisoned outputs."""

import pytest

from harness.measure.check import ReferenceCache, check
from harness.ops import get_op
from harness.registry import get

SETS = ("smoke", "thesis", "edge")
SEEDS = (0, 1, 2)


def spec_cases(*ops: str) -> list:
    """pytest params (op, pass_, shape) for each op's passes and the shapes of SETS, with readable ids."""
    return [pytest.param(op, p, shape, id=f"{op}-{p}-{name}-{shape}") for op in ops for p in get_op(op).passes
            for name in SETS for shape in get_op(op).shapes(name)]


def assert_matches_oracle(op: str, pass_: str, shape, impls) -> None:
    """Every implementation named in `impls` passes the checker on SEEDS (one oracle result serves them all)."""
    refs = ReferenceCache(get_op(op), shape, pass_)
    for impl in impls:
        result = check(get(op, pass_, impl), refs, seeds=SEEDS)
        assert result.status == "pass", f"{impl}: {result.reason}"
