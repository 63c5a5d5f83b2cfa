"""The harness's own GPU side: the float64 oracle on CuPy, the event timer with its L2 flush, the ceilings."""

import numpy as np
import pytest

from harness import peaks
from harness.check import ReferenceCache
from harness.device import to_host
from harness.ops import all_ops
from harness.timing import GpuTimer, TimerSettings

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("op", list(all_ops()))
def test_oracle_on_gpu_equals_oracle_on_cpu(op):
    spec = all_ops()[op]
    for p in spec.passes:
        for shape in spec.shapes("smoke") + spec.shapes("edge"):
            refs = ReferenceCache(spec, shape, p)
            cpu, gpu = refs.reference(0, "cpu"), refs.reference(0, "gpu")
            for name in cpu:
                np.testing.assert_allclose(to_host(gpu[name]), cpu[name], rtol=1e-12, atol=1e-12)


def test_gpu_timer_times_the_call_not_the_flush():
    import cupy

    a = cupy.random.random(64 * 2**20 // 4, dtype=cupy.float32)
    b = cupy.empty_like(a)
    settings = TimerSettings(budget_s=0.3)
    cold = GpuTimer(settings).time(lambda: cupy.copyto(b, a))
    warm = GpuTimer(settings, warm=True).time(lambda: cupy.copyto(b, a))
    assert cold.reps >= settings.min_reps and cold.median_ms > 0
    # a 64 MiB copy is 128 MiB of traffic: > 0.01 ms at any bandwidth, and a flush (100 MiB write) must not be in it
    assert 0.01 < cold.median_ms < 1.0
    assert warm.median_ms <= cold.median_ms * 1.5


def test_ceilings_are_plausible_for_a_datacenter_gpu():
    c = peaks.gpu_ceilings(copy_mib=256, gemm_n=4096)
    assert 100 < c["copy_gbps"] < 20_000
    assert 1_000 < c["gemm_fp32_gflops"] < 200_000
    meta = peaks.gpu_meta()
    assert meta["gpu"] and meta["cuda_runtime"] and meta["cupy"]
