"""cupy_opt's kernels (gemm_warptile.cu) compile under NVRTC for sm_80 and sm_90 with no register spills (ptxas's
resource report, -v), so the best version keeps its accumulators and copy state in registers; the ladder steps'
reports are printed (v5, gemm_tiled.cu, spills 20 bytes in sgemm_tiled_nn on sm_90: one reason v6 exists).
No GPU needed."""

from __future__ import annotations

import re

import pytest

from impls.cuda.common import cuda_files
from impls.cuda.gemm import BATCHED

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")
from nvrtc_check import ARCHS, compile_source
from sgemm_table import sgemm_table

BEST = "gemm_warptile.cu"
LADDER = ("gemm_tiled.cu", "gemm_regblock2d.cu", "gemm_regblock1d.cu", "gemm_smem.cu")


def ptxas_report(name: str, arch: str, defines: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """{kernel: (registers, spill store + load bytes)} from ptxas -v for one file and architecture (+ `defines`)."""
    ok, text = compile_source(cuda_files()[name], arch, defines, ("-Xptxas", "-v"))
    assert ok, text
    out: dict[str, tuple[int, int]] = {}
    for block in re.split(r"Compiling entry function '", text)[1:]:
        func = block.split("'", 1)[0]
        regs = re.search(r"Used (\d+) registers", block)
        spills = [int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", block)]
        out[func] = (int(regs.group(1)) if regs else 0, sum(spills))
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_best_version_does_not_spill(arch: str):
    report = {**ptxas_report(BEST, arch), **ptxas_report(BEST, arch, BATCHED)}  # and its batched module
    print(BEST, arch, report)
    spilled = {f: v for f, v in report.items() if v[1]}
    assert not spilled, f"{BEST} spills for {arch}: {spilled}"
    # registers within what __launch_bounds__ leaves for the configuration's resident blocks
    limit = {f"sgemm_wt_{name}_{layout}": 65536 // (row[-2] * row[-1]) for name, row in sgemm_table(arch).items()
             for layout in ("nn", "nt", "tn", "bnn", "btn", "igemm")}
    over = {f: regs for f, (regs, _) in report.items() if f.startswith("sgemm_wt_") and regs > limit[f]}
    assert not over, over


@pytest.mark.parametrize("name", LADDER)
def test_ladder_steps_report_their_resources(name: str):
    report = ptxas_report(name, "sm_90")
    print(name, report)  # registers and spill bytes of each step, for the NOTES
    assert report and all(regs > 0 for regs, _ in report.values()), report


def test_every_configuration_and_layout_is_a_kernel():
    from impls.cuda import gemm_tune

    report = ptxas_report("gemm_warptile.cu", "sm_90")
    want = {f"sgemm_wt_{t}_{layout}" for t in gemm_tune.TILES for layout in ("nn", "nt", "tn")} | {"splitk_reduce"}
    assert set(report) == want
    batched = ptxas_report("gemm_warptile.cu", "sm_90", BATCHED)  # the convolutions' module: its kernels only
    assert set(batched) == {f"sgemm_wt_{t}_{layout}" for t in gemm_tune.TILES
                            for layout in ("bnn", "btn", "igemm")} | {"splitk_reduce", "conv_splitk_reduce"}
