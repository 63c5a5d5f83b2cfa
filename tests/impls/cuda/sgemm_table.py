"""The tile table of gemm_warptile.cu (its SGEMM_WT_TABLE's CONFIG lines) as the compiler sees it for one target
architecture: shared by the tests that check impls/cuda/gemm_tune.py's mirror of it and the kernels' registers."""

from __future__ import annotations

import re

from impls.cuda.common import cuda_files


def sgemm_table(arch: str = "sm_90") -> dict[str, tuple[int, ...]]:
    """name -> (BM, BN, BK, WM, WN, TM, TN, stages, threads, min blocks per SM) of each CONFIG line; a value given
    as a macro is looked up in its `#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < V` / `#else` definitions."""
    text = cuda_files()["gemm_warptile.cu"].read_text()
    arch_code = int(arch.removeprefix("sm_")) * 10
    macros = {name: int(low if arch_code < int(cut) else high) for cut, name, low, high in re.findall(
        r"__CUDA_ARCH__ < (\d+)\n#define (\w+) (\d+)\n#else\n#define \w+ (\d+)", text)}
    rows = re.findall(r"^\s*CONFIG\((\w+),([\w,\s]+)\)", text, flags=re.M)
    return {name: tuple(int(v) if v.strip().isdigit() else macros[v.strip()] for v in vals.split(","))
            for name, vals in rows}
