"""Shared by the training tests: the loss-curve tolerance between two backends (see test_backend_equivalence.py)."""

from __future__ import annotations

import pytest

from harness.measure.check import tolerance
from harness.ops import get_op
from nets.backend import PASSES


def step_tolerance(result, math_mode: str = "fp32") -> float:
    """tolerance(math_mode, L_max): L_max is the longest reduction of any pass of any layer at the training batch."""
    longest = 1
    for layer in [*result.net.layers, result.net.loss]:
        for op in layer.ops:
            shape = layer.at_batch(result.config.batch)["shape"]
            for pass_ in PASSES[op]:
                longest = max(longest, *get_op(op).pass_spec(pass_).reduction(shape).values())
    return tolerance(math_mode, longest)


@pytest.fixture
def curve_tolerance():
    """step_tolerance, as a fixture for the CPU and GPU equivalence tests."""
    return step_tolerance
