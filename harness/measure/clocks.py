"""The GPU's SM clock and why it is held down, read through NVML (the `nvidia-ml-py` package) around each timing.

A figure measured while the GPU ran far below its clock is a figure of a throttled GPU: like nvbench, a row timed
below THROTTLED of the maximum SM clock, or while a hardware slowdown was active, is flagged. The power cap is
recorded but not flagged on its own: a busy datacenter GPU sits at its power limit in normal operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import one_line

THROTTLED = 0.75
# NVML's clocks-event (formerly throttle) reason bits that say something about the figure; idle, application
# clocks and display clocks do not.
REASONS = {0x4: "sw power cap", 0x8: "hw slowdown", 0x10: "sync boost", 0x20: "sw thermal slowdown",
           0x40: "hw thermal slowdown", 0x80: "hw power brake"}
SLOWDOWNS = 0x8 | 0x20 | 0x40 | 0x80


@dataclass(frozen=True)
class ClockSample:
    sm_mhz: int
    reasons: int  # NVML reason bits


class GpuClocks:
    """NVML's view of one CUDA device (matched by PCI bus id, so CUDA_VISIBLE_DEVICES cannot mix them up)."""

    def __init__(self, nvml, handle):
        self._nvml, self._h = nvml, handle
        self.max_mhz = int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM))
        reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        self._reasons = reasons or nvml.nvmlDeviceGetCurrentClocksThrottleReasons

    def sample(self) -> ClockSample:
        return ClockSample(int(self._nvml.nvmlDeviceGetClockInfo(self._h, self._nvml.NVML_CLOCK_SM)),
                           int(self._reasons(self._h)))


def open_gpu_clocks(device_id: int) -> tuple[GpuClocks | None, str]:
    """(clocks, '') for CUDA device `device_id`, or (None, why not) when NVML is missing or does not see it."""
    try:
        import pynvml as nvml
    except ImportError:
        return None, "clocks not recorded: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    try:
        import cupy

        nvml.nvmlInit()
        bus = _bus_id(cupy.cuda.runtime.deviceGetPCIBusId(device_id))
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            found = nvml.nvmlDeviceGetPciInfo(h).busId
            if _bus_id(found.decode() if isinstance(found, bytes) else found) == bus:
                return GpuClocks(nvml, h), ""
        return None, f"clocks not recorded: NVML lists no device at PCI bus id {bus}"
    except Exception as exc:  # NVML present but not usable here (no driver access, a container without it)
        return None, f"clocks not recorded: NVML: {one_line(exc)}"


def _bus_id(text: str) -> str:
    """'00000000:1B:00.0' and '0000:1b:00.0' as one form: domain without leading zeros, lower case."""
    domain, _, rest = text.strip().lower().partition(":")
    return f"{int(domain, 16):x}:{rest}"


def summarize(samples: list[ClockSample], max_mhz: int) -> tuple[dict, str | None]:
    """Row columns (lowest SM clock, its share of the maximum, the reasons seen) and a flag, or None."""
    low = min(s.sm_mhz for s in samples)
    bits = 0
    for s in samples:
        bits |= s.reasons
    names = [name for bit, name in REASONS.items() if bits & bit]
    share = low / max_mhz if max_mhz > 0 else 1.0
    cols = {"sm_clock_mhz": low, "clock_reasons": ", ".join(names)}
    flag = None
    if share < THROTTLED or bits & SLOWDOWNS:
        why = ", ".join(names) or "no reason reported"
        flag = f"timed at SM clock {low} MHz, {share:.0%} of its {max_mhz} MHz maximum ({why})"
    return cols, flag
