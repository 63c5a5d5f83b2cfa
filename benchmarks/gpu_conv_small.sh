#!/usr/bin/env bash
# Issue 12, item 4: cupy_opt's conv2d and maxpool2d on the thesis layers (batch 32) against cuDNN, at most 110 s.
#   bash benchmarks/gpu_conv_small.sh        (from the repository root; results under $OUT/conv_small)
# 1. correctness: the gpu tests of the conv2d kernels (every small-kernel split forced, the old BK = 8 choice
#    beside it) and of maxpool2d (the odd-width cell kernel);
# 2. diagnosis and tuning sweep: benchmarks/conv_probe.py times every candidate launch per thesis layer (GEMM and
#    splitk_reduce separately, cold L2, held stream) -> $OUT/conv_small/probe.csv, probe.txt;
# 3. the harness run (checks every row against the oracle, then times): conv2d + maxpool2d, thesis, cupy_opt vs
#    cudnn -> $OUT/conv_small/thesis/results.csv;
# then a short summary: test counts, per layer the chosen and the fastest candidate of the probe, the harness's
# cuDNN/cupy_opt ratios per layer and pass (> 1: cupy_opt faster).
set -u
OUT=${OUT:-/tmp/gpu-conv-small}
D="$OUT/conv_small"
mkdir -p "$D"
export PYTHONUNBUFFERED=1

timeout 38 python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_small.py \
    tests/impls/cuda/test_conv2d_cuda.py tests/impls/cuda/test_maxpool2d_cuda.py \
    -k "not past_2_31 and not cupy_naive and not cupy_im2col_cublas" > "$D/pytest.txt" 2>&1
echo "pytest rc=$?: $(tail -1 "$D/pytest.txt")"
grep -E "^(FAILED|ERROR)" "$D/pytest.txt" | head -4

timeout 24 python3 benchmarks/conv_probe.py --set thesis --passes fprop,dgrad,wgrad --reps 40 --csv "$D/probe.csv" \
    > "$D/probe.txt" 2>&1
echo "probe rc=$?"

timeout 44 python3 -m harness run --op conv2d,maxpool2d --shapes thesis --impl cupy_opt,cudnn --budget 0.05 \
    --no-report --out "$D/thesis" > "$D/harness.txt" 2>&1
echo "harness rc=$?"

timeout 6 python3 - "$D" <<'PY'
import sys
from pathlib import Path

import pandas as pd

d = Path(sys.argv[1])
if (d / "probe.csv").is_file():
    p = pd.read_csv(d / "probe.csv")
    print("probe (us), per pass: chosen kernel/splits total [fastest if another] (BK=8 or narrow total)")
    for layer, lg in p.groupby("layer", sort=False):
        cells = []
        for pass_, g in lg.groupby("pass_", sort=False):
            c, f, b = g[g.chosen].iloc[0], g.loc[g.total_us.idxmin()], g.iloc[0]
            tag = f.func.split("_")[-2] + "s" if f.func.endswith("_s") else f.func.split("_")[-1]
            best = "" if f.equals(c) else f" [{tag}/{f.splits} {f.total_us:.1f}]"
            bad = f" RELDIFF {g.reldiff.max():.0e}" if g.reldiff.max() > 1e-4 else ""
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
