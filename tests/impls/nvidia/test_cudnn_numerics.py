"""The cuDNN conv entries' Winograd declaration (impls/nvidia/cudnn_plans.declare_algorithm): the numerical notes
of the plan that runs are read by deselecting them in a second graph, and become the entry's `algorithm=`.

CPU: the logic on a stand-in graph that bars plans the way the Frontend does ("Deselecting execution plan").
GPU: on cuDNN itself, the notes of a 3x3 layer's plan are read (not "unknown") and declared consistently.
"""

from __future__ import annotations

import pytest

from harness.context import run_context
from harness.measure.check import ReferenceCache, algorithm_growth, check
from harness.ops import get_op
from harness.ops.conv2d import Conv2dShape
from harness.registry import get
from impls.nvidia import cudnn_plans

SHAPE = Conv2dShape(N=2, C=8, H=6, W=6, K=8, pad=1)


class FakeGraph:
    """Plans with numerical notes; building a plan that carries a deselected note fails as the Frontend's does."""

    def __init__(self, plans: list[tuple[str, set[str]]], deselected: tuple[str, ...]):
        self.plans, self.deselected = plans, set(deselected)

    def get_execution_plan_count(self) -> int:
        return len(self.plans)

    def build_plan_at_index(self, i: int) -> None:
        if self.plans[i][1] & self.deselected:
            raise RuntimeError("[cudnn_frontend] Error: Deselecting execution plan")

    def get_plan_name_at_index(self, i: int) -> str:
        return self.plans[i][0]


def _declare(monkeypatch, plans: list[tuple[str, set[str]]], index: int, listed_again=None):
    """declare_algorithm for the built plan `index` of `plans`; the second graphs list `listed_again` (default:
    the same plans, as the heuristics do). (algorithm, note, the entry's algorithm= callable)."""
    again = plans if listed_again is None else listed_again
    monkeypatch.setattr(cudnn_plans, "_listed_plans",
                        lambda recipe, deselected, handle: (FakeGraph(again, deselected), {}))
    monkeypatch.setattr(cudnn_plans, "bound_handle", lambda: None)
    for table in ("ALGORITHMS", "NOTES", "_plans"):
        monkeypatch.setattr(cudnn_plans, table, {})
    key = cudnn_plans.plan_key("conv2d", "fprop", "cudnn", SHAPE, "y = conv")
    cudnn_plans._plans[key] = cudnn_plans.Built(None, {}, index, plans[index][0], None, len(plans), 1.0, "")
    cudnn_plans.NOTES[key] = "plan"
    cudnn_plans.declare_algorithm(key, recipe=None, strict=True)
    return cudnn_plans.ALGORITHMS[key], cudnn_plans.NOTES[key], cudnn_plans.algorithm_for("conv2d", "fprop", "cudnn")


PLANS = [("eng_tc", {"TENSOR_CORE"}), ("eng_direct", set()), ("eng_wino", {"WINOGRAD", "WINOGRAD_TILE_4x4"}),
         ("eng_wino6", {"WINOGRAD_TILE_6x6"}), ("eng_wino13", {"WINOGRAD", "WINOGRAD_TILE_13x13"}),
         ("eng_fft", {"FFT"})]


@pytest.mark.parametrize(("index", "want", "says"), [
    (1, None, "no Winograd numerical note"),
    (5, None, "no Winograd numerical note"),
    (2, "winograd-f2x2-3x3", "WINOGRAD_TILE_4x4: checked as winograd-f2x2-3x3"),
    (3, "winograd-f4x4-3x3", "WINOGRAD_TILE_6x6: checked as winograd-f4x4-3x3"),
    (4, None, "WINOGRAD_TILE_13x13: no transform known here"),
])
def test_the_plans_notes_become_its_algorithm(monkeypatch, index, want, says):
    algorithm, note, declared = _declare(monkeypatch, PLANS, index)
    assert algorithm == want and says in note, note
    with run_context(autotune=False):
        assert declared(SHAPE) == want
        assert declared(Conv2dShape(N=3, C=8, H=6, W=6, K=8, pad=1)) is None  # another shape: nothing declared


def test_a_different_second_list_is_reported_not_guessed(monkeypatch):
    plans = [("eng_a", set()), ("eng_b", set())]
    algorithm, note, _ = _declare(monkeypatch, plans, 1, listed_again=[("other", set())] * 2)
    assert algorithm is None and "numerical notes unknown" in note and "other plans" in note, note


@pytest.mark.gpu
@pytest.mark.parametrize("pass_", ["fprop", "dgrad"])
def test_cudnn_reads_the_notes_of_a_3x3_plan(pass_):
    impl = get("conv2d", pass_, "cudnn")
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    shape = Conv2dShape(N=2, C=64, H=14, W=14, K=64, pad=1)  # a ResNet-50 res4-like 3x3 layer, cheap oracle
    with run_context(autotune=False):
        result = check(impl, ReferenceCache(get_op("conv2d"), shape, pass_))
        note = impl.details(shape)["note"]
        algorithm = impl.algorithm_for(shape)
    print(note)
    assert result.status == "pass", f"{result.status}: {result.reason}"
    assert "numerical note" in note and "unknown" not in note, note
    if algorithm is not None:  # declared: named in the note, and the checker widened the bound by its growth
        assert f"checked as {algorithm}" in note and algorithm_growth(algorithm) > 1.0, note
