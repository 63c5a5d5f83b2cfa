"""The console table of `harness run`: one aligned line per finished case, as the run goes."""

from __future__ import annotations

import math
from typing import ClassVar


class TablePrinter:
    """Prints one aligned line per finished case, with a header whenever the (op, pass) changes."""

    COLS: ClassVar[list[tuple[str, int]]] = [
        ("impl", 18), ("shape", 44), ("status", 8), ("err", 9), ("median_ms", 10), ("GFLOP/s", 9), ("GB/s", 8),
        ("%peak", 6), ("speedup", 8)]

    def __init__(self, printer):
        self.printer = printer
        self.current = None

    def row(self, r: dict, emit) -> None:
        if (r["op"], r["pass"]) != self.current:
            self.current = (r["op"], r["pass"])
            emit(f"\n== {r['op']} / {r['pass']}")
            emit("  ".join(name.ljust(w) for name, w in self.COLS))
        cells = [r["impl"], r["shape"], r["status"], _num(r.get("err"), ".1e"), _num(r.get("median_ms"), ".4g"),
                 _num(r.get("gflops"), ".4g"), _num(r.get("gbps"), ".4g"), _num(r.get("pct_peak"), ".1f"),
                 _num(r.get("speedup"), ".2f", "x")]
        # a cell wider than its column is printed whole (that line's later cells shift): a cut-off shape such as
        # "...,pad=1" without its ",groups=2" would name another problem
        line = "  ".join(str(c).ljust(w) for c, (_, w) in zip(cells, self.COLS, strict=True))
        if r.get("reason") and r["status"] not in ("pass", "oracle"):
            line += f"  ({r['reason']})"
        if r.get("flags"):
            line += f"  ! {r['flags']}"
        emit(line.rstrip())


def _num(v, fmt: str, suffix: str = "") -> str:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return f"{v:{fmt}}{suffix}"
    return "-"
