"""torch_cpu (PyTorch on the CPU, fp32) covers every op and pass (tests/impls/test_registered.py checks it).

Skipped, with the reason, where torch is not importable (it is an optional extra: pip install .[torch]).
"""

import pytest

from harness.registry import all_impls
from impls.peers.pytorch import available_cpu

pytestmark = pytest.mark.skipif(available_cpu() is not None, reason=f"torch_cpu: {available_cpu()}")


def test_every_op_and_pass_has_a_torch_cpu_entry():
    from harness.ops import all_ops

    expected = {(op, p) for op, spec in all_ops().items() for p in spec.passes}
    assert {(i.op, i.pass_) for i in all_impls() if i.name == "torch_cpu"} == expected
