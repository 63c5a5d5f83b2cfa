"""torch_cpu (PyTorch on the CPU, fp32) against the float64 oracle on the smoke, thesis and edge shape sets.

Skipped, with the reason, where torch is not importable (it is an optional extra: pip install .[torch]).
"""

import pytest

from harness.measure.check import DEFAULT_SEEDS, ReferenceCache, check
from harness.ops import get_op
from harness.registry import all_impls
from harness.spec import shape_str
from impls.peers.pytorch import available_cpu

SETS = ("smoke", "thesis", "edge")
pytestmark = pytest.mark.skipif(available_cpu() is not None, reason=f"torch_cpu: {available_cpu()}")


def _cases():
    for impl in all_impls():
        if impl.name != "torch_cpu":
            continue
        spec = get_op(impl.op)
        for set_name in SETS:
            for shape in spec.shape_sets.get(set_name, []):
                yield pytest.param(impl, shape, id=f"{impl.op}-{impl.pass_}-{set_name}-{shape_str(shape)}")


@pytest.mark.parametrize(("impl", "shape"), list(_cases()))
def test_torch_cpu_matches_oracle(impl, shape):
    result = check(impl, ReferenceCache(get_op(impl.op), shape, impl.pass_), seeds=DEFAULT_SEEDS)
    assert result.status == "pass", f"{result.status}: {result.reason}"


def test_every_op_and_pass_has_a_torch_cpu_entry():
    from harness.ops import all_ops

    expected = {(op, p) for op, spec in all_ops().items() for p in spec.passes}
    assert {(i.op, i.pass_) for i in all_impls() if i.name == "torch_cpu"} == expected
