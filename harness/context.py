"""What a run tells the implementations beyond their inputs, such as cuDNN autotuning.

The runner enters `run_context(autotune=...)` around a run; an implementation reads `current()`. It is a
contextvar, not a process-wide global, so that a test or a notebook that runs with other settings cannot leak them
into the next run.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RunContext:
    autotune: bool = False  # vendor libraries: time every plan that builds and keep the fastest


_DEFAULTS = RunContext()
_CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("run_context", default=None)


def current() -> RunContext:
    """The settings of the run in progress (the defaults outside one)."""
    return _CURRENT.get() or _DEFAULTS


@contextlib.contextmanager
def run_context(**settings):
    """Run the body with these RunContext settings, then restore the previous ones."""
    token = _CURRENT.set(RunContext(**settings))
    try:
        yield current()
    finally:
        _CURRENT.reset(token)
