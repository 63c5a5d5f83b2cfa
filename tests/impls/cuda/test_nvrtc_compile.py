"""Every .cu file (under impls/ and under harness/, the timer's) compiles with NVRTC for sm_80 and sm_90, with the
options the harness uses, without a warning.

Runs in CI, which has no GPU: NVRTC needs no device and no driver (cuda-bindings + the nvidia-cuda-nvrtc wheel).
Compiling to machine code (sm_XX, not compute_XX) runs ptxas too, so its warnings count as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from impls.cuda.common import cuda_files

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")
from nvrtc_check import ARCHS, compile_source

HARNESS_DIR = Path(__file__).parents[3] / "harness"
SOURCES = sorted([*cuda_files().values(), *HARNESS_DIR.rglob("*.cu")])


def test_there_are_sources():
    # the kernels, the cuDNN epilogues and the timer's hold kernel are all found in their folders
    assert {p.parent.name for p in SOURCES} == {"cuda", "nvidia", "measure"}, SOURCES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_compiles_without_warnings(path: Path, arch: str):
    ok, log = compile_source(path, arch)
    print(log)
    assert ok, f"{path.name} failed to compile for {arch}:\n{log}"
    assert not log, f"{path.name} compiled for {arch} with diagnostics:\n{log}"
