"""Every registered implementation of every op and pass against the float64 oracle, so that a new implementation is
tested by being registered: CPU implementations on the smoke and edge sets (here and in CI), GPU ones on the smoke,
thesis and edge sets (marked gpu). One oracle result per (op, pass, shape) serves every implementation; the
checker's seeds and tolerances are harness.testing's. An implementation that cannot run here is skipped with why.
"""

from __future__ import annotations

import pytest

from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import all_impls
from harness.spec import shape_str
from harness.testing import assert_matches_oracle

SETS = {"cpu": ("smoke", "edge"), "gpu": ("smoke", "thesis", "edge")}
_refs: dict = {}  # (op, pass) -> {shape: ReferenceCache}

# Measured on the H100 (cuDNN 9.19, PyTorch 2.11) and again on the H200 (2026-12-02): failures whose cause lies
# outside the implementation, each with that cause. Not strict: another cuDNN version may choose another engine.
_WGRAD_ENGINE = ("cuDNN's first FP32 wgrad engine for this shape (eng17, no numerical note; PyTorch's heuristics "
                 "pick the same one) has its worst element at 1.04-1.09x the checker's FP32 bound while its norm-wise "
                 "error (~u·sqrt(L)) is well inside; every other non-tensor-core engine stays under 0.12x")
KNOWN = {(impl, "conv2d", "wgrad", Conv2dShape(32, 32, hw, hw, 32)): _WGRAD_ENGINE
         for impl in ("cudnn", "torch") for hw in (10, 12, 25)}


def _cases(device: str):
    for impl in all_impls():
        if impl.family == "oracle" or impl.device != device:
            continue
        for set_name in SETS[device]:
            for shape in get_op(impl.op).shape_sets.get(set_name, []):
                known = KNOWN.get((impl.name, impl.op, impl.pass_, shape))
                marks = [pytest.mark.xfail(reason=known, strict=False)] if known else []
                yield pytest.param(impl.op, impl.pass_, impl.name, shape, marks=marks,
                                   id=f"{impl.name}-{impl.op}-{impl.pass_}-{set_name}-{shape_str(shape)}")


def _check(op: str, pass_: str, name: str, shape) -> None:
    assert_matches_oracle(op, pass_, name, [shape], refs=_refs.setdefault((op, pass_), {}))


@pytest.mark.parametrize(("op", "pass_", "name", "shape"), list(_cases("cpu")))
def test_every_cpu_implementation_matches_the_oracle(op, pass_, name, shape):
    _check(op, pass_, name, shape)


@pytest.mark.gpu
@pytest.mark.parametrize(("op", "pass_", "name", "shape"), list(_cases("gpu")))
def test_every_gpu_implementation_matches_the_oracle(op, pass_, name, shape):
    _check(op, pass_, name, shape)
