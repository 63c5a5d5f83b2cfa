"""The loss-curve comparison that the training equivalence tests share."""

from __future__ import annotations

import numpy as np


def assert_same_curve(ref, other, step_tolerance, test_size: int, flips: int = 2) -> None:
    """`other`'s per-epoch mean losses lie within S·step_tolerance(ref) (relative) of `ref`'s after S steps, and at
    most `flips` of the `test_size` test images change class per epoch (see test_backend_equivalence.py)."""
    a = np.array([h["loss"] for h in ref.history])
    b = np.array([h["loss"] for h in other.history])
    bound = np.array([h["steps"] for h in ref.history]) * step_tolerance(ref)
    assert np.all(np.abs(b - a) / a <= bound), (a, b, bound)
    for x, y in zip(ref.history, other.history, strict=True):
        assert abs(x["test_acc"] - y["test_acc"]) * test_size <= flips
