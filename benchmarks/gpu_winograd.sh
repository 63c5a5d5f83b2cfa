#!/usr/bin/env bash
# cupy_winograd_f2 (impls/cuda/conv2d_winograd.cu, F(2x2, 3x3); the choice rule between kernels v1 and v2) and
# cupy_winograd_v1 (v1 forced): correctness first, then the thesis and ResNet-50 3x3 stride-1 layers against
# strict-FP32 cuDNN. At most ~130 s:  bash benchmarks/gpu_winograd.sh
# 1. the gpu tests of tests/impls/cuda/test_conv2d_winograd.py: both kernels against the float64 oracle on its own
#    edge cases (partial tiles, pads 0-2, channels past a block) and on the smoke and edge sets' 3x3 stride-1 rows,
#    against its float32 host model, and weights that change between calls (the slowest three tests shown);
#    then, as a step of its own, tests/impls/nvidia/test_cudnn_numerics.py (cuDNN's Winograd notes are read);
# 2. the thesis and resnet50 sets (batch 32), fprop and dgrad, checked and timed by the harness (budget 0.05 s).
#    Table column cuW: what cuDNN's plan declared (F2 = F(2x2,3x3), F4 = F(4x4,3x3), W? = Winograd of an unknown
#    tile, - = no Winograd note, ? = notes unknown, see the run's results.csv note).
# Full outputs under $OUT/winograd/ (pytest log, run folders); a short summary at the end.
set -u
OUT=${OUT:-/tmp/gpu-winograd}
D="$OUT/winograd"
mkdir -p "$D"
export PYTHONUNBUFFERED=1
IMPLS=cupy_winograd_f2,cupy_winograd_v1,cudnn
step() {  # step SECONDS NAME CMD...: run with a time limit, full log to $D/NAME.log, its last lines shown
  local limit=$1 name=$2; shift 2
  timeout "$limit" "$@" >"$D/$name.log" 2>&1
  echo "=== $name: exit $?"
}
step 40 pytest python3 -m pytest -m gpu -q -p no:cacheprovider --durations=5 tests/impls/cuda/test_conv2d_winograd.py
tail -3 "$D/pytest.log" | grep -E "passed|failed|error" || tail -5 "$D/pytest.log"
grep -E "^(FAILED|ERROR)" "$D/pytest.log" | head -5
grep -E "^[0-9.]+s (call|setup)" "$D/pytest.log" | head -3
step 25 cudnn-numerics python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/nvidia/test_cudnn_numerics.py
tail -3 "$D/cudnn-numerics.log" | grep -E "passed|failed|error" || tail -5 "$D/cudnn-numerics.log"
step 25 thesis python3 -m harness run --op conv2d --pass fprop,dgrad --impl $IMPLS --shapes thesis \
    --budget 0.05 --no-report --out "$D/thesis" --force
step 38 resnet50 python3 -m harness run --op conv2d --pass fprop,dgrad --impl $IMPLS --shapes resnet50 \
    --budget 0.05 --no-report --out "$D/resnet50" --force
python3 - "$D" <<'PY'
"""Status counts per run and implementation; per 3x3 stride-1 layer the medians (us), the kernel the choice rule
ran (v1/v2, from the row's note) and the speedups of cupy_winograd_f2 and of v1 over cuDNN (cuDNN's median / ours:
> 1 is faster); the kernels' registers and spills."""
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
    bad = df[~df.status.isin(["pass", "oracle", "skipped", "unsupported"]) & df.impl.str.startswith("cupy_winograd")]
    for _, r in bad.head(4).iterrows():
        print(f"  {r['pass']} {r['shape']}: {r['status']} {str(r['reason'])[:110]}")
    w3 = df[df["shape"].str.contains("R=3,S=3,stride=1,") & (df.impl == "cupy_winograd_f2")]
    if len(w3):
        r0 = w3.iloc[0]
        print(f"  cupy_winograd_f2 regs {r0.get('kernel_regs')} spill {r0.get('kernel_spill')}")
    print(f"  {'pass':5} {'shape':44} {'ker':3} {'wino us':>8} {'cudnn us':>8} {'v1 us':>8} {'x cudnn':>7} "
          f"{'v1 x':>5} cuW err/rtol")
    for (p, shape), g in df[df["shape"].str.contains("R=3,S=3,stride=1,")].groupby(["pass", "shape"], sort=False):
        t = g.set_index("impl")
        med = {i: t.median_ms.get(i, float("nan")) * 1e3 for i in ("cupy_winograd_f2", "cudnn", "cupy_winograd_v1")}
        x, x1 = med["cudnn"] / med["cupy_winograd_f2"], med["cudnn"] / med["cupy_winograd_v1"]
        note = str(t.note.get("cupy_winograd_f2", "")) if "note" in t else ""
        ker = "v2" if f"{p} wino_conv_f2_outer" in note else "v1" if f"{p} wino_conv_f2" in note else "?"
        st = t.status.get("cupy_winograd_f2", "-")
        er = f"{t.err.get('cupy_winograd_f2', float('nan')):.1e}/{t.rtol.get('cupy_winograd_f2', float('nan')):.1e}"
        short = shape.replace(",R=3,S=3,stride=1", "")
        cn = str(t.note.get("cudnn", "")) if "note" in t else ""
        cud = ("F2" if "checked as winograd-f2x2" in cn else "F4" if "checked as winograd-f4x4" in cn else
               "W?" if "no transform known" in cn else "-" if "no Winograd numerical note" in cn else "?")
        print(f"  {p:5} {short:44} {ker:3} {med['cupy_winograd_f2']:8.1f} {med['cudnn']:8.1f} "
              f"{med['cupy_winograd_v1']:8.1f} {x:7.2f} {x1:5.2f} {cud:3} {st} {er}")
PY
