"""Does the CPU timer's host reference follow the host's slow stretches? (harness.measure.timing, host_ref_ms)

Runs the same CPU cases (conv2d numpy_ref and numpy_opt on the edge shapes, the compare test's run) N times back to
back in fresh processes and prints, over the cases of at least MIN_CPU_MS, the spread between runs (max/min per
case) of the raw median times, of the host reference, and of their ratio (what `harness compare` judges), and the
correlation of the raw and reference log deviations from each case's median. With `--busy N`, every second run has
N busy-loop processes beside it (another tenant holding cores), and each pair of runs is also judged by `harness
compare`: how many cases it calls a regression, and how many it leaves unjudged as disturbed (host_wait).

    python benchmarks/host_reference.py [--runs 7] [--budget 0.05] [--busy 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness.report.compare import DEFAULT_THRESHOLD, KEY, MIN_CPU_MS, compare_runs, failing
from harness.results import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--budget", default="0.05")
    p.add_argument("--busy", type=int, default=0, help="busy-loop processes beside every second run")
    args = p.parse_args()
    tables, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"r{i}"
            busy = args.busy if i % 2 else 0
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                subprocess.run([sys.executable, "-m", "harness", "run", "--op", "conv2d", "--impl",
                                "numpy_ref,numpy_opt", "--shapes", "edge", "--budget", args.budget, "--no-report",
                                "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
            df = load_run(out)[0]
            runs.append(df)
            tables.append(df[df["median_ms"].notna()].set_index(KEY)[["median_ms", "host_ref_ms"]])
            print(f"run {i + 1}/{args.runs} done ({busy} busy loops beside it)", file=sys.stderr)
    keys = tables[0].index
    med = np.array([t.loc[keys, "median_ms"].to_numpy(float) for t in tables])
    ref = np.array([t.loc[keys, "host_ref_ms"].to_numpy(float) for t in tables])
    judged = med.max(axis=0) >= MIN_CPU_MS
    med, ref = med[:, judged], ref[:, judged]
    print(f"{args.runs} runs, {judged.sum()} cases of at least {MIN_CPU_MS} ms; max/min per case over the runs:")
    for name, x in (("raw median", med), ("host reference", ref), ("median / reference", med / ref)):
        s = x.max(axis=0) / x.min(axis=0)
        print(f"  {name:20s} median {np.median(s):.2f}  p90 {np.quantile(s, 0.9):.2f}  max {s.max():.2f}")
    dev = [np.log(x / np.median(x, axis=0)).ravel() for x in (med, ref)]
    print(f"  correlation of the raw and reference log deviations: {np.corrcoef(*dev)[0, 1]:.2f}")
    for i in range(0, args.runs - 1, 2):
        table = compare_runs(runs[i], runs[i + 1])
        counts = table["verdict"].value_counts()
        print(f"  compare run {i + 1} -> {i + 2}: {counts.get('regression', 0)} regression, "
              f"{len(failing(table, DEFAULT_THRESHOLD))} failing, {counts.get('disturbed', 0)} disturbed, "
              f"{counts.get('same', 0)} same")


if __name__ == "__main__":
    main()
