#!/usr/bin/env bash
# Issue 13, round 2: the GPU training tests (eager, after last session's kernel changes), the graph-capture tests
# (graph vs eager loss curves for cupy_naive, cupy_opt, cudnn; torch declines; the pytorch-graph peer), then
# train-bench on thesis-1..4 for cupy_opt and cudnn with --graph on,off and both PyTorch peers, at batch 32 and
# 256, stop-on-spread timing (rel. IQR <= 5 % after 10 steps, at most 60 steps or 0.3 s per row), each row twice
# (--repeat 2: the 'vs run1' column is the repeatability). At most ~150 s in all.
set -u
D="$OUT/train"; mkdir -p "$D"
S="$D/summary.txt"; : > "$S"

timeout 45 python -m pytest -q -m gpu tests/nets/test_gpu_training.py > "$D/pytest_gpu_training.log" 2>&1
echo "pytest gpu tests/nets/test_gpu_training.py rc=$? : $(tail -n 1 "$D/pytest_gpu_training.log")" >> "$S"
timeout 35 python -m pytest -q -m gpu tests/nets/test_graph_gpu.py > "$D/pytest_graph_gpu.log" 2>&1
echo "pytest gpu tests/nets/test_graph_gpu.py rc=$? : $(tail -n 1 "$D/pytest_graph_gpu.log")" >> "$S"
grep -E "^(FAILED|ERROR)" "$D/pytest_graph_gpu.log" | cut -c1-220 | head -n 8 >> "$S"

timeout 65 python -m harness train-bench --models thesis-1,thesis-2,thesis-3,thesis-4 \
  --backends cupy_opt,cudnn --graph on,off --batch 32,256 --repeat 2 --warmup 3 --steps 60 --max-seconds 0.3 \
  --out "$D/bench" --force > "$D/bench.log" 2>&1
echo "train-bench batch 32,256 graph on,off repeat 2 rc=$?" >> "$S"
grep -E "declined|skipped|error" "$D/bench.log" | cut -c1-200 | head -n 6 >> "$S"
# the table, first run only (the second run's ratio to the first is in the 'vs run1' column of the CSV/log)
grep -q "^model " "$D/bench.log" || grep -E " ms/step " "$D/bench.log" | grep "run 1" | cut -c1-110 | head -n 40 >> "$S"
awk '/^model /{t=1} t && ($4=="1" || /^model/ || /^---/)' "$D/bench.log" | head -n 45 >> "$S"
echo "repeatability (run 2 / run 1, every row): $(awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="repeat_ratio") c=i; next} $5=="2" && $c!=""{printf "%.2f ", $c}' "$D/bench/train_bench.csv" 2>/dev/null)" >> "$S"
cat "$S"
