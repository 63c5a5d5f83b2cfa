"""One line per kernel launch of an Nsight Compute report exported as `ncu --import R --csv --page raw`: duration,
grid, registers, achieved occupancy, the busiest SMSP's issue rate, and the top warp stall reasons (cycles per
issued instruction); repeats of a (kernel, grid) pair are skipped. Used by benchmarks/gpu_conv_small.sh to find
the small conv kernels' latency floor.

    python benchmarks/ncu_conv_summary.py RAW.csv [--top 5]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys

STALL = re.compile(r"smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio$")
TO_US = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


def num(v: str) -> float:
    """A raw-page value as a float (thousands separators dropped; nan when not a number)."""
    try:
        return float(v.replace(",", ""))
    except ValueError:
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw")
    ap.add_argument("--top", type=int, default=5)
    a = ap.parse_args()
    with open(a.raw, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("==")]
    if len(rows) < 3:
        sys.exit(f"no kernel rows in {a.raw}")
    head, units, data = rows[0], rows[1], rows[2:]
    col = {name: i for i, name in enumerate(head)}

    def get(r: list[str], name: str) -> float:
        return num(r[col[name]]) if name in col else float("nan")

    seen = set()
    for r in data:
        name = r[col["Kernel Name"]] if "Kernel Name" in col else "?"
        grid = r[col["launch__grid_size"]] if "launch__grid_size" in col else "?"
        if (name, grid) in seen:  # the same launch again (the probe's warm-up and repeats): the first is enough
            continue
        seen.add((name, grid))
        dur = get(r, "gpu__time_duration.sum") * TO_US.get(units[col.get("gpu__time_duration.sum", 0)], 1.0)
        stalls = sorted(((get(r, h), m.group(1)) for h, m in ((h, STALL.match(h)) for h in head) if m),
                        reverse=True)
        total = sum(v for v, _ in stalls if v == v)
        top = ", ".join(f"{s} {v:.1f}" for v, s in stalls[: a.top])
        inst, cyc = get(r, "smsp__inst_executed.max"), get(r, "smsp__cycles_active.max")
        print(f"{name[:22]:22} grid {grid:>5} "
              f"{dur:6.1f}us regs {get(r, 'launch__registers_per_thread'):.0f} "
              f"occ {get(r, 'sm__warps_active.avg.pct_of_peak_sustained_active'):.0f}% "
              f"busiest-SMSP issue {inst / cyc if cyc else float('nan'):.2f}/clk ({cyc:.0f} clk) "
              f"stall cyc/inst {total:.0f}: {top}")


if __name__ == "__main__":
    main()
