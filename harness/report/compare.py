"""`python -m harness compare RUN_A RUN_B`: per-case time ratios B/A, with changes beyond the runs' spread marked.

A case is one (op, pass, impl, shape) timed in both runs. Its ratio B/A of median times is a real change only when
it falls outside a band: the sum of the two measurements' relative IQRs plus a floor for what varies between runs
but not within one (clocks, the host's other work, allocation): 5 % on the GPU (reruns of the thesis sample on the
H200: 5–95 % of ratios within 0.96–1.04), 50 % on the CPU. A CPU case's ratios are first divided by the ratio of
its host reference (`host_ref_ms`, a fixed workload timed beside its calls, harness.measure.timing): a shared host
runs slow for stretches of seconds and a case timed in one looks slower for no change of its own; seven reruns of
the same code on the 2-core development machine spread up to 2.35x raw and up to 1.49x after the division, hence
the floor (shown as `host` in the table; runs without the column are judged on raw ratios). `ratio > 1 + band` is a
regression (B slower), `ratio < 1 / (1 + band)` an improvement, anything between is the same, and a change counts
only when the ratio of the two runs' fastest calls (min_ms) agrees: a case can land in a slow mode for a whole run
(BLAS threads) while its fastest calls do not move; a CPU case faster than MIN_CPU_MS in both runs is not judged
("short"): below half a millisecond a CPU time is mostly the interpreter and the cache's state; nor is a CPU case
whose threads, in either run, waited for a CPU for BUSY_WAIT_SHARE of its timing or more even after the timer's
re-timings (`host_wait`, harness.measure.hostwait: another program held a core, or the hypervisor took CPU time),
nor one whose host reference moved by more than HOST_MOVED between the runs ("disturbed" both): such a case can be
many times slower (multi-threaded BLAS: 14x beside a busy loop, 3.8x in a run whose reference was 1.4x slower with
no thread waiting) while the single-threaded reference moves far less, so the division no longer holds; in quiet
hours the reference's own run-to-run ratio stays within ~1.3x (benchmarks/NOTES.md). The command exits
with 1 when a regression is also beyond `--threshold` (default 1.10: at least 10 % slower) or a case that passed in
A does not pass in B, and with 0 otherwise, so that it can gate a change in CI. """

from __future__ import annotations

import math
import sys

import pandas as pd

from harness.argtypes import positive
from harness.errors import UsageError
from harness.measure.hostwait import BUSY_WAIT_SHARE
from harness.results import load_run

KEY = ["op", "pass", "impl", "shape"]
OK_STATUSES = ("pass", "oracle")
DEFAULT_THRESHOLD = 1.10
RUN_TO_RUN = {"gpu": 0.05, "cpu": 0.5}  # the band's floor by device (relative)
MIN_CPU_MS = 0.5
HOST_MOVED = 1.35  # a host reference ratio past this (either way): the CPU case is not judged ("disturbed")


def compare_runs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per case present in both runs: a_ms, b_ms, host (the host reference's B/A, 1 when not recorded),
    ratio (B/A divided by host), band, verdict, a_status, b_status.

    verdict: regression | improvement | same (within the spread) | broken (passed in A, failed or raised in B) |
    fixed (failed in A, passes in B) | failing (in both) | skipped (not run in one of them) | untimed (passed
    but not timed, e.g. a --check-only run) | short (a CPU case too fast to judge) | disturbed (a CPU case timed
    while another program or the hypervisor held a core, or whose host reference moved past HOST_MOVED between
    the runs). Cases skipped in both runs are left out.
    """
    cols = [*KEY, "status", "median_ms", "rel_iqr", "device", "min_ms", "host_ref_ms", "host_wait"]
    defaults = (("device", "cpu"), ("min_ms", None), ("host_ref_ms", None), ("host_wait", None))
    a, b = (df.assign(**{c: df.get(c, default) for c, default in defaults}) for df in (a, b))
    merged = a[cols].merge(b[cols], on=KEY, suffixes=("_a", "_b"), how="inner")
    merged = merged[~((merged["status_a"] == "skipped") & (merged["status_b"] == "skipped"))]
    rows = []
    for _, r in merged.iterrows():
        a_ms, b_ms = _float(r["median_ms_a"]), _float(r["median_ms_b"])
        band = _or_zero(r["rel_iqr_a"]) + _or_zero(r["rel_iqr_b"]) + RUN_TO_RUN.get(r["device_a"], RUN_TO_RUN["cpu"])
        cpu = r["device_a"] != "gpu"
        short = cpu and max(a_ms, b_ms) < MIN_CPU_MS
        waited = max(_or_zero(r["host_wait_a"]), _or_zero(r["host_wait_b"]))
        a_ok, b_ok = r["status_a"] in OK_STATUSES, r["status_b"] in OK_STATUSES
        host = _ratio(r["host_ref_ms_a"], r["host_ref_ms_b"], 1.0)  # GPU rows and older runs have no reference
        moved = max(host, 1 / host) > HOST_MOVED  # the machine itself ran at another speed in one of the runs
        disturbed = cpu and (waited >= BUSY_WAIT_SHARE or moved)
        raw = _ratio(a_ms, b_ms, math.nan)
        ratio = raw / host
        ratio_min = _ratio(r["min_ms_a"], r["min_ms_b"], raw) / host  # runs without min_ms: the medians alone
        if "skipped" in (r["status_a"], r["status_b"]):
            verdict = "skipped"
        elif a_ok and not b_ok:
            verdict = "broken"
        elif b_ok and not a_ok:
            verdict = "fixed"
        elif not (a_ok or b_ok):
            verdict = "failing"
        elif not math.isfinite(ratio):
            verdict = "untimed"
        elif short:
            verdict = "short"
        elif disturbed:
            verdict = "disturbed"
        elif ratio > 1 + band and ratio_min > 1 + band:
            verdict = "regression"
        elif ratio < 1 / (1 + band) and ratio_min < 1 / (1 + band):
            verdict = "improvement"
        else:
            verdict = "same"
        rows.append({**{k: r[k] for k in KEY}, "a_ms": a_ms, "b_ms": b_ms, "host": host, "ratio": ratio, "band": band,
                     "verdict": verdict, "a_status": r["status_a"], "b_status": r["status_b"], "device": r["device_a"]})
    return pd.DataFrame(rows, columns=[*KEY, "a_ms", "b_ms", "host", "ratio", "band", "verdict", "a_status",
                                       "b_status", "device"])


def failing(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The cases that make the comparison fail: regressions slower than `threshold`, and broken cases."""
    return table[((table["verdict"] == "regression") & (table["ratio"] > threshold)) | (table["verdict"] == "broken")]


def format_table(table: pd.DataFrame, threshold: float) -> str:
    """Aligned text: the changed cases first (worst regression first), then the unchanged ones."""
    order = {"broken": 0, "regression": 1, "improvement": 2, "fixed": 3, "failing": 4, "skipped": 5, "untimed": 6,
             "short": 7, "disturbed": 8, "same": 9}
    t = table.assign(_o=table["verdict"].map(order), _r=-table["ratio"].fillna(0)).sort_values(["_o", "_r"])
    header = ["op", "pass", "impl", "shape", "A ms", "B ms", "host", "B/A", "spread", "verdict"]
    lines = []
    for _, r in t.iterrows():
        mark = " !" if r["verdict"] == "broken" or (r["verdict"] == "regression" and r["ratio"] > threshold) else ""
        verdict = r["verdict"]
        if verdict in ("broken", "fixed", "failing", "skipped"):
            verdict += f" ({r['a_status']} -> {r['b_status']})"
        lines.append([r["op"], r["pass"], r["impl"], r["shape"], _fmt(r["a_ms"], ".4g"), _fmt(r["b_ms"], ".4g"),
                      _fmt(r["host"], ".2f"), _fmt(r["ratio"], ".3f"), "±" + _fmt(r["band"], ".1%"), verdict + mark])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *lines])


def _keys(df: pd.DataFrame) -> set[tuple]:
    """The cases of a run that were run (not skipped)."""
    return set(map(tuple, df.loc[df["status"] != "skipped", KEY].astype(str).values))


def _ratio(a, b, missing: float) -> float:
    """b / a, or `missing` when either is not a positive number."""
    fa, fb = _float(a), _float(b)
    return fb / fa if fa > 0 and fb > 0 else missing


def _or_zero(v) -> float:
    """A recorded positive figure (a relative IQR, a wait share); 0 when it was not recorded."""
    f = _float(v)
    return f if math.isfinite(f) and f > 0 else 0.0


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _fmt(v, fmt: str) -> str:
    f = _float(v)
    return f"{f:{fmt}}" if math.isfinite(f) else "-"


def cmd_compare(args) -> int:
    if args.threshold < 1.0:
        raise UsageError(f"--threshold must be >= 1 (a slowdown factor such as 1.10), got {args.threshold:g}")
    a, _ = load_run(args.run_a)
    b, _ = load_run(args.run_b)
    table = compare_runs(a, b)
    if table.empty:
        raise UsageError(f"'{args.run_a}' and '{args.run_b}' have no case (op, pass, impl, shape) in common")
    floors = ", ".join(f"{d} {v:.0%}" for d, v in RUN_TO_RUN.items())
    print(f"A = {args.run_a}\nB = {args.run_b}\nB/A = ratio of median times (> 1: B slower), on the CPU divided by "
          f"host = the host reference's B/A; spread = rel. IQR of A + B + run-to-run floor ({floors})\n")
    print(format_table(table, args.threshold))
    counts = table["verdict"].value_counts()
    keys_a, keys_b = _keys(a), _keys(b)
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    print(f"\n{len(table)} common cases: {summary}; {len(keys_a - keys_b)} cases only in A, "
          f"{len(keys_b - keys_a)} only in B (not compared)")
    for device, g in table[table["ratio"].notna()].groupby("device"):
        r = g["ratio"]
        print(f"{device} ratios B/A over {len(r)} timed cases: median {r.median():.3f}, 5-95 % "
              f"{r.quantile(0.05):.2f}..{r.quantile(0.95):.2f}, within 10 %: {int(((r - 1).abs() <= 0.10).sum())}")
    bad = failing(table, args.threshold)
    if len(bad):
        print(f"FAIL: {len(bad)} cases regressed beyond {args.threshold:g}x or stopped passing (marked !)",
              file=sys.stderr)
        return 1
    return 0


def add_commands(subparsers) -> None:
    """Adds `compare RUN_A RUN_B [--threshold X]` to the harness CLI."""
    p = subparsers.add_parser("compare", help="per-case time ratios between two runs; exit 1 on a regression")
    p.add_argument("run_a", metavar="RUN_A", help="the reference run folder (before)")
    p.add_argument("run_b", metavar="RUN_B", help="the run folder to judge (after)")
    p.add_argument("--threshold", type=positive, default=DEFAULT_THRESHOLD,
                   help=f"fail when a case is this many times slower in B, beyond the spread "
                        f"(default {DEFAULT_THRESHOLD})")
    p.set_defaults(func=cmd_compare)
