"""Summarise run folders into the tables quoted in the notes: one line per (op, pass, implementation, shape set).

    python benchmarks/summarize.py RUN_DIR [RUN_DIR ...] [--naive cupy_naive] [--match REGEX]

Columns: cases (passing / total), total median time over the set's shapes, best and worst rate (TFLOP/s for
compute-bound ops, GB/s for memory-bound ones), best % of the measured peak, and the geometric-mean speedup over
the run's baseline and over the naive kernel, per shape, then averaged. Same-math rule as the harness: speedups
over the naive kernel are given for fp32 rows only. --match keeps the shapes whose string matches REGEX (e.g.
`groups=` for the depthwise layers of the depthwise set); gbps_min/gbps_max give the minimal-traffic rate
beside a compute-bound op's TFLOP/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.ops import get_op
from harness.results import load_run


def geomean(values: pd.Series) -> float:
    v = values.dropna()
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def summarize(df: pd.DataFrame, naive: str) -> pd.DataFrame:
    rows = []
    timed = df[df.median_ms.notna()]
    for (op, pass_, impl, sset), g in df.groupby(["op", "pass", "impl", "shape_set"], sort=False):
        t = timed[(timed.op == op) & (timed["pass"] == pass_) & (timed.impl == impl) & (timed.shape_set == sset)]
        bound = get_op(op).bound if op != "allreduce" else "memory"
        rate = t.gflops / 1e3 if bound == "compute" else t.gbps
        ref = timed[(timed.op == op) & (timed["pass"] == pass_) & (timed.impl == naive) & (timed.shape_set == sset)]
        vs_naive = t.set_index("shape").median_ms.rdiv(ref.set_index("shape").median_ms) if len(ref) else None
        rows.append({
            "op": op, "pass": pass_, "impl": impl, "set": sset, "math": g.math.iloc[0],
            "pass/total": f"{int(g.status.isin(['pass', 'oracle']).sum())}/{len(g)}",
            "total_ms": t.median_ms.sum() if len(t) else np.nan,
            "rate_min": rate.min(), "rate_max": rate.max(), "unit": "TFLOP/s" if bound == "compute" else "GB/s",
            "pct_peak_max": t.pct_peak.max(), "gbps_min": t.gbps.min(), "gbps_max": t.gbps.max(),
            "x_baseline": geomean(t.speedup) if "speedup" in t else np.nan,
            "x_naive": geomean(vs_naive) if vs_naive is not None and g.math.iloc[0] == "fp32" else np.nan,
        })
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--naive", default="cupy_naive")
    ap.add_argument("--match", default="", help="keep only the shapes whose string matches this regex")
    args = ap.parse_args()
    for run in args.runs:
        df, meta = load_run(run)
        print(f"\n{run}: {meta.get('gpu', meta.get('cpu', '?'))}; {meta.get('command', '')}")
        df = df[df["shape"].str.contains(args.match, regex=True)] if args.match else df
        out = summarize(df[df.status != "skipped"], args.naive)
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
