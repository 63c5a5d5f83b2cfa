"""Where one kernel's issue slots go, from an Nsight Compute SASS source page (`ncu --import R --page source --csv
--print-source sass | gzip`, as benchmarks/gpu_session.sh parts P and N write it): warp instructions executed, the
FFMA share, instructions per opcode per FFMA-carrying k step (FFMA count / FFMAS_PER_STEP), the not-issued warp
samples by stall reason, and the instructions with the most not-issued samples. The figures of NOTES.md's gemm
v7.2–v7.5 paragraphs come from it.

    python benchmarks/ncu_sass_summary.py SASS.csv.gz [--kernel sgemm_wt] [--ffmas-per-step 128] [--top 12]
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip


def load(path: str, kernel: str) -> list[dict[str, str]]:
    """The SASS rows (one per instruction) of the first kernel whose name contains `kernel`."""
    rows, name, header = [], None, None
    with gzip.open(path, "rt") as f:
        for r in csv.reader(f):
            if r and r[0] == "Kernel Name":
                if rows:
                    break
                name, header = r[1], None
            elif r and r[0] == "Address":
                header = r
            elif header and name and kernel in name:
                rows.append(dict(zip(header, r, strict=False)))
    return rows


def opcode(source: str) -> str:
    """The opcode of one SASS line without its predicate and modifiers ("@!P0 LDS.128 R4, [R2]" -> "LDS")."""
    words = source.split()
    return (words[1] if words[0].startswith("@") else words[0]).split(".")[0]


def count(v: str) -> int:
    return int(v.replace(",", "") or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sass")
    ap.add_argument("--kernel", default="sgemm_wt")
    ap.add_argument("--ffmas-per-step", type=int, default=128, help="FFMAs per lane per k step (8x16 lane tile)")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    rows = load(a.sass, a.kernel)
    if not rows:
        raise SystemExit(f"{a.sass}: no kernel whose name contains {a.kernel!r}")
    executed = collections.Counter()
    stalls = collections.Counter()
    for r in rows:
        executed[opcode(r["Source"])] += count(r["Instructions Executed"])
        for key, v in r.items():
            if key.startswith("stall_") and key.endswith("(Not Issued)"):
                stalls[key.removeprefix("stall_").removesuffix(" (Not Issued)")] += count(v)
    total = sum(executed.values())
    steps = executed["FFMA"] / a.ffmas_per_step
    print(f"warp instructions {total:.4g}, FFMA {executed['FFMA'] / total:.1%}")
    print("per k step:", ", ".join(f"{op} {n / steps:.2f}" for op, n in executed.most_common(14)))
    print(f"not issued ({sum(stalls.values())} samples):", ", ".join(f"{k} {v}" for k, v in stalls.most_common(10)))
    worst = sorted(rows, key=lambda r: -count(r["Warp Stall Sampling (Not-issued Samples)"]))[:a.top]
    for r in worst:
        print(f"  {count(r['Warp Stall Sampling (Not-issued Samples)']):6d}  {r['Source'].strip()[:70]}")


if __name__ == "__main__":
    main()
