"""harness.cuda's own NVRTC call: strict IEEE float32 (subnormals kept, which CuPy's compiler does not do), the
on-disk cubin cache, and compile errors as logs. The compile tests need no GPU (cuda-bindings + the NVRTC wheel);
the subnormal tests run the built-in kernels on one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import cuda

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed (pip install cuda-bindings)")

FMA = (b'extern "C" __global__ void fma1(const float* x, float* y) '
       b'{ y[threadIdx.x] = fmaf(x[threadIdx.x], 2.0f, 0.0f); }')
SUBNORMAL = np.float32(1e-40)  # below float32's smallest normal, 1.18e-38


def ptx(source: bytes, options: tuple[str, ...]) -> str:
    """The PTX NVRTC makes of `source` with exactly `options` (for a virtual architecture: no ptxas)."""
    code, log = cuda.compile_cubin(source, "k.cu", options, "compute_90")
    assert code is not None, log
    return code.rstrip(b"\0").decode(errors="replace")


def test_the_default_options_keep_subnormals_and_cupys_appended_flag_would_not():
    # what harness.cuda compiles with: no flush-to-zero in the arithmetic
    assert "fma.rn.f32" in ptx(FMA, cuda.DEFAULT_OPTIONS)
    assert ".ftz" not in ptx(FMA, cuda.DEFAULT_OPTIONS)
    # what cupy.RawModule(code=..., options=DEFAULT_OPTIONS) compiles: CuPy appends -ftz=true, and NVRTC takes the
    # last occurrence (the reason harness.cuda calls NVRTC itself)
    assert "fma.rn.ftz.f32" in ptx(FMA, (*cuda.DEFAULT_OPTIONS, "-ftz=true"))


def test_a_built_in_kernel_file_has_no_flushing_instruction():
    text = ptx((Path(cuda.__file__).parents[1] / "impls" / "cuda" / "gemm_warptile.cu").read_bytes(),
               cuda.DEFAULT_OPTIONS)
    assert "fma.rn.f32" in text and ".ftz" not in text


def test_cubins_are_cached_by_source_and_options(tmp_path, monkeypatch):
    monkeypatch.setenv("KH_CUBIN_CACHE", str(tmp_path))
    first = cuda.cached_cubin(FMA, "fma.cu", cuda.DEFAULT_OPTIONS, "sm_90")
    assert isinstance(first, Path) and first.parent == tmp_path and first.stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))

    def no_compile(*args):
        raise AssertionError("compiled again although the cache has it")

    monkeypatch.setattr(cuda, "compile_cubin", no_compile)
    assert cuda.cached_cubin(FMA, "fma.cu", cuda.DEFAULT_OPTIONS, "sm_90") == first
    monkeypatch.undo()
    monkeypatch.setenv("KH_CUBIN_CACHE", str(tmp_path))
    others = {cuda.cached_cubin(FMA, "fma.cu", (*cuda.DEFAULT_OPTIONS, "-DX=1"), "sm_90"),
              cuda.cached_cubin(FMA, "fma.cu", cuda.DEFAULT_OPTIONS, "sm_80"),
              cuda.cached_cubin(FMA + b"\n", "fma.cu", cuda.DEFAULT_OPTIONS, "sm_90")}
    assert first not in others and len(others) == 3


def test_an_empty_cache_setting_keeps_cubins_in_a_folder_of_the_process(monkeypatch):
    monkeypatch.setenv("KH_CUBIN_CACHE", "")
    file = cuda.cached_cubin(FMA, "fma.cu", cuda.DEFAULT_OPTIONS, "sm_90")
    assert file.parent == Path(cuda._process_cache_dir()) and "kh-cubin-" in file.parent.name


def test_a_source_that_does_not_compile_gives_its_log_and_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KH_CUBIN_CACHE", str(tmp_path))
    log = cuda.cached_cubin(b'extern "C" __global__ void k(float* y) { y[0] = ; }', "bad.cu", cuda.DEFAULT_OPTIONS,
                            "sm_90")
    assert isinstance(log, str) and "error" in log
    assert not list(tmp_path.iterdir())
    assert "bad.cu does not compile: " in str(cuda.CompileError(Path("bad.cu"), log))


@pytest.mark.gpu
def test_a_users_kernel_keeps_subnormals(tmp_path):
    import cupy

    (tmp_path / "fma1.cu").write_bytes(FMA)
    x = cupy.full(32, SUBNORMAL, dtype=cupy.float32)
    y = cupy.full(32, np.nan, dtype=cupy.float32)
    cuda.kernel(tmp_path / "fma1.cu", "fma1")((1,), (32,), (x, y))
    assert bool((y == 2 * SUBNORMAL).all()), y[:4]


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["cupy_naive", "cupy_opt", "cublas"])
def test_gemm_keeps_subnormal_inputs(impl):
    """Y = X·I with subnormal X must be X exactly (a kernel built with flush-to-zero gives zeros)."""
    import cupy

    from harness.ops.gemm import GemmShape
    from harness.registry import get

    s = GemmShape(M=64, N=64, K=64)
    x = cupy.asarray(np.random.default_rng(0).integers(1, 1000, (s.M, s.K)).astype(np.float32) * SUBNORMAL / 1000)
    assert bool((cupy.abs(x) < np.finfo(np.float32).tiny).all())
    y = cupy.full((s.M, s.N), np.nan, dtype=cupy.float32)
    get("gemm", "fwd", impl).fn(s, x, cupy.eye(s.K, dtype=cupy.float32), y=y)
    assert bool((y == x).all()), f"{impl}: {int((y == 0).sum())} of {y.size} subnormal products flushed to zero"
