"""Test-wide setup: `gpu` tests skip, with the reason, where CuPy or a CUDA device is missing."""

import pytest

from harness.device import gpu_unavailable_reason


def pytest_collection_modifyitems(config, items):
    reason = gpu_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"gpu test: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
