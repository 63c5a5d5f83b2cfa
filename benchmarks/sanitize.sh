#!/usr/bin/env bash
# compute-sanitizer over every project kernel (cupy_naive, cupy_opt, cupy_im2col_cublas) on the smoke and edge
# shapes of every op, with each of its tools; prints one ERROR SUMMARY line per (tool, set) and exits 1 on any error.
#   bash benchmarks/sanitize.sh [OUT_DIR]        (GPU machine; needs compute-sanitizer on the PATH)
set -u
OUT=${1:-${OUT:-/tmp/sanitize}}
mkdir -p "$OUT"
status=0
for tool in memcheck racecheck initcheck synccheck; do
  for set in smoke edge; do
    compute-sanitizer --tool "$tool" --print-limit 20 --error-exitcode 99 \
      python3 -m harness run --op all --impl cupy_naive,cupy_opt,cupy_im2col_cublas --shapes "$set" --check-only \
      --no-report --force --out "$OUT/$tool-$set" > "$OUT/$tool-$set.log" 2>&1
    rc=$?
    summary=$(grep -E "ERROR SUMMARY" "$OUT/$tool-$set.log" | tail -1)
    echo "$tool $set: ${summary:-no summary (rc $rc), see $OUT/$tool-$set.log}"
    [ "$rc" -eq 0 ] || status=1
  done
done
exit $status
