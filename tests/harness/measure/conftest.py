"""The `cheaters` fixture: registers dishonest implementations of relu/fwd through the public `register`, as a user
would, and removes them after the test."""

import pytest

from harness import registry
from harness.registry import register


@pytest.fixture
def cheaters():
    """add(name, fn, device="cpu") registers fn as implementation `name` of relu/fwd for this test only."""
    made = []

    def add(name: str, fn, device: str = "cpu"):
        register("relu", "fwd", name=name, device=device, math="fp32")(fn)
        made.append(name)

    yield add
    for name in made:
        registry.unregister("relu", "fwd", name)
