"""The timing loop and the clock summary, without a GPU."""

import pytest

from harness.measure.clocks import ClockSample, _bus_id, summarize
from harness.measure.timing import TimerError, TimerSettings, _measure


def test_measure_stops_once_the_spread_is_small():
    t, discarded = _measure(lambda i: 1.0, TimerSettings(min_reps=10, budget_s=10.0))
    assert (t.reps, t.median_ms, t.rel_iqr, discarded) == (10, 1.0, 0.0, 0)


def test_measure_discards_none_samples_and_counts_them():
    t, discarded = _measure(lambda i: None if i % 3 == 0 else 2.0, TimerSettings(min_reps=6, budget_s=10.0))
    assert t.reps == 6 and discarded == 3 and t.median_ms == 2.0


def test_measure_with_every_sample_discarded_is_an_error():
    with pytest.raises(TimerError, match="discarded"):
        _measure(lambda i: None, TimerSettings(min_reps=3, budget_s=0.01, max_reps=50))


def test_clock_summary_flags_a_throttled_gpu_only():
    cols, flag = summarize([ClockSample(1980, 0x4), ClockSample(1900, 0x1)], 1980)
    assert cols == {"sm_clock_mhz": 1900, "clock_reasons": "sw power cap"} and flag is None
    _, flag = summarize([ClockSample(1200, 0x4), ClockSample(1500, 0)], 1980)
    assert flag == "timed at SM clock 1200 MHz, 61% of its 1980 MHz maximum (sw power cap)"
    _, flag = summarize([ClockSample(1900, 0x40)], 1980)
    assert "hw thermal slowdown" in flag


def test_pci_bus_ids_of_cuda_and_nvml_match():
    assert _bus_id("0000:1B:00.0") == _bus_id("00000000:1b:00.0") == "0:1b:00.0"


class _Work:
    """The least an InputSets offers the CPU timer: one input set, a call that takes no time, outputs always right."""

    sets = (None,)

    def reset(self, i):
        pass

    def run(self):
        pass

    def verify(self):
        return None


def _timed_with_waits(monkeypatch, shares):
    """CpuTimer.time when its successive timing attempts waited for a CPU the given shares of their wall time."""
    import harness.measure.timing as timing

    left = list(shares)

    class Waits:
        def __init__(self):
            self.value = left.pop(0)

        def share(self):
            return self.value

    monkeypatch.setattr(timing, "WaitShare", Waits)
    return timing.CpuTimer(TimerSettings(warmup_s=0.0, min_reps=3, budget_s=0.01)).time(_Work()), left


def test_cpu_timer_times_a_disturbed_case_again_until_the_host_is_quiet(monkeypatch):
    t, left = _timed_with_waits(monkeypatch, [0.6, 0.3, 0.02])
    assert t.columns["host_wait"] == 0.02 and "host busy" not in t.flags and left == []


def test_cpu_timer_keeps_the_least_disturbed_attempt_and_flags_it(monkeypatch):
    t, left = _timed_with_waits(monkeypatch, [0.6, 0.3, 0.5, 0.0])
    assert t.columns["host_wait"] == 0.3 and t.flags == ["host busy"] and left == [0.0]  # 1 + RETIMES attempts


def test_cpu_timer_times_a_quiet_case_once(monkeypatch):
    t, left = _timed_with_waits(monkeypatch, [0.01, 0.0])
    assert t.columns["host_wait"] == 0.01 and t.flags == [] and left == [0.0]
