"""The oracle check as a test helper, for this project's tests and for your own CI:

    from harness.testing import assert_matches_oracle
    def test_my_conv():
        assert_matches_oracle("conv2d", "fprop", "mine")            # the op's smoke and edge shapes

An implementation that cannot run here (no GPU, a library missing) is skipped with its reason under pytest.
"""

from __future__ import annotations

from harness.measure.check import DEFAULT_SEEDS, ReferenceCache, check
from harness.ops import get_op
from harness.registry import get
from harness.spec import shape_str

DEFAULT_SETS = ("smoke", "edge")


def shapes_of(op: str, sets=DEFAULT_SETS) -> list:
    """Every shape of the op's named sets (those it has), in order."""
    spec = get_op(op)
    return [s for name in sets for s in spec.shape_sets.get(name, [])]


def assert_matches_oracle(op: str, pass_: str, name: str, shapes=None, seeds=DEFAULT_SEEDS,
                          refs: dict | None = None) -> None:
    """Implementation `name` of (op, pass_) passes the checker (float64 oracle, NaN-poisoned outputs, tolerance
    from precision and reduction length) on every shape (default: the smoke and edge sets) and seed.

    `refs` may map shapes to ReferenceCache objects, so several implementations share one oracle result."""
    impl = get(op, pass_, name)
    reason = impl.unavailable_reason()
    if reason:
        _skip(f"{name}: {reason}")
    spec = get_op(op)
    for shape in shapes_of(op) if shapes is None else shapes:
        if impl.unsupported_reason(shape):
            continue  # a documented library limit, not a wrong result
        cache = refs.setdefault(shape, ReferenceCache(spec, shape, pass_)) if refs is not None else \
            ReferenceCache(spec, shape, pass_)
        result = check(impl, cache, seeds=seeds)
        assert result.status in ("pass", "oracle"), f"{name} {op}/{pass_} {shape_str(shape)}: {result.status}: " \
                                                    f"{result.reason}"


def _skip(reason: str) -> None:
    try:
        import pytest
    except ImportError:
        raise RuntimeError(f"cannot check here: {reason}") from None
    pytest.skip(reason)
