"""An independent check of the harness's GPU times: per case, the GPU timer's cold-L2 median beside what CUPTI records
for the same call (harness.measure.cupti.call_kernels: each call alone after an L2 flush, the span from its first
kernel's start to its last kernel's end, and its kernels' summed durations).

    python3 benchmarks/cupti_check.py --op conv2d --pass fprop,dgrad --shapes resnet50 --impl cupy_opt,cudnn

A time is confirmed by harness.measure.cupti.agrees (between the smaller of CUPTI's kernel sum and span and the span,
widened by 5 % + 1 µs). Prints one line per case, and with --kernels the median duration of each kernel of a
multi-kernel call; exit status 1 when any case is not confirmed, 2 without CUPTI. Needs a GPU and torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.measure import cupti
from harness.measure.check import ReferenceCache
from harness.measure.inputs import InputSets
from harness.measure.timing import GpuTimer, TimerSettings
from harness.ops import get_op
from harness.registry import discover, get
from harness.spec import shape_str


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", required=True)
    ap.add_argument("--pass", dest="passes", required=True, help="comma list")
    ap.add_argument("--shapes", required=True, help="a shape set of the op")
    ap.add_argument("--impl", required=True, help="comma list")
    ap.add_argument("--calls", type=int, default=30, help="CUPTI-recorded calls per case")
    ap.add_argument("--kernels", action="store_true", help="each kernel's median duration in multi-kernel calls")
    args = ap.parse_args(argv)
    reason = cupti.available()
    if reason:
        print(f"cupti_check: {reason}", file=sys.stderr)
        return 2
    import cupy

    discover()
    spec = get_op(args.op)
    timer = GpuTimer(TimerSettings(budget_s=0.3))

    def flush() -> None:
        timer.flush(cupy.cuda.get_current_stream())

    bad = 0
    print(f"{'pass':6} {'impl':10} {'harness us':>10} {'CUPTI sum':>10} {'span':>10} {'kernels':>7}  shape")
    for pass_ in args.passes.split(","):
        for name in args.impl.split(","):
            impl = get(args.op, pass_, name)
            for shape in spec.shapes(args.shapes):
                if impl.unsupported_reason(shape):
                    continue
                work = InputSets(impl, ReferenceCache(spec, shape, pass_), (0, 1, 2))
                t = timer.time(work)
                if t.stats is None:
                    print(f"{pass_:6} {name:10} failed: {t.failure}")
                    bad += 1
                    continue
                groups = cupti.call_kernels(work, flush, args.calls)
                span, busy = cupti.span_and_busy_ms(groups)
                ok = cupti.agrees(t.stats.median_ms, busy, span)
                bad += not ok
                print(f"{pass_:6} {name:10} {t.stats.median_ms * 1e3:10.1f} {busy * 1e3:10.1f} {span * 1e3:10.1f} "
                      f"{len(groups[0]):7d}  {shape_str(shape)}{'' if ok else '  NOT CONFIRMED'}")
                if args.kernels and len(groups[0]) > 1:
                    for j, e in enumerate(groups[0]):
                        dur = np.median([g[j]["dur"] for g in groups])
                        print(f"{'':17} {dur:10.1f} us  {e['name'][:100]}")
    print(f"cupti_check: {bad} case(s) not confirmed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
