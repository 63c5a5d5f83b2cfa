"""Timed rows of run folders with their GPU time, host time and flags: `python benchmarks/flag_table.py RUN...`.

Prints, per run, how many timed rows carry flags and which, the failing statuses, and the small cases where the host
time (launch + device-wide sync) is far above the GPU time: the figures the timing issue's note quotes.
"""

from __future__ import annotations

import sys

import pandas as pd

from harness.report.figures import flagged_rows
from harness.results import load_run


def main(run_dirs: list[str]) -> None:
    for d in run_dirs:
        df, meta = load_run(d)
        timed = df[pd.to_numeric(df["median_ms"], errors="coerce") > 0]
        flagged = timed[flagged_rows(timed)]
        print(f"\n== {d}: {meta.get('gpu', meta.get('cpu'))}, L2 {meta.get('l2')}, timing {meta.get('timing')}: "
              f"{len(timed)} timed rows, {len(flagged)} flagged; statuses {df['status'].value_counts().to_dict()}")
        for _, r in flagged.iterrows():
            print(f"  {r['op']}/{r['pass']} {r['impl']} {r['shape']}: {r['median_ms']:.4g} ms; {r['flags']}")
        gpu = timed[timed["device"] == "gpu"]
        if len(gpu) and "host_ms" in gpu:
            ratio = (gpu["host_ms"] / gpu["median_ms"]).rename("host/gpu")
            print(f"  GPU rows: GPU time quartiles {_quartiles_us(gpu['median_ms'])} us, host time "
                  f"{_quartiles_us(gpu['host_ms'])} us, host/GPU median {ratio.median():.1f}x")
            t = gpu.assign(ratio=ratio).sort_values("median_ms").head(8)
            print(t[["op", "pass", "impl", "shape", "median_ms", "host_ms", "ratio"]].to_string(index=False))


def _quartiles_us(ms: pd.Series) -> str:
    return "/".join(f"{v * 1e3:.0f}" for v in ms.quantile([0.25, 0.5, 0.75]))


if __name__ == "__main__":
    main(sys.argv[1:])
