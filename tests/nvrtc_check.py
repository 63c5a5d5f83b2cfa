"""Compile one .cu file with NVRTC, as the harness does, without a GPU: shared by the tests of the built-in kernels
and of the scaffold's templates. Needs cuda-bindings and the nvidia-cuda-nvrtc wheel (the dev extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cuda import DEFAULT_OPTIONS

nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")

ARCHS = ("sm_80", "sm_90")
# NVRTC's front end warns by default; --Wreorder adds member-initialiser order. Register spills are not warnings
# here: each kernel's spill bytes are reported with its results (harness.cuda.attributes).
WARNING_OPTIONS = ("--Wreorder",)


def compile_source(path: Path, arch: str, defines: tuple[str, ...] = ()) -> tuple[bool, str]:
    """(compiled, log) for one source file and one target architecture (machine code, so ptxas runs too), with
    `defines` added to the options (a variant of the file, as impls.cuda.common.module compiles it)."""
    err, prog = nvrtc.nvrtcCreateProgram(path.read_bytes(), path.name.encode(), 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, f"nvrtcCreateProgram: {err}"
    try:
        opts = [o.encode() for o in (*DEFAULT_OPTIONS, *defines, f"--gpu-architecture={arch}", *WARNING_OPTIONS)]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = nvrtc.nvrtcGetProgramLogSize(prog)
        assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, f"nvrtcGetProgramLogSize: {err}"
        log = b" " * size
        (err,) = nvrtc.nvrtcGetProgramLog(prog, log)
        assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, f"nvrtcGetProgramLog: {err}"
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return result == nvrtc.nvrtcResult.NVRTC_SUCCESS, log.rstrip(b"\0").decode(errors="replace").strip()
