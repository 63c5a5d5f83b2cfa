"""Calling one implementation: inputs to its device and dtype, NaN-poisoned outputs, the call itself.

Shared by the checker, the timers and the training layers, so every caller follows the same contract
(see harness.registry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.device import float_dtype, to_device, xp_for
from harness.registry import Impl
from harness.spec import OpSpec


@dataclass
class Call:
    """A ready-to-run call: `run()` invokes the implementation on fixed buffers (what the timers repeat)."""

    impl: Impl
    shape: object
    inputs: dict
    outputs: dict
    returned: dict | None = None

    def run(self):
        self.returned = self.impl.fn(self.shape, **self.inputs, **self.outputs)
        return self.returned

    def results(self) -> dict:
        """The outputs after `run()`: the buffers, or what the implementation returned in their place."""
        return self.returned if isinstance(self.returned, dict) else self.outputs


def device_inputs(impl: Impl, spec: OpSpec, shape, pass_: str, host_inputs: dict[str, np.ndarray]) -> dict:
    """Copies of `host_inputs` (float64/int32 NumPy) on the implementation's device, in its dtype (int32 is never
    cast). Always copies, also for a float64 CPU implementation, so that nothing a call does to its inputs can
    reach the shared host inputs (harness.measure.check.ReferenceCache)."""
    dtype = float_dtype(impl.math)
    own = impl.device == "cpu"  # on the GPU, the transfer is the copy
    return {name: to_device(a.copy() if own else a, impl.device, dtype) for name, a in host_inputs.items()}


def prepare(impl: Impl, spec: OpSpec, shape, pass_: str, host_inputs: dict[str, np.ndarray]) -> Call:
    """Move `host_inputs` to the implementation's device and dtype and allocate its outputs.

    Outputs are filled with NaN; an in-place output starts as a copy of its input and is not passed as an input.
    """
    ps = spec.pass_spec(pass_)
    xp = xp_for(impl.device)
    dtype = float_dtype(impl.math)
    on_device = device_inputs(impl, spec, shape, pass_, host_inputs)
    outputs = {}
    for name, t in ps.outputs(shape).items():
        if name in ps.inplace:
            outputs[name] = on_device.pop(name).copy()
        else:
            outputs[name] = xp.full(t.shape, np.nan, dtype=dtype)
    return Call(impl, shape, on_device, outputs)
