"""The harness's own GPU side: the float64 oracle on CuPy, the event timer with its L2 flush, the ceilings."""

import numpy as np
import pytest

from harness.device import to_host
from harness.measure import ceilings
from harness.measure.check import ReferenceCache
from harness.measure.inputs import InputSets
from harness.measure.timing import GpuTimer, TimerSettings
from harness.ops import all_ops
from harness.registry import get

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
    spec = all_ops()["relu"]
    shape = spec.shape_type(N=16, C=64, H=128, W=128)  # 64 MiB in, 64 MiB out
    work = InputSets(get("relu", "fwd", "cupy_opt"), ReferenceCache(spec, shape, "fwd"), (0, 1, 2))
    settings = TimerSettings(budget_s=0.3)
    cold = GpuTimer(settings).time(work)
    warm = GpuTimer(settings, warm=True).time(work)
    assert cold.failure is None and cold.stats.reps >= settings.min_reps and cold.stats.median_ms > 0
    # 128 MiB of traffic: > 0.01 ms at any bandwidth, and the flush (a 2x L2 memset) must not be in it
    assert 0.01 < cold.stats.median_ms < 1.0
    assert warm.stats.median_ms <= cold.stats.median_ms * 1.5


def test_hardware_ceilings_of_this_gpu_are_above_the_measured_ones():
    hw, measured = ceilings.gpu_hardware(), ceilings.gpu_ceilings(copy_mib=256, gemm_n=4096)
    assert hw["fp32_fma_gflops"] > measured["gemm_fp32_gflops"]
    assert hw["hbm_gbps"] > measured["copy_gbps"]


def test_ceilings_are_plausible_for_a_datacenter_gpu():
    c = ceilings.gpu_ceilings(copy_mib=256, gemm_n=4096)
    assert 100 < c["copy_gbps"] < 20_000
    assert 1_000 < c["gemm_fp32_gflops"] < 200_000
    meta = ceilings.gpu_meta()
    assert meta["gpu"] and meta["cuda_runtime"] and meta["cupy"]
