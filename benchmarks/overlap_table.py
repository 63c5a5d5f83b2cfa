"""One markdown line per multi-GPU case of `train-bench --gpus` run folders: the table in NOTES.md's data-parallel
section.

    python benchmarks/overlap_table.py reports/sample-h200x2-scaling/scaling-*

Columns: the step without any exchange, the all-reduces alone, the step with overlap off and on (median round,
min..max over rounds), what the exchange adds to each, the overlap gain, the share of the added time that overlap
took back, and the scaling efficiency with overlap on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HEADER = ("| model | batch/GPU | GPUs | NCCL channels | bucket MiB | no exchange | all-reduce alone | off (min..max) "
          "| on (min..max) | added off / on | gain | hidden | efficiency on |")


def lines(run_dir: Path) -> list[str]:
    df = pd.read_csv(run_dir / "scaling.csv")
    out = []
    for (model, gpus), g in df[df.gpus > 1].groupby(["model", "gpus"], sort=False):
        off, on = g[g.overlap == "off"].iloc[0], g[g.overlap == "on"].iloc[0]
        out.append(f"| {model} | {on.batch_per_gpu} | {gpus} | {on.nccl_channels} | {on.bucket_mb:g} "
                   f"| {on.compute_ms:.3f} | {on.comm_ms:.3f} "
                   f"| {off.ms_per_step:.3f} ({off.ms_min:.3f}..{off.ms_max:.3f}) "
                   f"| {on.ms_per_step:.3f} ({on.ms_min:.3f}..{on.ms_max:.3f}) "
                   f"| {off.ms_per_step - on.compute_ms:.3f} / {on.ms_per_step - on.compute_ms:.3f} "
                   f"| {on.overlap_gain:.3f} | {on.comm_hidden:.0%} | {on.efficiency:.3f} |")
    return out


def main() -> int:
    print(HEADER)
    print("|" + " --- |" * HEADER.count(" | ") + " --- |")
    for arg in sys.argv[1:]:
        print("\n".join(lines(Path(arg))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
