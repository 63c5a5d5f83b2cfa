"""Every kernel launch of the project's CUDA wrappers matches the kernel's signature in its .cu file: as many
arguments, each packed as the C type the kernel declares (launch_recorder.py; no GPU needed). A mismatch would
shift every later argument and show only as wrong results on the GPU. The grids and blocks are inside CUDA's
limits too (grid.x < 2^31, grid.y and grid.z ≤ 65535, at most 1024 threads a block, none of them empty)."""

from __future__ import annotations

import pytest
from launch_recorder import FakeArray, fits, own_gpu_impls, record, signature

from harness.ops import get_op
from impls.cuda import gemm_tune as _tune


def _check(launches) -> int:
    for launch in launches:
        declared = signature(launch.file, launch.func)
        passed = [type(a).__name__ for a in launch.args]
        assert len(passed) == len(declared) and all(map(fits, declared, launch.args)), \
            f"{launch.file} {launch.func}: launched with {passed}, declared {declared}"
        grid, block = launch.grid3, launch.block3
        assert min(grid) >= 1 and grid[0] < 2**31 and max(grid[1:]) <= 65535, f"{launch.func}: grid {grid}"
        assert min(block) >= 1 and block[0] * block[1] * block[2] <= 1024, f"{launch.func}: block {block}"
    return len(launches)


@pytest.mark.parametrize("impl", own_gpu_impls(), ids=lambda i: f"{i.op}-{i.pass_}-{i.name}")
def test_every_launch_matches_its_kernel(monkeypatch, impl):
    """On every shape of every registered set the implementation supports: each kernel-selection path runs."""
    rec = record(monkeypatch)
    spec = get_op(impl.op)
    ps = spec.pass_spec(impl.pass_)
    ran = 0
    for shape in [s for shapes in spec.shape_sets.values() for s in shapes]:
        if impl.unsupported_reason(shape):
            continue
        args = {name: FakeArray(t.numel) for name, t in {**ps.inputs(shape), **ps.outputs(shape)}.items()}
        impl.fn(shape, **args)
        ran += 1
    assert ran and _check(rec.launches) >= ran


@pytest.mark.parametrize("tile", list(_tune.TILES))
@pytest.mark.parametrize("splits", [1, 2])
def test_gemm_kernels_launch_every_configuration_as_declared(monkeypatch, tile, splits):
    """Every tile and split of the v7 kernel, plain (nn, nt, tn), batched (bnn, btn) and implicit GEMM."""
    from impls.cuda import gemm

    rec = record(monkeypatch, _tune.Config(_tune.TILES[tile], splits))
    a, b, c, bias = (FakeArray(1 << 20) for _ in range(4))
    for layout in ("nn", "nt", "tn"):
        gemm._wt_gemm(layout, a, b, c, bias, 300, 200, 512, 512, 200, True, True, True)
    if splits == 1:
        for layout in ("bnn", "btn"):
            gemm.batched_gemm(layout, a, b, c, bias, 64, 196, 128, 128, 196, 4, (0, 128 * 196, 64 * 196))
    geo = (196, 14, 1, 1, 1, 1, 16, 16, 0, 0, 196, 0, 14, 1)  # ConvGeo of a plain 14x14 plane
    gemm.implicit_gemm(a, b, c, bias, 64, 392, 576, FakeArray(2 * 576), geo, "t")
    assert _check(rec.launches) >= 4
