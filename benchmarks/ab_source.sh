#!/usr/bin/env bash
# A/B of one kernel source on the GPU machine: the same harness run with an earlier version of a .cu file (A, put in
# place for the run and restored after) and with the working tree's (B), then `harness compare A B` per case.
#   bash benchmarks/ab_source.sh FILE OLD_COPY OUT HARNESS_RUN_ARGS...
# e.g. git show REV:impls/cuda/conv2d_implicit_gemm.cu > .whl/old.cu (a carried folder), then on the device
#   bash benchmarks/ab_source.sh impls/cuda/conv2d_implicit_gemm.cu .whl/old.cu $OUT/ab --op conv2d --shapes thesis
# A runs first, in its own process (NVRTC compiles each version afresh: the module cache is per process).
set -euo pipefail
file=$1 old=$2 out=$3
shift 3
[ -f "$file" ] && [ -f "$old" ] || { echo "ab_source.sh: FILE and OLD_COPY must be files ($file, $old)" >&2; exit 2; }
export KH_GEMM_TUNE_CACHE=""  # each side tunes its own choices (a shared cache file would hand A's to B)
mkdir -p "$(dirname "$out")"
cp "$file" "$out.new.cu"
run() {  # run DIR ARGS: one side; exit 1 (cases that did not pass, e.g. cuDNN's nondeterministic wgrad) is a finding
  local dir=$1 rc=0
  shift
  python3 -m harness run "$@" --no-report --out "$dir" | tail -1 || rc=$?
  [ "$rc" -le 1 ] || exit "$rc"
}
trap 'cp "$out.new.cu" "$file"' EXIT
cp "$old" "$file"
run "$out/a" "$@"
cp "$out.new.cu" "$file"
run "$out/b" "$@"
python3 -m harness compare "$out/a" "$out/b" || true  # its verdict is printed; a slower case is a finding here
