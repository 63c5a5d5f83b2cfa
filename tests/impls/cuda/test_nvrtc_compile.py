"""Every .cu file (under impls/ and under harness/, the timer's) compiles with NVRTC for sm_80 and sm_90, with the
options the harness uses, without a warning.

Runs in CI, which has no GPU: NVRTC needs no device and no driver (cuda-bindings + the nvidia-cuda-nvrtc wheel).
Compiling to machine code (sm_XX, not compute_XX) runs ptxas too, so its warnings count as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from impls.cuda.common import cuda_files
from impls.cuda.conv2d import RELU
from impls.cuda.gemm import BATCHED

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


# Files compiled a second time with defines (impls.cuda.common.module's `defines`): conv2d_bias_relu's ReLU
# epilogue in conv2d fprop's three files, the batched 1x1-convolution kernels of the SGEMM file.
VARIANTS = [*((p, RELU) for p in SOURCES if "CONV_RELU" in p.read_text()),
            *((p, BATCHED) for p in SOURCES if "GEMM_BATCHED" in p.read_text())]


def test_the_variants_are_the_expected_files():
    assert sorted(p.name for p, _ in VARIANTS) == ["conv2d_direct_small.cu", "conv2d_implicit_gemm.cu",
                                                   "conv2d_naive.cu", "gemm_warptile.cu"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("path", "defines"), VARIANTS, ids=[f"{p.name}{''.join(d)}" for p, d in VARIANTS])
def test_variants_compile_without_warnings(path: Path, defines: tuple[str, ...], arch: str):
    ok, log = compile_source(path, arch, defines)
    assert ok and not log, f"{path.name} with {defines} for {arch}:\n{log}"
