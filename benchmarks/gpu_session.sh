#!/usr/bin/env bash
# The GPU runs whose figures the README, reports/ and the issue notes quote, in parts that each fit one
# 10-minute call of the device machine:  bash benchmarks/gpu_session.sh A|B|M|D|T   (results under $OUT).
# Part A: correctness of every GPU test that changed last, and the side-by-side vendor tables on the smoke shapes. Part B: the performance targets of the kernels issue
#         (gemm-square, resnet50 at batch 32, 256/512 MiB bandwidth sets) and train-bench.
# Part M (a machine with 2 or more GPUs): data-parallel scaling and overlap on every GPU count up to the machine's
#         (vgg-small at 256, 16 and 4 images per GPU and several NCCL channel caps; thesis-1 and thesis-4), the
#         multi-GPU tests (equivalence, resume at another GPU count, a lost peer in a collective), NCCL all-reduce,
#         and a --gpus training run. Part D: per-rank and lone-process step times of the thesis models.
# Parts G and S: conv2d/maxpool2d geometry (issue 16): its gpu tests (G), its shape sets timed and checked (S).
# Part F: issue 13's fused layers, measured (fusion off / on). Part C: its conv2d_bias_relu op, tested and timed.
# Part I: issue 12's implicit GEMM on the v7 kernel, tested and timed; part IC: its figures beside CUPTI's.
# Part Q: cupy_opt's conv variants (session 10: the strided dgrad and wgrad on the v7 kernel, conv_wgrad_direct),
#         tested, the strided dgrad A/B'd against an earlier tree (benchmarks/ab_tree.sh), the wgrad rows with the
#         tuner's times, and W4's tuned cupy_winograd rows, in one short call.
# Part P: session 10's unrun checks (KC instead on an H200), CUPTI, ncu of the 4096³ SGEMM beside cuBLAS.
# Part N: gemm_warptile.cu against OLD (v7.1) and the FTZ fix: compile and gemm gpu tests, tile sweeps, A/B, ncu.
# Part WP: ncu of the thesis C16 6x6 wgrad, cupy_opt's kernels beside cuDNN's; part WD: session 14's wgrad v2 (WM: the least of it).
# Part X: v7.6's tiles and split candidates (branch session13-unmeasured) against an earlier tree.
# Parts OT and OA: conv2d_implicit_gemm.cu without spills (issue 12): its gpu tests (OT), before/after (OA).
# Part W4: issue 12's Winograd F(4x4) (cupy_winograd_f4): its gpu tests, its 3x3 rows timed beside cupy_winograd and
#         cuDNN at batch 32 and 128, and CUPTI's check of them.
# Part K: issue 12's sample report (reports/sample-h200-kernels); parts KG and KC re-make only its gemm / conv2d rows. Part R:
#         issue 13's (reports/sample-h200-train).
# Part V: every gpu test of tests/harness and tests/impls, and benchmarks/sanitize.sh beside them.
# Part T: the timer's integrity (issue 11): the committed sample report (thesis conv and pooling layers), the other
#         thesis ops and the resnet50 sets, with their flags (benchmarks/flag_table.py). Its tests run before it:
#         python3 benchmarks/event_overhead.py; pytest -m gpu tests/harness/test_timing_gpu.py tests/harness/test_gpu_core.py
# Every part ends with its run folders in $OUT/runs.tgz.
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT/runs"
export PYTHONUNBUFFERED=1
B="--budget 0.2"
step() { echo "=== $*"; timeout "${LIMIT:-300}" "$@" 2>&1 | grep -vE "^(SKIPPED|XFAIL)|leaked|nanobind|^ - "; }
# The gemm part of issue 12's sample (parts K and KG): the ladder on gemm-square, cupy_opt on thesis and tall.
add() { LIMIT=$1 step python3 -m harness run "${@:2}" --budget 0.1 --no-report --out "$R" --resume | tail -2; }
kernels_gemm() {  # kernels_gemm RUN_DIR [IMPLS: only these, instead of the sample's own lists]
  local R=$1 ladder=cupy_naive,cupy_v2_smem,cupy_v3_regblock1d,cupy_v4_regblock2d,cupy_v5_vec_dbuf,cupy_v6_warptile
  add 150 --op gemm --shapes gemm-square --impl "${2:-$ladder,cupy_opt,cublas}"
  add 60 --op gemm --shapes thesis --impl "${2:-cupy_naive,cupy_opt,cublas}"
  add 60 --op gemm --shapes gemm-tall --impl "${2:-cupy_naive,cupy_opt,cublas}"
}
drop_rows() {  # drop_rows RUN_DIR OP [IMPLS]: remove OP's rows (only IMPLS' when given) from a run's results.csv
  python3 -c "import pandas as pd, sys; from harness.results import COLUMNS; \
t = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False); \
drop = (t.op == sys.argv[2]) & (t.impl.isin(sys.argv[3].split(',')) if sys.argv[3] else True); \
t[~drop].reindex(columns=COLUMNS, fill_value='').to_csv(sys.argv[1], index=False)" "$1/results.csv" "$2" "$3"
}
kernels_conv() {  # the conv2d part of issue 12's sample: thesis (with torch), resnet50 at batch 32 and 128
  add 60 --op conv2d --shapes thesis --impl cupy_opt,cupy_winograd,cudnn,torch
  add 90 --op conv2d --shapes resnet50 --impl cupy_opt,cupy_winograd,cudnn
  add 120 --op conv2d --shapes resnet50-128 --impl cupy_opt,cupy_winograd,cudnn
}
case "${1:-A}" in
I)  # issue 12's implicit GEMM on the v7 kernel (warp_igemm: the 3x3 / 7x7 fprop and stride-1 dgrad layers): its gpu
    # tests and the conv kernels' beside them, then resnet50 fprop/dgrad timed against cuDNN, each row checked first
  LIMIT=330 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_igemm.py \
      tests/impls/cuda/test_conv2d_cuda.py tests/impls/cuda/test_conv2d_bias_relu.py \
      tests/impls/cuda/test_conv2d_pointwise.py | tail -8
  for set in resnet50 resnet50-128; do
    LIMIT=120 step python3 -m harness run --op conv2d --pass fprop,dgrad --shapes $set $B --no-report \
        --impl cupy_opt,cudnn --out "$OUT/runs/igemm-$set" | tail -2
  done
  python3 benchmarks/summarize.py "$OUT"/runs/igemm-*
  python3 - "$OUT"/runs/igemm-* <<'PY'
import sys
import pandas as pd
for run in sys.argv[1:]:  # per layer: cupy_opt and cuDNN medians (ms), their ratio, cupy_opt's kernel choice
    d = pd.read_csv(f"{run}/results.csv")
    d = d[d.status == "pass"]
    p = d.pivot_table(index=["pass", "shape"], columns="impl", values="median_ms")
    p["x"] = p.cudnn / p.cupy_opt
    note = d[d.impl == "cupy_opt"].set_index(["pass", "shape"]).note.str.extract(r"(b\w+ \(\w+[^)]*\)|tile \S+.*)")[0]
    print(run.rsplit("/", 1)[-1], p.join(note.rename("cupy_opt kernel")).round(3).to_string(), sep="\n")
    print(p.groupby("pass")[["cupy_opt", "cudnn"]].sum().assign(x=lambda f: f.cudnn / f.cupy_opt).round(3))
PY
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
W4) # cupy_winograd_f4 (F(4x4,3x3) non-fused: transforms around 36 batched v7 SGEMMs) and cupy_winograd (the faster
    # of F(2x2) and F(4x4) per layer, tuned): gpu tests, then the resnet50 and thesis 3x3 stride-1 layers (the
    # others are declined) timed against F(2x2) and cuDNN, and beside CUPTI
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_winograd_f4.py \
      tests/impls/cuda/test_conv2d_winograd.py | tail -6
  for set in resnet50 resnet50-128 thesis; do
    LIMIT=150 step python3 -m harness run --op conv2d --pass fprop,dgrad --shapes $set $B --no-report \
        --impl cupy_winograd,cupy_winograd_f4,cupy_winograd_f4_chunked,cupy_winograd_f2,cudnn \
        --out "$OUT/runs/wino4" --resume | tail -2  # one run folder for both sets (a report of its own)
  done
  python3 - "$OUT"/runs/wino4 <<'PY'
import sys
import pandas as pd
runs = pd.read_csv(f"{sys.argv[1]}/results.csv")
for run, d in runs.groupby("shape_set"):  # per 3x3 layer: medians (ms), each Winograd's ratio to cuDNN, F(4x4)'s
    # TFLOP/s direct, and cupy_winograd's choice
    d = d[d.status == "pass"]
    p = d.pivot_table(index=["pass", "shape"], columns="impl", values="median_ms").dropna()
    for impl in [i for i in ("cupy_winograd", "cupy_winograd_f4", "cupy_winograd_f4_chunked", "cupy_winograd_f2")
                 if i in p]:
        p[impl.replace("cupy_winograd", "x")] = p.cudnn / p[impl]
    gf = d[d.impl == "cupy_winograd_f4"].set_index(["pass", "shape"]).gflops / 1e3
    pick = d[d.impl == "cupy_winograd"].set_index(["pass", "shape"]).note.str.extract(r"(f\d) chosen")[0]
    print(run, p.join(gf.rename("f4 TFLOP/s")).join(pick.rename("pick")).round(3).to_string(), sep="\n")
    print(p[["cupy_winograd", "cudnn"]].groupby("pass").sum().assign(x=lambda f: f.cudnn / f.cupy_winograd).round(3))
PY
  LIMIT=200 step python3 benchmarks/cupti_check.py --op conv2d --pass fprop,dgrad --shapes resnet50-128 \
      --impl cupy_winograd,cupy_winograd_f4
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
Q)  # cupy_opt's conv variants in one short call (a scarce device), the new code's checks first: the igemm and wgrad
    # gpu tests; ResNet-50's 3x3 stride-2 dgrad at batch 32 and 128 before (OLD_TGZ, default .whl/old-tree.tgz, made
    # by git archive 916adf0 harness impls | gzip) and after; the thesis and resnet50 wgrad rows (the BK = 8/32
    # kernels, conv_wgrad_direct and the v7 implicit GEMM, timed by the tuner: its note); then the other conv gpu
    # tests and W4's tuned cupy_winograd beside cuDNN. Its run folders go to $OUT/runs.tgz (also after the first
    # figures).
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_igemm.py \
      tests/impls/cuda/test_conv2d_small.py -k "igemm or configuration or relu or lowered or wgrad" | tail -4
  for n in 32 128; do
    LIMIT=90 step bash benchmarks/ab_tree.sh "${2:-.whl/old-tree.tgz}" "$OUT/runs/sd-$n" --op conv2d --pass dgrad \
        --shape N=$n,C=128,H=56,W=56,K=128,R=3,S=3,stride=2,pad=1 --impl cupy_opt,cudnn $B | tail -8
  done
  for n in 32 128; do python3 -c "import pandas as pd, sys; d = pd.read_csv(sys.argv[1]); \
print(d[['impl', 'status', 'median_ms', 'note']].to_string(max_colwidth=160))" "$OUT/runs/sd-$n/b/results.csv"; done
  for set in thesis resnet50; do  # the wgrad variants, timed by the tuner on each layer's first call (its note;
    # a memory-only cache, so that a machine that ran this before still tunes and notes the times)
    KH_GEMM_TUNE_CACHE="" LIMIT=90 step python3 -m harness run --op conv2d --pass wgrad --shapes $set $B --impl cupy_opt,cudnn \
        --no-report --out "$OUT/runs/wgrad" --resume | tail -1
  done
  python3 -c "import pandas as pd, sys; d = pd.read_csv(sys.argv[1]); \
print(d[['impl', 'shape', 'status', 'median_ms', 'note']].to_string(max_colwidth=100))" "$OUT/runs/wgrad/results.csv"
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  LIMIT=240 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_winograd.py \
      tests/impls/cuda/test_conv2d_winograd_f4.py tests/impls/cuda/test_conv2d_cuda.py \
      tests/impls/cuda/test_conv2d_bias_relu.py tests/impls/cuda/test_gemm_ladder.py -k "not every_config" | tail -4
  for set in resnet50 resnet50-128; do
    LIMIT=100 step python3 -m harness run --op conv2d --pass fprop,dgrad --shapes $set $B --no-report \
        --impl cupy_winograd,cudnn --out "$OUT/runs/wino" --resume | tail -1
  done
  python3 benchmarks/summarize.py "$OUT/runs/wgrad" "$OUT/runs/wino" 2>&1 | tail -12
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
P)  # what session 10 left unrun, in one call: the forced v7 wgrad test and the other wgrad/igemm gpu tests; on an
    # H200, part KC (the sample's conv rows); else the resnet50 rows of cupy_opt beside cuDNN (fprop, dgrad: the
    # igemm epilogue's output map; wgrad tuned afresh: the variants' times in the note) and CUPTI's check of them; then
    # Nsight Compute's warp stalls and instruction mix of the 4096³ nn SGEMM, cupy_opt's 128×256×32 beside cuBLAS
  LIMIT=150 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_igemm.py \
      tests/impls/cuda/test_conv2d_small.py -k "wgrad or igemm" | tail -4
  if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    bash "$0" KC
  else
    KH_GEMM_TUNE_CACHE="" LIMIT=120 step python3 -m harness run --op conv2d --pass fprop,dgrad,wgrad --shapes resnet50 \
        $B --impl cupy_opt,cudnn --no-report --out "$OUT/runs/p-resnet50" | tail -1
    python3 benchmarks/summarize.py "$OUT/runs/p-resnet50" 2>&1 | tail -14
    python3 -c "import pandas as pd, sys; d = pd.read_csv(sys.argv[1]); d = d[d.impl == 'cupy_opt']; \
print(d[['pass', 'shape', 'status', 'median_ms', 'note']].to_string(max_colwidth=120))" "$OUT/runs/p-resnet50/results.csv"
    tar czf "$OUT/runs.tgz" -C "$OUT" runs
    LIMIT=150 step python3 benchmarks/cupti_check.py --op conv2d --pass fprop,dgrad,wgrad --shapes resnet50 \
        --impl cupy_opt,cudnn | tail -40
  fi
  NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  LIMIT=90 step "${NCU:-ncu}" --clock-control none --cache-control all --set full -k regex:gemm -f -o "$OUT/gemm4096" \
      bash -c "python3 benchmarks/gemm_tune.py --shapes 4096 --layouts nn --plain --configs b128x256k32s2 >/dev/null; \
python3 -c 'import cupy; a = cupy.ones((4096, 4096), cupy.float32); cupy.matmul(a, a); cupy.cuda.Device().synchronize()'" \
      | tail -3
  "${NCU:-ncu}" --import "$OUT/gemm4096.ncu-rep" --csv --page raw > "$OUT/gemm4096.csv" 2>/dev/null \
      && python3 benchmarks/ncu_conv_summary.py "$OUT/gemm4096.csv" --top 8
  "${NCU:-ncu}" --import "$OUT/gemm4096.ncu-rep" --page source --csv --print-source sass 2>/dev/null \
      | gzip > "$OUT/gemm4096-sass.csv.gz"; rm -f "$OUT/gemm4096.ncu-rep"; gzip -f "$OUT/gemm4096.csv"; ls -la "$OUT"
  ;;
N)  # gemm_warptile.cu against an earlier copy (OLD=, default .whl/old_gemm_warptile.cu, v7.1; session 11: v7.2 and
    # v7.3; session 13: v7.4 and v7.5 against v7.2) and NVRTC without CuPy's -ftz=true: the compile tests and every
    # gemm config's gpu tests; the tile sweep with OLD (put in place and restored) and with the tree's; the harness's
    # A/B of them (cold L2, fwd and bwd); ncu of the tree's 4096³ nn kernel (issue rate, stalls) as in part P
  OLD=${OLD:-.whl/old_gemm_warptile.cu}
  LIMIT=240 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/harness/test_cuda_compile.py \
      tests/harness/test_cuda_helper.py tests/impls/cuda/test_gemm_ladder.py tests/impls/cuda/test_gemm_cuda.py | tail -5
  cp impls/cuda/gemm_warptile.cu "$OUT/new_gemm_warptile.cu"
  trap 'cp "$OUT/new_gemm_warptile.cu" impls/cuda/gemm_warptile.cu' EXIT
  for side in old new; do
    [ $side = old ] && cp "$OLD" impls/cuda/gemm_warptile.cu
    [ $side = new ] && cp "$OUT/new_gemm_warptile.cu" impls/cuda/gemm_warptile.cu
    echo "--- sweep: $side"
    LIMIT=100 step python3 benchmarks/gemm_tune.py --shapes 1024,2048,4096,8192 --layouts nn,nt --reps 10 \
        --out "$OUT/sweep-$side" | grep -E "cublas|\*$"
  done
  LIMIT=200 step bash benchmarks/ab_source.sh impls/cuda/gemm_warptile.cu "$OLD" "$OUT/runs/ab-gemm" \
      --op gemm --pass fwd,bwd --shapes gemm-square --impl cupy_opt,cublas --budget 0.1 | tail -14
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  LIMIT=80 step "${NCU:-ncu}" --clock-control none --cache-control all --set full -k regex:sgemm_wt -f -o "$OUT/v72" \
      python3 benchmarks/gemm_tune.py --shapes 4096 --layouts nn --plain --configs b128x256k32s2 | tail -2
  "${NCU:-ncu}" --import "$OUT/v72.ncu-rep" --csv --page raw > "$OUT/v72.csv" 2>/dev/null \
      && python3 benchmarks/ncu_conv_summary.py "$OUT/v72.csv" --top 8
  "${NCU:-ncu}" --import "$OUT/v72.ncu-rep" --page source --csv --print-source sass 2>/dev/null \
      | gzip > "$OUT/v72-sass.csv.gz"; rm -f "$OUT/v72.ncu-rep"; gzip -f "$OUT/v72.csv"
  python3 benchmarks/ncu_sass_summary.py "$OUT/v72-sass.csv.gz" --top 8
  ;;
X)  # v7.6 (session 13, measured in a later one): the 128x256x8 and 64x256x16 tiles and the wave-filling split
    # candidates, against an earlier tree (OLD_TGZ, default .whl/old-tree.tgz: git archive main harness impls):
    # the gemm, compile, timer and conv igemm gpu tests; the tile sweep; gemm-square and resnet50 b32 A/B (ab_tree.sh)
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_gemm_cuda.py \
      tests/harness/test_cuda_compile.py tests/harness/measure/test_timing_gpu.py tests/impls/cuda/test_conv2d_igemm.py | tail -3
  LIMIT=150 step python3 benchmarks/gemm_tune.py --shapes 2048,4096,8192 --layouts nn,nt,tn --reps 10 \
      --out "$OUT/sweep" | grep -E "cublas|k8s|64x256|\*$"
  LIMIT=120 step bash benchmarks/ab_tree.sh "${OLD_TGZ:-.whl/old-tree.tgz}" "$OUT/runs/ab-gemm" --op gemm \
      --pass fwd,bwd --shapes gemm-square --impl cupy_opt --budget 0.1 | tail -12
  LIMIT=150 step bash benchmarks/ab_tree.sh "${OLD_TGZ:-.whl/old-tree.tgz}" "$OUT/runs/ab-conv" --op conv2d \
      --pass fprop,dgrad --shapes resnet50 --impl cupy_opt --budget 0.1 | tail -26
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
WD) # session 14's landing: conv_wgrad_direct v2 (direct_px: the pixels over grid.z, last-block sums), the shared
    # tickets (the fused loss), the stream hold on harness.cuda and the grid note: their gpu tests; the thesis
    # wgrad rows A/B'd against an earlier tree (OLD_TGZ, default .whl/old-tree.tgz) beside cuDNN; part WP's ncu
  LIMIT=100 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_small.py -k wgrad | tail -3
  LIMIT=150 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_losses_cuda.py \
      tests/harness/measure/test_timing_gpu.py tests/nets/test_graph_gpu.py tests/impls/cuda/test_conv2d_igemm.py | tail -3
  LIMIT=150 step bash benchmarks/ab_tree.sh "${OLD_TGZ:-.whl/old-tree.tgz}" "$OUT/runs/ab-wgrad" --op conv2d \
      --pass wgrad --shapes thesis --impl cupy_opt,cudnn --budget 0.05 | tail -24
  python3 benchmarks/summarize.py "$OUT/runs/ab-wgrad/b" 2>&1 | tail -4
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  bash "$0" WP
  ;;
WM) # part WD at its smallest (a device nearly spent): the wgrad and fused-loss gpu tests, the thesis wgrad rows
  LIMIT=90 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_small.py \
      tests/impls/cuda/test_losses_cuda.py -k "wgrad or fused" | tail -3
  LIMIT=90 step python3 -m harness run --op conv2d --pass wgrad --shapes thesis --impl cupy_opt,cudnn --budget 0.05 \
      --no-report --out "$OUT/runs/wgrad" | tail -1
  python3 -c "import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); \
print(t[['impl', 'shape', 'status', 'median_ms']].to_string()); \
[print(n[:150]) for n in t[t.impl == 'cupy_opt'].note]" "$OUT/runs/wgrad/results.csv"
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
WP) # why conv_wgrad_direct runs thesis C16 6x6 wgrad at 0.65x cuDNN (NOTES, session 10): ncu of cupy_opt's and
    # cuDNN's kernels on that layer (benchmarks/ncu_case.py: tuning outside the profiled range), one line per launch
  NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  LIMIT=120 step "${NCU:-ncu}" --profile-from-start off --clock-control none --cache-control all --set full \
      -f -o "$OUT/wgrad6" python3 benchmarks/ncu_case.py --op conv2d --pass wgrad --shape N=32,C=16,H=6,W=6,K=32 \
      --impl cupy_opt,cudnn | grep -vE "^==PROF==" | tail -6
  "${NCU:-ncu}" --import "$OUT/wgrad6.ncu-rep" --csv --page raw > "$OUT/wgrad6.csv" 2>/dev/null \
      && python3 benchmarks/ncu_conv_summary.py "$OUT/wgrad6.csv" --top 6
  rm -f "$OUT/wgrad6.ncu-rep"; gzip -f "$OUT/wgrad6.csv"
  ;;
NC) # gemm_warptile.cu's main loop and loaders in the convolutions (warp_igemm, the batched 1x1 products, the wgrad
    # variants): the conv kernels' gpu tests, then the resnet50 rows of cupy_opt A/B'd against an earlier copy (OLD=,
    # default .whl/old_gemm_warptile.cu, v7.1; session 13: v7.4 against v7.2) beside cuDNN
  LIMIT=260 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_igemm.py \
      tests/impls/cuda/test_conv2d_cuda.py tests/impls/cuda/test_conv2d_pointwise.py | tail -4
  LIMIT=300 step bash benchmarks/ab_source.sh impls/cuda/gemm_warptile.cu "${OLD:-.whl/old_gemm_warptile.cu}" "$OUT/runs/ab-conv" \
      --op conv2d --pass fprop,dgrad,wgrad --shapes resnet50 --impl cupy_opt,cudnn --budget 0.1 | tail -40
  python3 benchmarks/summarize.py "$OUT/runs/ab-conv/b" 2>&1 | tail -8
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
OT) # conv2d_implicit_gemm.cu's loaders through OPAQUE_TID (no spills): the conv kernels' gpu tests
  LIMIT=300 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_cuda.py \
      tests/impls/cuda/test_conv2d_bias_relu.py tests/impls/cuda/test_conv2d_igemm.py | tail -6
  ;;
OA) # ... and its A/B: cupy_opt with the previous source (OLD_COPY, default .whl/old_igemm.cu, made by
    # git show 6a497d9:impls/cuda/conv2d_implicit_gemm.cu) and the new, on the thesis layers and resnet50's dgrad/wgrad
  for set in thesis resnet50; do
    LIMIT=200 step bash benchmarks/ab_source.sh impls/cuda/conv2d_implicit_gemm.cu "${2:-.whl/old_igemm.cu}" \
        "$OUT/runs/ab-$set" --op conv2d --pass "$([ $set = thesis ] && echo fprop,dgrad,wgrad || echo dgrad,wgrad)" \
        --shapes $set --impl cupy_opt --budget 0.1 | tail -40
  done
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
IC) # the independent check of part I's figures: harness times beside CUPTI's (benchmarks/cupti_check.py)
  LIMIT=300 step python3 benchmarks/cupti_check.py --op conv2d --pass fprop,dgrad --shapes resnet50 \
      --impl cupy_opt,cudnn
  ;;
C)  # issue 13's conv2d_bias_relu, the merged softmax-xent launcher and issue 12's batched 1x1 layers: their gpu
    # tests; the fused op timed beside conv2d fprop + relu fwd on the thesis and resnet50 layers
    # (benchmarks/fusion_gain.py); conv2d fprop and dgrad on resnet50 (cupy_opt's 1x1 layers on the v7 SGEMM)
  LIMIT=300 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_bias_relu.py \
      tests/impls/cuda/test_conv2d_pointwise.py tests/impls/cuda/test_losses_cuda.py | tail -6
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/test_registered.py \
      -k "conv2d_bias_relu or softmax_xent" | tail -4
  for set_impls in thesis:cupy_naive,cupy_opt,cudnn,torch resnet50:cupy_opt,cudnn,torch; do
    set=${set_impls%:*} impls=${set_impls#*:}
    LIMIT=150 step python3 -m harness run --op conv2d_bias_relu,conv2d --pass fprop --shapes $set $B --no-report \
        --impl $impls --out "$OUT/runs/fused-conv-$set" | tail -2
    LIMIT=60 step python3 -m harness run --op relu --pass fwd --shapes $set $B --no-report --impl $impls \
        --out "$OUT/runs/relu-$set" | tail -2
  done
  LIMIT=100 step python3 -m harness run --op conv2d --pass dgrad --shapes resnet50 $B --no-report \
      --impl cupy_opt,cudnn --out "$OUT/runs/dgrad-resnet50" | tail -2
  python3 benchmarks/fusion_gain.py "$OUT"/runs/fused-conv-* "$OUT"/runs/relu-*
  python3 benchmarks/summarize.py "$OUT"/runs/fused-conv-* "$OUT"/runs/dgrad-resnet50
  tar czf "$OUT/runs.tgz" -C "$OUT" runs
  ;;
G)  # conv geometry (issue 16), correctness: every gpu test of tests/impls (new-geometry cases of every kernel and
    # the registered implementations on smoke and edge), the GPU fuzz of conv2d and maxpool2d, the CUDA templates
  LIMIT=330 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls \
      --deselect tests/impls/cuda/test_sanitizer.py --durations=5 | tail -30
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/harness/test_fuzz.py \
      tests/harness/test_scaffold.py -k "conv2d or maxpool2d" | tail -8
  ;;
S)  # conv geometry (issue 16), the sets: deepbench, dilated, depthwise, grouped on every fp32 GPU implementation,
    # speedups against cuDNN (benchmarks/summarize.py); then the registered conv2d/maxpool2d implementations on
    # smoke and edge and the GPU fuzz of both ops (part G runs every gpu test of tests/impls)
  for set_limit in deepbench:170 dilated:60 depthwise:110 grouped:90; do
    set=${set_limit%:*}
    LIMIT=${set_limit#*:} step python3 -m harness run --op conv2d --shapes $set --budget 0.05 --no-report \
        --impl cupy_naive,cupy_opt,cupy_im2col_cublas,cudnn,torch --out "$OUT/runs/conv2d-$set" | tail -2
  done
  python3 benchmarks/summarize.py "$OUT"/runs/conv2d-*
  python3 - "$OUT"/runs/conv2d-* <<'PY'
import sys
import pandas as pd
for run in sys.argv[1:]:  # statuses per implementation, and the rows that failed, with their reasons
    d = pd.read_csv(f"{run}/results.csv")
    print(run.rsplit("/", 1)[-1], d.groupby(["impl", "status"]).size().unstack(fill_value=0).to_string(), sep="\n")
    bad = d[~d.status.isin(["pass", "oracle"])]
    print(bad[["pass", "impl", "shape", "status", "reason"]].head(12).to_string(max_colwidth=90))
PY
  python3 benchmarks/flag_table.py "$OUT"/runs/*
  LIMIT=100 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/test_registered.py \
      -k "conv2d or maxpool2d" | tail -6
  LIMIT=90 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/harness/test_fuzz.py \
      -k "conv2d or maxpool2d" | tail -6
  ;;
V)  # what changed since the last GPU run: every gpu test, the sanitizer sweep beside the tests that do not time
  LIMIT=150 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/harness/measure | tail -5
  (SANITIZE_LIMIT=220 bash benchmarks/sanitize.sh "$OUT/sanitize" > "$OUT/sanitize.txt" 2>&1) &
  LIMIT=400 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/harness tests/impls \
      --ignore=tests/harness/measure --durations=8 | tail -25
  wait; cat "$OUT/sanitize.txt"; tar czf "$OUT/sanitize.tgz" -C "$OUT" sanitize
  ;;
T)
  LIMIT=250 step python3 -m harness run --op conv2d,maxpool2d --shapes thesis $B --out reports/sample-h200-thesis --force \
      | tail -4
  tar czf "$OUT/sample.tgz" reports/sample-h200-thesis
  LIMIT=120 step python3 -m harness run --op gemm,relu,sigmoid,softmax_xent,sigmoid_bce,sgd --shapes thesis $B \
      --no-report --out "$OUT/runs/thesis-rest" | tail -3
  LIMIT=170 step python3 -m harness run --op conv2d,maxpool2d,relu,sigmoid --shapes resnet50 $B --no-report \
      --impl cupy_opt,cupy_im2col_cublas,cudnn,cudnn_tf32,torch,torch_tf32 --out "$OUT/runs/resnet50" | tail -3
  python3 benchmarks/flag_table.py reports/sample-h200-thesis "$OUT"/runs/*
  ;;
A)
  LIMIT=150 step python3 -m harness run --op conv2d --autotune $B --out "$OUT/runs/conv2d-smoke"
  LIMIT=150 step python3 -m harness run --op gemm,maxpool2d,softmax_xent,relu $B --out "$OUT/runs/vendor-smoke"
  ;;
B)
  find / -name "libnccl.so*" 2>/dev/null | head -3
  python3 -c "from harness.comm.nccl import nccl; print('nccl', nccl().get_version())" 2>&1 | tail -1
  LIMIT=60 step python3 -m harness allreduce --max-bytes 64M --out "$OUT/runs/allreduce-1gpu"
  LIMIT=120 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/nets/test_gpu_training.py -k thesis-3
  LIMIT=120 step python3 -m harness run --op gemm --shapes gemm-square --impl cupy_naive,cupy_opt,cublas,cublas_tf32 \
      $B --no-report --out "$OUT/runs/gemm-square"
  LIMIT=240 step python3 -m harness run --op conv2d --shapes resnet50 \
      --impl cupy_naive,cupy_opt,cupy_im2col_cublas,cudnn,torch $B --no-report --out "$OUT/runs/conv2d-resnet50"
  LIMIT=90 step python3 -m harness run --op relu,sigmoid,maxpool2d,softmax_xent --shapes large \
      --impl cupy_naive,cupy_opt,cudnn $B --no-report --out "$OUT/runs/bandwidth-large"
  LIMIT=150 step python3 -m harness train-bench --steps 10 --max-seconds 3 --out "$OUT/runs/train-bench"
  LIMIT=150 step python3 -m harness train-bench --models thesis-1 --backends cupy_naive,cupy_opt,cudnn,torch \
      --no-peer --steps 5 --accuracy-epochs 15 --out "$OUT/runs/train-accuracy"
  ;;
M)
  export NCCL_NVLS_ENABLE=0  # NVLink multicast off (../shared/GPU-FACTS.md)
  G=$(python3 -c "import cupy; print(cupy.cuda.runtime.getDeviceCount())")
  LIST=$(python3 -c "print(','.join(str(n) for n in (1, 2, 4, 8) if n <= $G))")
  nvidia-smi topo -m | head -4
  S="python3 -m harness train-bench --gpus $LIST"
  LIMIT=100 step $S --models vgg-small --steps 10 --rounds 7 --out "$OUT/runs/scaling-vgg-b256"
  LIMIT=100 step $S --models vgg-small --steps 10 --rounds 7 --nccl-channels 4 --out "$OUT/runs/scaling-vgg-b256-ch4"
  for b in 16 4; do  # where communication is a visible share: how many channels NCCL may take from the overlap
    for ch in default 4 2; do
      C=$([ $ch = default ] || echo "--nccl-channels $ch")
      LIMIT=60 step $S --models vgg-small --batch-per-gpu $b --steps 50 --rounds 9 --bucket-mb 1 $C \
          --out "$OUT/runs/scaling-vgg-b$b-ch$ch"
    done
  done
  LIMIT=120 step $S --models thesis-1,thesis-4 --steps 100 --rounds 7 --out "$OUT/runs/scaling-thesis"
  LIMIT=240 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/nets/test_distributed_gpu.py
  LIMIT=60 step python3 -m harness allreduce --gpus "$G" --max-bytes 1G --out "$OUT/runs/allreduce-${G}gpu"
  LIMIT=60 step python3 -m harness train --model thesis-1 --dataset digits --backend cupy_opt --gpus "$G" \
      --epochs 3 --nccl-channels 4 --no-progress --out "$OUT/runs/train-${G}gpu"
  ;;
D)  # why the thesis models scale badly on 2 GPUs: host side or exchange? (NOTES.md, data-parallel v2)
  B="python3 -m harness train-bench --models thesis-1 --backends cupy_opt --no-peer --steps 300 --warmup 20"
  CUDA_VISIBLE_DEVICES=0 $B --max-seconds 5 --out "$OUT/runs/alone-gpu0" 2>&1 | grep "ms/step"
  CUDA_VISIBLE_DEVICES=1 $B --max-seconds 5 --out "$OUT/runs/alone-gpu1" 2>&1 | grep "ms/step"
  CUDA_VISIBLE_DEVICES=0 $B --max-seconds 5 --out "$OUT/runs/pair-gpu0" > "$OUT/pair0.log" 2>&1 &
  CUDA_VISIBLE_DEVICES=1 $B --max-seconds 5 --out "$OUT/runs/pair-gpu1" > "$OUT/pair1.log" 2>&1 &
  wait; grep -h "ms/step" "$OUT/pair0.log" "$OUT/pair1.log"
  python3 -c "
from nets.multigpu import launch; from nets.scaling import _bench_rank; from nets.distributed import Exchange
import numpy as np
for model in ('thesis-1', 'vgg-small'):
    r = launch(2, _bench_rank, (model, 'cupy_opt', 32, 100, 10, 3, Exchange(False), 0), 120)
    for i, t in enumerate(r): print(model, 'rank', i, {k: round(float(np.median(v)), 3) for k, v in t.items()})
"
  ;;
KG) # the gemm rows of issue 12's committed sample, re-made (the other rows kept): a new gemm kernel version.
    # KG IMPLS (comma list, e.g. cupy_opt) re-makes only those implementations' gemm rows; the kept baselines'
    # rows give the new rows their speedups
  R=reports/sample-h200-kernels
  drop_rows "$R" gemm "${2:-}"
  kernels_gemm "$R" "${2:-}"
  python3 -m harness report "$R" | tail -1
  python3 benchmarks/summarize.py "$R"
  tar czf "$OUT/sample-kernels.tgz" "$R"
  ;;
KC) # the conv2d rows of issue 12's committed sample, re-made (the gemm and maxpool2d rows kept): a conv kernel changed
  R=reports/sample-h200-kernels
  drop_rows "$R" conv2d ""
  kernels_conv "$R"
  python3 -m harness report "$R" | tail -1
  python3 benchmarks/summarize.py "$R"
  tar czf "$OUT/sample-kernels.tgz" "$R"
  ;;
K)  # issue 12's committed sample: reports/sample-h200-kernels, one run folder built by several harness runs
    # (--resume adds each command's cases): the gemm ladder on gemm-square, gemm thesis and tall, conv2d on
    # resnet50 at batch 32 and 128 and on thesis (cupy_winograd beside cupy_opt and cuDNN), maxpool2d thesis
  R=reports/sample-h200-kernels; rm -rf "$R"
  kernels_gemm "$R"
  kernels_conv "$R"
  add 60 --op maxpool2d --shapes thesis --impl cupy_opt,cudnn,torch
  python3 -m harness report "$R" | tail -1
  python3 benchmarks/summarize.py "$R"
  tar czf "$OUT/sample-kernels.tgz" "$R"
  ;;
F)  # issue 13's fused layers: GPU tests (pooling kernels with the ReLU flag, the fused loss, fused + graphed runs),
    # the fused ops on smoke/edge and beside the unfused ones on the thesis shapes, a kernel profile of thesis-4's
    # step (fusion off / on), train-bench with fusion on and off (cudnn: cuDNN's two-call pool + ReLU), and cudnn
    # with the project's fused pooling kernel
  LIMIT=200 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls tests/nets \
      -k "maxpool or fus or relu or xent or loss or graph" --deselect tests/impls/cuda/test_sanitizer.py | tail -6
  LIMIT=120 step python3 -m pytest -m gpu -q -p no:cacheprovider tests/impls/cuda/test_conv2d_winograd.py \
      tests/impls/cuda/test_conv2d_small.py | tail -3  # the kernels whose shared code was factored out
  for set in smoke edge; do
    LIMIT=60 step python3 -m harness run --op maxpool2d_relu,softmax_xent --shapes $set --budget 0.02 --no-report \
        --impl cupy_naive,cupy_opt,cudnn,torch --out "$OUT/runs/fused-$set" | tail -1
  done
  LIMIT=90 step python3 -m harness run --op maxpool2d,maxpool2d_relu,relu,softmax_xent --shapes thesis --budget 0.1 \
      --no-report --impl cupy_opt,cudnn,torch --out "$OUT/runs/fused-ops" | tail -1
  python3 benchmarks/summarize.py "$OUT"/runs/fused-* | grep -vE "^ *$" | head -60
  LIMIT=60 step python3 benchmarks/train_profile.py --model thesis-4 --batch 256 --backends cudnn --fuse off,on \
      --use maxpool2d_relu=cupy_opt | head -64
  T="python3 -m harness train-bench --models thesis-1,thesis-2,thesis-3,thesis-4 --graph on --batch 32,256 \
     --warmup 5 --steps 300 --max-seconds 0.5"
  LIMIT=120 step $T --backends cudnn,cupy_opt --fuse on,off --out "$OUT/runs/fuse-on-off" | tail -52
  LIMIT=60 step $T --backends cudnn --no-peer --use maxpool2d_relu=cupy_opt --out "$OUT/runs/fuse-own" | tail -10
  ;;
R)  # issue 13's committed sample: reports/sample-h200-train, train-bench of thesis-1..4 on cupy_opt and cudnn with
    # and without CUDA graphs and fusion beside PyTorch eager and graphed, at batch 32 and 256, every row twice
    # (repeatability); then digits accuracy of thesis-1 after 15 epochs on every GPU backend, graphs and fusion on
    # and off. R ARGS passes ARGS to both (e.g. --use maxpool2d_relu=cupy_opt)
  R=reports/sample-h200-train; rm -rf "$R"
  LIMIT=330 step python3 -m harness train-bench --models thesis-1,thesis-2,thesis-3,thesis-4 --backends cupy_opt,cudnn \
      --graph on,off --fuse on,off --batch 32,256 --repeat 2 --warmup 5 --steps 300 --max-seconds 0.6 "${@:2}" \
      --out "$R" | tail -84
  LIMIT=150 step python3 -m harness train-bench --models thesis-1 --backends cupy_naive,cupy_opt,cudnn --graph on,off \
      --fuse on,off --steps 20 --max-seconds 0.5 --accuracy-epochs 15 "${@:2}" --out "$OUT/runs/train-accuracy" | grep "accuracy after"
  tar czf "$OUT/sample-train.tgz" "$R"
  ;;
esac
tar czf "$OUT/runs.tgz" -C "$OUT" runs
