#!/usr/bin/env bash
# SGEMM ladder and cupy_opt (issue 12, items 1, 5, 6), at most ~490 s on the H200:  bash benchmarks/gpu_gemm.sh
# (a) correctness: the gemm GPU tests (every ladder step and every cupy_opt configuration x layout x split-K
#     against float64 on awkward sizes, the autotuner, 64-bit offsets); the first process also fills CuPy's
#     kernel cache, so the later steps do not recompile gemm_warptile.cu (~20 s).
# (b) the configuration sweep (benchmarks/gemm_tune.py): every cupy_opt configuration vs cuBLAS, nn and nt, strict
#     FP32; then Nsight Compute on the 4096³ nn launch of the v6 (128×128) and v7 (128×256) configurations (ncu.txt).
# (c) harness runs (checked against the oracle, then timed by the harness's timer): gemm-square with the whole
#     ladder + cublas fwd, and cupy_naive/cupy_opt/cublas bwd; gemm-tall and thesis with cupy_naive,cupy_opt,cublas.
# Full outputs under $OUT/gemm/; a short summary last.
set -u
OUT=${OUT:-/tmp/gpu-gemm}
D="$OUT/gemm"
mkdir -p "$D/runs"
export PYTHONUNBUFFERED=1
export KH_GEMM_TUNE_CACHE="$D/gemm-tune.json"  # the tuner's choices come back with the outputs
LADDER=cupy_naive,cupy_v2_smem,cupy_v3_regblock1d,cupy_v4_regblock2d,cupy_v5_vec_dbuf,cupy_v6_warptile,cupy_opt,cublas
step() { local limit=$1 log=$2; shift 2; echo "=== $* (limit ${limit}s)" >> "$D/steps.txt";
         local t0=$SECONDS; timeout "$limit" "$@" > "$D/$log" 2>&1; local rc=$?
         echo "$log: rc=$rc in $((SECONDS - t0)) s" >> "$D/steps.txt"; }
: > "$D/steps.txt"

step 150 pytest.log python3 -m pytest -m gpu -q -p no:cacheprovider --durations=5 \
    tests/impls/cuda/test_gemm_ladder.py tests/impls/cuda/test_gemm_cuda.py
step 90 sweep.log python3 benchmarks/gemm_tune.py --out "$D" --reps 10 --layouts nn,nt
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
step 60 ncu.txt "${NCU:-ncu}" --clock-control none --cache-control all --section SpeedOfLight --section WarpStateStats \
    --section Occupancy --section InstructionStats -k regex:sgemm_wt python3 benchmarks/gemm_tune.py --shapes 4096 \
    --plain --configs b128x128k16s3,b128x256k16s3
step 150 run-square.log python3 -m harness run --op gemm --pass fwd --shapes gemm-square --impl "$LADDER" \
    --budget 0.05 --no-report --out "$D/runs/square-fwd"
step 60 run-square-bwd.log python3 -m harness run --op gemm --pass bwd --shapes gemm-square \
    --impl cupy_naive,cupy_opt,cublas --budget 0.05 --no-report --out "$D/runs/square-bwd"
step 60 run-tall-thesis.log bash -c "python3 -m harness run --op gemm --shapes gemm-tall --impl cupy_naive,cupy_opt,cublas \
    --budget 0.05 --no-report --out '$D/runs/tall' && python3 -m harness run --op gemm --shapes thesis \
    --impl cupy_naive,cupy_opt,cublas --budget 0.05 --no-report --out '$D/runs/thesis'"

echo "##### summary"
cat "$D/steps.txt" | grep rc=
grep -E "sgemm_wt_|Duration|Compute \(SM\) Throughput|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Executed Ipc A|Achieved Occupancy" \
    "$D/ncu.txt" | sed -E 's/ +/ /g' | head -40
tail -3 "$D/pytest.log"
grep -E "FAILED|Error" "$D/pytest.log" | head -5
python3 - "$D" <<'PY'
import sys
from pathlib import Path
import numpy as np
import pandas as pd
d = Path(sys.argv[1])
if (d / "sweep.csv").is_file():  # best configuration per shape against cuBLAS
    s = pd.read_csv(d / "sweep.csv", dtype={"shape": str, "config": str})
    s["key"] = s.layout + " " + s["shape"]
    ref = s[s.impl == "cublas"].set_index("key").tflops
    opt = s[s.impl == "cupy_opt"]
    best = opt.sort_values("tflops").groupby("key").tail(1).set_index("key")
    from impls.cuda.gemm_tune import V6_TILES
    v6 = opt[opt.config.str.split("_split").str[0].isin(V6_TILES)]
    best6 = v6.sort_values("tflops").groupby("key").tail(1).set_index("key")
    print("sweep (TFLOP/s): layout shape cublas | best v6 config | best config %cublas")
    for key, r in best.iterrows():
        print(f"  {key:14s} {ref[key]:6.2f} | {best6.config.get(key, '-'):20s} {best6.tflops.get(key, float('nan')):6.2f}"
              f" | {r.config:22s} {r.tflops:6.2f} {r.pct_cublas:5.1f}%")
if (d / "resources.csv").is_file():
    r = pd.read_csv(d / "resources.csv")
    print("resources: " + "; ".join(f"{k.kernel[9:]} {k.regs}r {k.smem}B {k.spill}sp {k.occupancy}b/SM"
                                    for k in r.itertuples() if k.kernel.endswith("_nn")))
for run in sorted((d / "runs").glob("*")):
    f = run / "results.csv"
    if not f.is_file():
        print(run.name, "no results"); continue
    t = pd.read_csv(f)
    t = t[t.impl != "numpy_ref"]
    bad = t[~t.status.isin(["pass", "oracle"])]
    print(f"{run.name}: {len(t)} rows, {len(bad)} not pass" + "".join(
        f"\n  BAD {b.impl} {b['pass']} {b.shape}: {b.status} {str(b.reason)[:80]}" for _, b in bad.head(4).iterrows()))
    t = t[t.median_ms.notna()]
    if t.empty:
        continue
    tab = t.pivot_table(index=["pass", "shape"], columns="impl", values="gflops", aggfunc="first", sort=False) / 1e3
    if "cublas" not in tab:
        print(tab.to_string()); continue
    pct = 100 * tab.div(tab["cublas"], axis=0)
    if len(tab) > 8:  # the thesis set: geometric mean and range of % of cuBLAS per pass
        for pass_, g in pct.groupby(level="pass"):
            print(f"  {pass_} % of cublas over {len(g)} shapes: " + ", ".join(
                f"{c} gmean {np.exp(np.log(g[c]).mean()):.0f}% [{g[c].min():.0f}-{g[c].max():.0f}]"
                for c in g.columns if c != "cublas"))
    else:
        show = tab.copy()
        for c in [c for c in tab.columns if c != "cublas"]:
            show[c] = tab[c].map("{:.2f}".format) + " (" + pct[c].map("{:.0f}".format) + "%)"
        show["cublas"] = tab["cublas"].map("{:.2f}".format)
        show.index = [f"{a} {b[:26]}" for a, b in show.index]
        print(f"  {run.name} TFLOP/s (% of cublas)", show.to_string().replace("\n", "\n  "), sep="\n  ")
    for _, o in t[t.impl == "cupy_opt"].tail(1).iterrows():
        print(f"  cupy_opt {o['pass']} {o['shape'][:28]}: {o.kernel_regs:.0f} regs, {o.kernel_smem:.0f} B smem, spill "
              f"{o.kernel_spill:.0f}, {o.kernel_occupancy:.0f} blocks/SM; {str(o.note).split('; ', 1)[-1][:70]}")
PY
