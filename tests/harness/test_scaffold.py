"""`new-impl` writes starting points that pass as written: NumPy ones are checked here, CUDA ones compile here
with NVRTC and are checked against the oracle on the GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import scaffold
from harness.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(scaffold.TEMPLATES)


def harness(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _check_passes(tmp_path: Path, op: str, pass_: str, device: str) -> None:
    r = harness(["new-impl", "--op", op, "--pass", pass_, "--name", "mine", "--device", device, "--dir", "k"],
                tmp_path)
    assert r.returncode == 0, r.stderr
    command = r.stdout.strip().splitlines()[-1].split("&& ", 1)[1].split()[3:]  # the command the tool prints
    run = harness([*command, "--check-only", "--shapes", "edge", "--out", "run", "--no-report"], tmp_path / "k")
    rows = pd.read_csv(tmp_path / "k" / "run" / "results.csv")
    mine = rows[rows.impl == "mine"]
    # the conv2d template takes square layers and says so for the others (per-axis, dilated, grouped: skipped)
    reason = mine["reason"].astype(str).where(mine["reason"].notna(), "")
    declined = (mine.status == "skipped") & reason.str.startswith("template: square layers only")
    assert declined.sum() == mine["shape"].str.contains("_h=|dilation|groups").sum()
    assert len(mine) > declined.sum() and set(mine.status[~declined]) == {"pass"}, \
        (run.stderr, mine[["shape", "status", "reason"]])


@pytest.mark.parametrize("op, pass_", TEMPLATES)
def test_the_numpy_template_passes_as_written(tmp_path, op, pass_):
    _check_passes(tmp_path, op, pass_, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("op, pass_", TEMPLATES)
def test_the_cuda_template_passes_as_written(tmp_path, op, pass_):
    _check_passes(tmp_path, op, pass_, "gpu")


@pytest.mark.parametrize("op, pass_", TEMPLATES)
def test_the_cuda_template_compiles_without_warnings(tmp_path, op, pass_):
    nvrtc_check = pytest.importorskip("nvrtc_check")
    (cu,) = [p for p in scaffold.write(op, pass_, "mine", "gpu", tmp_path) if p.suffix == ".cu"]
    for arch in nvrtc_check.ARCHS:
        ok, log = nvrtc_check.compile_source(cu, arch)
        assert ok and not log, log


def test_bad_choices_are_usage_errors_and_nothing_is_overwritten(tmp_path):
    with pytest.raises(UsageError, match="no template for sgd/update; templates: "):
        scaffold.write("sgd", "update", "mine", "gpu", tmp_path)
    with pytest.raises(UsageError, match="must be a Python identifier"):
        scaffold.write("relu", "fwd", "my-relu", "gpu", tmp_path)
    scaffold.write("relu", "fwd", "mine", "cpu", tmp_path)
    with pytest.raises(UsageError, match="exists"):
        scaffold.write("relu", "fwd", "mine", "cpu", tmp_path)
