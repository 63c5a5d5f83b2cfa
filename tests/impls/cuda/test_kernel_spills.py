"""No kernel of the project's own implementations spills registers (ptxas's -v report through NVRTC, sm_80 and
sm_90, every module a file is built as: plain and with its defines). The exceptions are the gemm ladder's earlier
steps, kept as they were (test_gemm_resources prints their reports, and checks gemm_warptile.cu, the best
version, on its own). A spill is a local-memory round trip inside a kernel's main loop: the conv2d 128×128 and
128×32 kernels lost 16–148 bytes that way before their loaders re-read threadIdx.x (conv2d_implicit_gemm.cu's
OPAQUE_TID). No GPU needed."""

from __future__ import annotations

import pytest

from impls.cuda.common import cuda_files

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")
from nvrtc_check import ARCHS
from test_gemm_resources import BEST, LADDER, ptxas_report
from test_nvrtc_compile import VARIANTS

MODULES = [(name, ()) for name in sorted(cuda_files()) if name not in (*LADDER, BEST)] + \
    [(p.name, d) for p, d in VARIANTS if p.name != BEST]


def test_the_modules_cover_the_conv_kernels():
    names = {name for name, _ in MODULES}
    assert {"conv2d_implicit_gemm.cu", "conv2d_winograd.cu", "conv2d_winograd_f4.cu", "maxpool2d.cu"} <= names
    assert ("conv2d_implicit_gemm.cu", ("-DCONV_RELU=1",)) in MODULES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("name", "defines"), MODULES, ids=[f"{n}{''.join(d)}" for n, d in MODULES])
def test_no_kernel_spills(name: str, defines: tuple[str, ...], arch: str):
    report = ptxas_report(name, arch, defines)
    assert report, f"{name}: ptxas reported no kernels"
    spilled = {f: v for f, v in report.items() if v[1]}
    assert not spilled, f"{name}{defines} spills for {arch}: {spilled} (kernel: (registers, spill bytes))"
