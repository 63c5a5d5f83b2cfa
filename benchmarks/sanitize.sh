#!/usr/bin/env bash
# compute-sanitizer over every project kernel (cupy_naive, cupy_opt, cupy_im2col_cublas) on the smoke and edge
# shapes of every op, with each of its tools; prints one ERROR SUMMARY line per (tool, set) and exits 1 on any error.
# The four tools run side by side (one process each), the two shape sets one after the other.
#   bash benchmarks/sanitize.sh [OUT_DIR]        (GPU machine; needs compute-sanitizer on the PATH)
#   SANITIZE_LIMIT=seconds bounds each (tool, set) run (default 400).
set -u
OUT=${1:-${OUT:-/tmp/sanitize}}
mkdir -p "$OUT"
one() {  # tool set: run it, write "$OUT/$tool-$set.rc"
  timeout "${SANITIZE_LIMIT:-400}" compute-sanitizer --tool "$1" --print-limit 20 --error-exitcode 99 \
    python3 -m harness run --op all --impl cupy_naive,cupy_opt,cupy_im2col_cublas --shapes "$2" --check-only \
    --no-report --force --out "$OUT/$1-$2" > "$OUT/$1-$2.log" 2>&1
  echo $? > "$OUT/$1-$2.rc"
}
TOOLS="memcheck racecheck initcheck synccheck"
for tool in $TOOLS; do
  (for set in smoke edge; do one "$tool" "$set"; done) &
done
wait
status=0
for tool in $TOOLS; do
  for set in smoke edge; do
    rc=$(cat "$OUT/$tool-$set.rc")
    summary=$(grep -E "(ERROR|RACECHECK) SUMMARY" "$OUT/$tool-$set.log" | tail -1)
    echo "$tool $set: ${summary:-no summary (rc $rc), see $OUT/$tool-$set.log} (rc $rc)"
    [ "$rc" -eq 0 ] || status=1
  done
done
exit $status
