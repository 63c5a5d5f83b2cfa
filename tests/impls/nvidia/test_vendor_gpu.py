"""What the vendor implementations do beyond matching the oracle (tests/impls/test_registered.py checks that):
cuDNN autotuning keeps and names a plan."""

import pytest

from harness.context import run_context
from harness.measure.check import DEFAULT_SEEDS, ReferenceCache, check
from harness.ops import get_op
from harness.registry import get

_refs: dict[tuple, ReferenceCache] = {}


def _references(op: str, pass_: str, shape) -> ReferenceCache:
    """One oracle per (op, pass, shape), shared by the implementations that test it."""
    key = (op, pass_, shape)
    if key not in _refs:
        _refs[key] = ReferenceCache(get_op(op), shape, pass_)
    return _refs[key]


def _runnable(key):
    impl = get(*key)
    reason = impl.unavailable_reason()
    if reason is not None:
        pytest.skip(f"{impl.name}: {reason}")
    return impl


@pytest.mark.gpu
@pytest.mark.parametrize("key", [("conv2d", "fprop", "cudnn"), ("conv2d", "wgrad", "cudnn_tf32"),
                                 ("gemm", "fwd", "cudnn_tf32")])
def test_cudnn_autotune_names_the_plan_it_kept(key):
    impl = _runnable(key)
    shape = get_op(impl.op).shapes("thesis")[1]
    with run_context(autotune=True):
        result = check(impl, _references(impl.op, impl.pass_, shape), seeds=DEFAULT_SEEDS)
        note = impl.details(shape)["note"]
    assert result.status == "pass", f"{result.status}: {result.reason}"
    assert "autotune" in note and "built in" in note, note
