"""Compile one .cu file with NVRTC, as the harness does, without a GPU: shared by the tests of the built-in kernels
and of the scaffold's templates. Needs cuda-bindings and the nvidia-cuda-nvrtc wheel (the dev extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cuda import DEFAULT_OPTIONS, compile_cubin

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")

ARCHS = ("sm_80", "sm_90")
# NVRTC's front end warns by default; --Wreorder adds member-initialiser order. Register spills are not warnings
# here: each kernel's spill bytes are reported with its results (harness.cuda.attributes).
WARNING_OPTIONS = ("--Wreorder",)


def compile_source(path: Path, arch: str, defines: tuple[str, ...] = (), extra: tuple[str, ...] = WARNING_OPTIONS
                   ) -> tuple[bool, str]:
    """(compiled, log) for one source file and one target architecture (machine code, so ptxas runs too), with
    `defines` added to the options (a variant of the file, as impls.cuda.common.module compiles it) and `extra`
    after them: the harness's own NVRTC call (harness.cuda.compile_cubin), the one the kernels run from."""
    code, log = compile_cubin(path.read_bytes(), path.name, (*DEFAULT_OPTIONS, *defines, *extra), arch)
    return code is not None, log
