#!/usr/bin/env bash
# A/B of the implementations as a whole on the GPU machine: the same harness run from an earlier commit's harness/
# and impls/ (A: OLD_TGZ, unpacked into a temporary folder) and from the working tree (B), then `harness compare A B`
# per case. For a change that spans .py and .cu files (ab_source.sh swaps one .cu file).
#   bash benchmarks/ab_tree.sh OLD_TGZ OUT HARNESS_RUN_ARGS...
# e.g. git archive REV harness impls | gzip > .whl/old-tree.tgz (a carried folder), then on the device
#   bash benchmarks/ab_tree.sh .whl/old-tree.tgz $OUT/ab --op conv2d --pass dgrad --shapes resnet50
# Needs "." on PYTHONPATH (the run's folder is the tree that is imported). A runs first, in its own process.
set -euo pipefail
old=$1 out=$(realpath -m "$2")
shift 2
[ -f "$old" ] || { echo "ab_tree.sh: OLD_TGZ must be a file ($old)" >&2; exit 2; }
export KH_GEMM_TUNE_CACHE=""  # each side tunes its own choices (a shared cache file would hand A's to B)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
tar xzf "$old" -C "$tree"
mkdir -p "$out"
(cd "$tree" && python3 -m harness run "$@" --no-report --out "$out/a" | tail -1)
python3 -m harness run "$@" --no-report --out "$out/b" | tail -1
python3 -m harness compare "$out/a" "$out/b" || true  # its verdict is printed; a slower case is a finding here
