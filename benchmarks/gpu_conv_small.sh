#!/usr/bin/env bash
# Issue 12, item 4: cupy_opt's conv2d and maxpool2d on the thesis layers (batch 32) against cuDNN, at most 120 s.
#   bash benchmarks/gpu_conv_small.sh        (from the repository root; results under $OUT/conv_small)
# 1. correctness: the gpu tests of the conv2d kernels (every small-kernel split forced, the old BK = 8 choice
#    beside it) and of maxpool2d (the odd-width cell kernel);
# 2. diagnosis and tuning sweep: benchmarks/conv_probe.py times every candidate launch per thesis layer (GEMM and
#    splitk_reduce separately, cold L2, held stream) -> $OUT/conv_small/probe.csv, probe.txt; the same for fprop
#    and dgrad with a warm L2 (no flush) -> probe_warm.csv: cold minus warm = the cost of the dependent HBM round
#    trips; Nsight Compute on the small fprop kernel unsplit at 1, 5, 9 and 1 slices per block (C3 12x12, C16 6x6,
#    C32 10x10, C3 50x50), the direct fprop and its split form on the same layers, the narrow dgrad (C3 12x12,
#    C3 50x50) and the split dgrad, L2 flushed by ncu -> ncu.csv (raw page), ncu.txt; the first launch of each kernel and grid summarised;
# 3. the harness run (checks every row against the oracle, then times): conv2d + maxpool2d, thesis, cupy_opt vs
#    cudnn -> $OUT/conv_small/thesis/results.csv;
# then a short summary: test counts, per layer the chosen and the fastest candidate of the probe, the harness's
# cuDNN/cupy_opt ratios per layer and pass (> 1: cupy_opt faster).
set -u
OUT=${OUT:-/tmp/gpu-conv-small}
D="$OUT/conv_small"
mkdir -p "$D"
export PYTHONUNBUFFERED=1

timeout 23 python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_small.py \
    tests/impls/cuda/test_conv2d_cuda.py tests/impls/cuda/test_maxpool2d_cuda.py \
    -k "not past_2_31 and not cupy_naive and not cupy_im2col_cublas" > "$D/pytest.txt" 2>&1
echo "pytest rc=$?: $(tail -1 "$D/pytest.txt")"
grep -E "^(FAILED|ERROR)" "$D/pytest.txt" | head -4

timeout 18 python3 benchmarks/conv_probe.py --set thesis --passes fprop,dgrad,wgrad --reps 20 --csv "$D/probe.csv" \
    > "$D/probe.txt" 2>&1
echo "probe rc=$?"
timeout 8 python3 benchmarks/conv_probe.py --set thesis --passes fprop,dgrad --reps 10 --warm \
    --csv "$D/probe_warm.csv" > "$D/probe_warm.txt" 2>&1
echo "probe --warm rc=$?"

NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
NCU=${NCU:-ncu}
timeout 24 "$NCU" --clock-control none --cache-control all -f -o "$D/ncu" \
    -k "regex:conv_fprop_128x32_s|conv_fprop_direct|conv_dgrad_narrow|conv_dgrad_direct" --launch-count 20 \
    --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
    --metrics smsp__inst_executed.max,smsp__cycles_active.max \
    python3 benchmarks/conv_probe.py --set thesis --passes fprop,dgrad --layers "C3 12x12,C16 6x6,C32 10x10,C3 50x50" \
    --only "conv_fprop_128x32_s/1,conv_fprop_direct,conv_fprop_direct_split,conv_dgrad_narrow,conv_dgrad_direct_split" --reps 1 --plain > "$D/ncu.txt" 2>&1
echo "ncu rc=$? ($(grep -c '==PROF== Profiling' "$D/ncu.txt") launches profiled)"
timeout 3 "$NCU" --import "$D/ncu.ncu-rep" --csv --page raw > "$D/ncu.csv" 2>>"$D/ncu.txt" \
    && timeout 2 python3 benchmarks/ncu_conv_summary.py "$D/ncu.csv" || tail -3 "$D/ncu.txt"
rm -f "$D/ncu.ncu-rep"  # ncu.csv holds every metric of it

timeout 38 python3 -m harness run --op conv2d,maxpool2d --shapes thesis --impl cupy_opt,cudnn --budget 0.05 \
    --no-report --out "$D/thesis" > "$D/harness.txt" 2>&1
echo "harness rc=$?"

timeout 4 python3 - "$D" <<'PY'
import sys
from pathlib import Path

import pandas as pd

d = Path(sys.argv[1])
warm = pd.read_csv(d / "probe_warm.csv") if (d / "probe_warm.csv").is_file() else None
if (d / "probe.csv").is_file():
    p = pd.read_csv(d / "probe.csv")
    print("probe (us), per pass: chosen kernel/splits total [fastest if another] (BK=8 or narrow total) "
          "warm-L2 total of the chosen")
    for layer, lg in p.groupby("layer", sort=False):
        cells = []
        for pass_, g in lg.groupby("pass_", sort=False):
            c, f, b = g[g.chosen].iloc[0], g.loc[g.total_us.idxmin()], g.iloc[0]
            tag = f.func.split("_")[-2] + "s" if f.func.endswith("_s") else f.func.split("_")[-1]
            best = "" if f.equals(c) else f" [{tag}/{f.splits} {f.total_us:.1f}]"
            bad = f" RELDIFF {g.reldiff.max():.0e}" if g.reldiff.max() > 1e-4 else ""
            if warm is not None:
                wc = warm[(warm.layer == layer) & (warm.pass_ == pass_) & (warm.func == c.func)
                          & (warm.splits == c.splits)]
                bad += f" w{wc.total_us.iloc[0]:.1f}" if len(wc) else ""
            cells.append(f"{pass_} {c.func.split('_')[-1 if not c.func.endswith('_s') else -2]}/{c.splits} "
                         f"{c.total_us:.1f}{best} ({b.total_us:.1f}){bad}")
        print(f"{layer:17} " + " | ".join(cells))
else:
    print("no probe.csv:", (d / "probe.txt").read_text()[-600:] if (d / "probe.txt").is_file() else "no probe.txt")
csv = d / "thesis" / "results.csv"
if not csv.is_file():
    print("no harness results:", (d / "harness.txt").read_text()[-600:] if (d / "harness.txt").is_file() else "")
    sys.exit()
r = pd.read_csv(csv)
print("status:", {f"{i}/{s}": n for (i, s), n in r.groupby(["impl", "status"]).size().items()})
bad = r[~r.status.isin(["pass", "oracle"])]
for _, b in bad.head(3).iterrows():
    print("  BAD", b["op"], b["pass"], b["impl"], b["shape"], b["status"], str(b["reason"])[:80])
t = r.pivot_table(index=["op", "shape"], columns=["pass", "impl"], values="median_ms")
print("cuDNN / cupy_opt (> 1: ours faster); cupy_opt us in brackets")
for (op, shape), row in t.iterrows():
    cells = []
    for pass_ in ("fprop", "dgrad", "wgrad", "fwd", "bwd"):
        if (pass_, "cupy_opt") in row.index and pd.notna(row.get((pass_, "cupy_opt"))):
            ours, ref = row[(pass_, "cupy_opt")] * 1e3, row.get((pass_, "cudnn"), float("nan")) * 1e3
            cells.append(f"{pass_} {ref / ours:4.2f} ({ours:5.1f})")
    print(f"{op[:7]:7} {shape.split(',R=')[0].replace('N=32,', ''):22} " + "  ".join(cells))
for (op, pass_), g in r[r.impl.isin(["cupy_opt", "cudnn"])].groupby(["op", "pass"]):
    s = g.pivot_table(index="shape", columns="impl", values="median_ms").dropna()
    if len(s):
        print(f"sum {op} {pass_}: cudnn/cupy_opt {s.cudnn.sum() / s.cupy_opt.sum():.2f}, "
              f"worst layer {(s.cudnn / s.cupy_opt).min():.2f}, layers ahead {(s.cudnn >= s.cupy_opt).sum()}/{len(s)}")
PY
