#!/usr/bin/env bash
# cupy_winograd (impls/cuda/conv2d_winograd.cu, F(2x2, 3x3)): correctness first, then the thesis and ResNet-50 3x3
# stride-1 layers against strict-FP32 cuDNN and cupy_opt. At most ~100 s:  bash benchmarks/gpu_winograd.sh
# 1. the gpu tests of tests/impls/cuda/test_conv2d_winograd.py: the kernel against the float64 oracle on its own
#    edge cases (partial tiles, pads 0-2, channels past a block) and on the smoke and edge sets' 3x3 stride-1 rows,
#    against its float32 host model, and weights that change between calls;
# 2. the thesis and resnet50 sets (batch 32), fprop and dgrad, checked and timed by the harness (budget 0.05 s).
# Full outputs under $OUT/winograd/ (pytest log, run folders); a short summary at the end.
set -u
OUT=${OUT:-/tmp/gpu-winograd}
D="$OUT/winograd"
mkdir -p "$D"
export PYTHONUNBUFFERED=1
IMPLS=cupy_winograd,cudnn,cupy_opt
step() {  # step SECONDS NAME CMD...: run with a time limit, full log to $D/NAME.log, its last lines shown
  local limit=$1 name=$2; shift 2
  timeout "$limit" "$@" >"$D/$name.log" 2>&1
  echo "=== $name: exit $?"
}
step 28 pytest python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_winograd.py
tail -3 "$D/pytest.log" | grep -E "passed|failed|error" || tail -5 "$D/pytest.log"
grep -E "^(FAILED|ERROR)" "$D/pytest.log" | head -5
step 28 thesis python3 -m harness run --op conv2d --pass fprop,dgrad --impl $IMPLS --shapes thesis \
    --budget 0.05 --no-report --out "$D/thesis" --force
step 40 resnet50 python3 -m harness run --op conv2d --pass fprop,dgrad --impl $IMPLS --shapes resnet50 \
    --budget 0.05 --no-report --out "$D/resnet50" --force
python3 - "$D" <<'PY'
"""Status counts per run and implementation; per 3x3 stride-1 layer the medians (us) and cupy_winograd's speedup
over cuDNN (cuDNN's median / ours: > 1 is faster); the kernel's registers and spills."""
import sys
from pathlib import Path

import pandas as pd

d = Path(sys.argv[1])
for run in ("thesis", "resnet50"):
    f = d / run / "results.csv"
    if not f.is_file():
        print(f"{run}: no results.csv (see {run}.log)")
        continue
    df = pd.read_csv(f)
    counts = df.groupby("impl").status.value_counts().unstack(fill_value=0)
    print(f"--- {run}: " + "; ".join(f"{i}: " + ", ".join(f"{s} {n}" for s, n in r.items() if n)
                                   for i, r in counts.iterrows()))
    bad = df[~df.status.isin(["pass", "oracle", "skipped", "unsupported"]) & (df.impl == "cupy_winograd")]
    for _, r in bad.head(4).iterrows():
        print(f"  {r['pass']} {r['shape']}: {r['status']} {str(r['reason'])[:110]}")
    w3 = df[df["shape"].str.contains("R=3,S=3,stride=1,") & (df.impl == "cupy_winograd")]
    if len(w3):
        r0 = w3.iloc[0]
        print(f"  cupy_winograd regs {r0.get('kernel_regs')} spill {r0.get('kernel_spill')}")
    print(f"  {'pass':5} {'shape':44} {'wino us':>8} {'cudnn us':>8} {'opt us':>8} {'x cudnn':>7} err/rtol")
    for (p, shape), g in df[df["shape"].str.contains("R=3,S=3,stride=1,")].groupby(["pass", "shape"], sort=False):
        t = g.set_index("impl")
        med = {i: t.median_ms.get(i, float("nan")) * 1e3 for i in ("cupy_winograd", "cudnn", "cupy_opt")}
        x = med["cudnn"] / med["cupy_winograd"]
        st = t.status.get("cupy_winograd", "-")
        er = f"{t.err.get('cupy_winograd', float('nan')):.1e}/{t.rtol.get('cupy_winograd', float('nan')):.1e}"
        short = shape.replace(",R=3,S=3,stride=1", "")
        print(f"  {p:5} {short:44} {med['cupy_winograd']:8.1f} {med['cudnn']:8.1f} {med['cupy_opt']:8.1f} "
              f"{x:7.2f} {st} {er}")
PY
