"""What a timer repeats: one implementation on one case, with fresh outputs and rotated inputs before every call.

A timer that calls an implementation again and again on the same buffers can be fooled: a result cached by
address, a result computed only while the output still holds the checker's poison, or the first call's result
returned for every later call all pass the check and are timed at almost nothing. So before every timed call,
outside the timed interval, `InputSets.reset(i)`:
- copies the contents of input set i mod K (one set per seed) into the call's input buffers: the same addresses
  hold other data from call to call, so a result cached by address is wrong;
- poisons every output with NaN (an in-place output gets its starting values back), so a call that skips its
  work leaves NaN behind.
`verify()` judges the outputs of the last call against the oracle's for the set it ran on, and checks bit for bit
that no input was written. On the GPU the copies and fills are cudaMemcpyAsync / cudaMemsetAsync on the current
stream (every bit set is a NaN in float32 and float64): no kernels, so a profiler sees only the implementation's.
"""

from __future__ import annotations

import numpy as np

from harness.device import synchronize
from harness.measure.check import ReferenceCache, changed_inputs, judge
from harness.measure.execute import device_inputs, prepare
from harness.registry import Impl


class InputSets:
    """One implementation's call on one case, with K input sets (one per seed) to rotate through."""

    def __init__(self, impl: Impl, refs: ReferenceCache, seeds):
        spec, shape, pass_ = refs.spec, refs.shape, refs.pass_
        self.impl, self.refs, self.seeds = impl, refs, tuple(seeds)
        self.call = prepare(impl, spec, shape, pass_, refs.inputs(self.seeds[0]))
        self.inplace = spec.pass_spec(pass_).inplace
        self.sets = [device_inputs(impl, spec, shape, pass_, refs.inputs(s)) for s in self.seeds]
        self.current = 0  # which set the buffers hold

    @property
    def device(self) -> str:
        return self.impl.device

    def reset(self, i: int) -> None:
        """Before call i: input set i mod K into the input buffers, outputs poisoned (in-place ones restored)."""
        self.current = i % len(self.sets)
        src = self.sets[self.current]
        for name, a in self.call.inputs.items():
            _copy(a, src[name])
        for name, a in self.call.outputs.items():
            if name in self.inplace:
                _copy(a, src[name])
            else:
                _poison(a)

    def run(self):
        return self.call.run()

    def outputs(self) -> dict:
        return self.call.results()

    def verify(self) -> tuple[str, str] | None:
        """(status, reason) when the last call wrote an input or left wrong outputs; None when it is right."""
        synchronize(self.device)
        seed = self.seeds[self.current]
        mutated = changed_inputs(self.call.inputs, self.sets[self.current])
        if mutated:
            return "input-mutated", f"a timed call wrote into input {', '.join(mutated)} (seed {seed})"
        for name, c in judge(self.impl, self.refs, seed, self.outputs()):
            if c.status != "pass":
                return "stale", f"a timed call left {name} wrong (seed {seed}): {c.reason}"
        return None


def _copy(dst, src) -> None:
    if isinstance(dst, np.ndarray):
        np.copyto(dst, src)
    else:
        dst.data.copy_from_device_async(src.data, dst.nbytes)


def _poison(a) -> None:
    if isinstance(a, np.ndarray):
        a.fill(np.nan)
    else:
        import cupy

        cupy.cuda.runtime.memsetAsync(a.data.ptr, 0xFF, a.nbytes, cupy.cuda.get_current_stream().ptr)
