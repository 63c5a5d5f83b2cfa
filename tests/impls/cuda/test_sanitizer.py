"""Every project kernel runs clean under compute-sanitizer's memcheck on the smoke shapes (the full sweep of tools
and sets is benchmarks/sanitize.sh). Skipped where compute-sanitizer is not installed or no GPU is present."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(shutil.which("compute-sanitizer") is None, reason="compute-sanitizer is not on the PATH")
def test_memcheck_finds_no_error_in_any_project_kernel(tmp_path):
    r = subprocess.run(["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "99", sys.executable, "-m",
                        "harness", "run", "--op", "all", "--impl", "cupy_naive,cupy_opt,cupy_im2col_cublas",
                        "--shapes", "smoke", "--check-only", "--no-report", "--out", str(tmp_path / "run")],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=900)
    summary = [line for line in (r.stdout + r.stderr).splitlines() if "ERROR SUMMARY" in line]
    assert r.returncode == 0 and summary and "ERROR SUMMARY: 0 errors" in summary[-1], (r.stdout + r.stderr)[-3000:]
