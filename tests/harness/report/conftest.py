"""The `gpu_like_run` fixture: a run folder built by fake_runs.py (imported by that unique name, so that the
order in which pytest collects test folders cannot swap in another folder's conftest)."""

from pathlib import Path

import pytest
from fake_runs import gpu_like_rows, write_run


@pytest.fixture
def gpu_like_run(tmp_path) -> Path:
    """A GPU-like run folder (see fake_runs.py)."""
    return write_run(tmp_path / "gpu_run", gpu_like_rows())
