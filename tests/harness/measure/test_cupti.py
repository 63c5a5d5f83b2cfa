"""harness.measure.cupti's arithmetic on CUPTI's records (CPU): one call's span and kernel sum, and the agreement rule
benchmarks/cupti_check.py applies to a harness time (the records themselves need a GPU: test_timing_gpu.py)."""

from __future__ import annotations

from harness.measure.cupti import agrees, span_and_busy_ms


def _call(*kernels: tuple[float, float]) -> list[dict]:
    return [{"name": f"k{i}", "ts": ts, "dur": dur} for i, (ts, dur) in enumerate(kernels)]


def test_span_runs_from_the_first_start_to_the_last_end_and_busy_sums_the_kernels():
    gap = _call((0.0, 100.0), (150.0, 50.0))  # a 50 µs launch gap between two kernels
    overlap = _call((0.0, 100.0), (60.0, 100.0))  # the second starts before the first ends
    assert span_and_busy_ms([gap]) == (0.2, 0.15)
    assert span_and_busy_ms([overlap]) == (0.16, 0.2)
    assert span_and_busy_ms([gap, gap, overlap]) == (0.2, 0.15)  # medians over calls


def test_a_time_agrees_between_the_kernel_time_and_the_span():
    assert agrees(0.100, 0.100, 0.100)  # one kernel
    assert agrees(0.104, 0.100, 0.100) and not agrees(0.107, 0.100, 0.100)  # 5 % + 1 µs above
    assert agrees(0.096, 0.100, 0.100) and not agrees(0.093, 0.100, 0.100)  # and below
    assert agrees(0.150, 0.150, 0.200)  # the held stream removed the launch gaps: the kernel time
    assert not agrees(0.120, 0.150, 0.200)  # faster than its own kernels: a figure nothing confirms
    assert agrees(0.160, 0.200, 0.160) and not agrees(0.140, 0.200, 0.160)  # overlapping kernels: down to the span
