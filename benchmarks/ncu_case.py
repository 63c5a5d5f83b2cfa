"""A few calls of one case under Nsight Compute, without the first call's tuning or the timer's own launches: each
implementation is called once outside the profiled range (compiles, tunes, picks its plan), then --calls times
inside it, each with its inputs reset outside the range (ncu's --cache-control all flushes L2 before each kernel),
the outputs checked after the last.

    ncu --profile-from-start off --clock-control none --set full -f -o R \
        python3 benchmarks/ncu_case.py --op conv2d --pass wgrad --shape N=32,C=16,H=6,W=6,K=32 --impl cupy_opt,cudnn

Prints which implementation's calls are profiled (ncu's report lists their kernels in order) and the check's
verdict; exit status 1 when a call's outputs are wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.measure.check import ReferenceCache
from harness.measure.inputs import InputSets
from harness.ops import get_op
from harness.registry import discover, get
from harness.spec import parse_shape, shape_str


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", required=True)
    ap.add_argument("--pass", dest="pass_", required=True)
    ap.add_argument("--shape", required=True, help="e.g. N=32,C=16,H=6,W=6,K=32")
    ap.add_argument("--impl", required=True, help="comma list")
    ap.add_argument("--calls", type=int, default=2, help="profiled calls per implementation")
    args = ap.parse_args(argv)
    import cupy

    discover()
    spec = get_op(args.op)
    shape = parse_shape(spec.shape_type, args.shape)
    bad = 0
    for name in args.impl.split(","):
        work = InputSets(get(args.op, args.pass_, name), ReferenceCache(spec, shape, args.pass_), (0,))
        work.reset(0)
        work.run()  # compile, tune, plan: outside the profiled range
        cupy.cuda.Device().synchronize()
        print(f"ncu_case: {name} {args.pass_} {shape_str(shape)}: {args.calls} profiled call(s)", flush=True)
        for _ in range(args.calls):  # the input copies and the poisoning stay outside the profiled range
            work.reset(0)
            cupy.cuda.Device().synchronize()
            cupy.cuda.runtime.profilerStart()
            work.run()
            cupy.cuda.Device().synchronize()
            cupy.cuda.runtime.profilerStop()
        verdict = work.verify()
        bad += verdict is not None
        print(f"ncu_case: {name}: {'outputs right' if verdict is None else verdict}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
