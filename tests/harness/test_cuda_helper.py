"""harness.cuda: a user's .cu file compiles from any path, and one that does not compile makes its rows `error`
with the first compiler message, the whole log saved in the run folder's compile-logs/ (GPU: CuPy compiles)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
import numpy as np
from harness import cuda, register
from harness.device import gpu_unavailable_reason


@register("relu", "fwd", name="zz_broken", device="gpu", math="fp32", available=gpu_unavailable_reason)
def broken(s, x, *, y):
    """A kernel with a syntax error."""
    cuda.kernel("broken.cu", "broken_relu")((1,), (32,), (x, y, np.int64(y.size)))
'''
BROKEN_CU = 'extern "C" __global__ void broken_relu(const float* x, float* y, long long n) { y[0] = x[0] +; }\n'


@pytest.mark.gpu
def test_a_kernel_that_does_not_compile_is_an_error_row_with_its_log(tmp_path):
    (tmp_path / "mine.py").write_text(PLUGIN)
    (tmp_path / "broken.cu").write_text(BROKEN_CU)
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--op", "relu", "--pass", "fwd", "--plugin", "mine.py",
                        "--impl", "zz_broken", "--check-only", "--no-report", "--out", "run"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    mine = rows[rows.impl == "zz_broken"]
    assert set(mine.status) == {"error"}
    assert mine.reason.str.contains("broken.cu does not compile").all()
    assert (tmp_path / "run" / "compile-logs" / "broken.cu.log").read_text().count("error") >= 1
    assert mine.note.fillna("").str.contains("compile log: compile-logs/broken.cu.log").any()
