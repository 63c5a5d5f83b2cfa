"""Run-wide options that implementations may read (set once by the CLI before a run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    autotune: bool = False  # vendor libraries: time every plan that builds and keep the fastest


OPTIONS = Options()
