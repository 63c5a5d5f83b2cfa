"""The code base stays ruff clean (the rules are in pyproject.toml)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install .[dev])")
def test_ruff_clean():
    dirs = [d for d in ("harness", "impls", "nets", "tests", "benchmarks") if (ROOT / d).is_dir()]
    r = subprocess.run(["ruff", "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
