"""`python -m harness ...`: list, run (and report, compare, train, train-bench from their own modules).

Bad input ends with one line on stderr naming the problem and the valid choices, and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from harness import plugins, runner
from harness.argtypes import at_least, non_negative, positive
from harness.device import gpu_unavailable_reason
from harness.errors import UsageError
from harness.measure.check import DEFAULT_SEEDS, FAILED_STATUSES
from harness.measure.timing import TIMING_METHODS, TimerSettings
from harness.ops import all_ops
from harness.registry import BROKEN, all_impls, canonical
from harness.results import check_out, new_run_dir

# Modules that add their own subcommands with add_commands(subparsers).
COMMAND_MODULES = ("harness.report.html", "harness.report.compare", "harness.comm.allreduce", "harness.scaffold",
                   "nets.cli")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own code), without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def cmd_list(args) -> int:
    """Ops, passes, shape sets and implementations, with why an implementation cannot run here."""
    impls = all_impls()
    for name, spec in all_ops().items():
        print(f"{name}: {spec.doc}")
        print(f"  bound by {spec.bound}; shape sets: {', '.join(spec.shape_sets)}")
        for p in spec.passes:
            print(f"  {p}:")
            for i in (i for i in impls if i.op == name and i.pass_ == p):
                reason = i.unavailable_reason()
                state = f"unavailable: {reason}" if reason else "available"
                print(f"    {i.name:<20} {i.device:<4} {i.math:<5} {i.family:<7} {state}")
    for mod, why in BROKEN.items():
        print(f"{mod.replace('.', '/')}.py failed to import: {why}")
    return 0


def cmd_run(args) -> int:
    """Check (and time) every selected implementation on every selected shape; write the run folder."""
    if args.resume and not args.out:
        raise UsageError("--resume goes on with the run in --out; give --out")
    if args.shapes and args.shape:
        raise UsageError("--shapes SET and --shape K=V,... choose the shapes two ways; give one")
    cfg = runner.RunConfig(
        ops=ops_or_all(args.op), passes=_split(args.pass_), impls=_impl_names(args.impl),
        shape_set=args.shapes or "smoke", shape=args.shape, check_only=args.check_only,
        seeds=tuple(range(args.seeds)), warm=args.warm, timing=args.timing, cpu_max_gflop=args.cpu_max_gflop,
        baseline=canonical(args.baseline) if args.baseline else None, autotune=args.autotune, resume=args.resume,
        timer=TimerSettings(budget_s=args.budget, target_rel_iqr=args.rel_iqr), argv=sys.argv[1:],
    )
    runner.plan(cfg)  # validate every name and shape before creating anything
    run_dir = new_run_dir(args.out)
    note = gpu_note()
    if note:
        print(note)
    try:
        rows = runner.run_cases(cfg, run_dir)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep what was measured, say where, report it
        print(f"\ninterrupted: the rows measured so far are in {run_dir / 'results.csv'}; the same command with "
              f"--resume --out {run_dir} goes on from there", file=sys.stderr)
        if not args.no_report:
            _build_report(run_dir)
        return 130
    print(f"\n{len(rows)} cases written to {run_dir / 'results.csv'}")
    if not args.no_report:
        _build_report(run_dir)
    failed = [r for r in rows if r["status"] in FAILED_STATUSES]
    if failed:
        print(f"{len(failed)} cases did not pass", file=sys.stderr)
        return 1
    return 0


def _build_report(run_dir) -> None:
    try:
        report = importlib.import_module("harness.report.html")
    except ModuleNotFoundError:
        return
    try:
        print(f"report: {report.build_report(run_dir)}")
    except Exception as exc:  # the results are written; a report bug must not change the run's outcome
        print(f"report failed ({type(exc).__name__}: {exc}); results are in {run_dir}", file=sys.stderr)


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does: rows kept, folder named, report built


def ops_or_all(text: str) -> list[str]:
    """'conv2d', 'conv2d,gemm' or 'all' into op names (validated later by plan)."""
    if text == "all":
        return list(all_ops())
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise UsageError("--op is empty; give an op name, a comma list or 'all'")
    return names


def gpu_note() -> str | None:
    """A one-line note for CPU-only machines, printed before a run."""
    reason = gpu_unavailable_reason()
    return f"GPU implementations will be skipped: {reason}" if reason else None


def _split(text: str | None) -> list[str] | None:
    """'a,b' into names; a name given twice is a UsageError (it would make duplicate rows)."""
    names = [t.strip() for t in text.split(",") if t.strip()] if text else None
    twice = sorted({n for n in names or [] if names.count(n) > 1})
    if twice:
        raise UsageError(f"{', '.join(twice)} given twice in '{text}'")
    return names


def _impl_names(text: str | None) -> list[str] | None:
    """--impl a,b as current implementation names (old names mapped, see registry.RENAMED)."""
    names = _split(text)
    return [canonical(n) for n in names] if names else None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="ops, passes, shape sets and implementations with their availability")
    add_plugin_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="check and time implementations of an op")
    p.add_argument("--op", required=True, help="op name, comma list, or 'all'")
    p.add_argument("--pass", dest="pass_", help="pass(es), comma separated (default: all of the op's passes)")
    p.add_argument("--impl", help="implementations, comma separated (default: all)")
    p.add_argument("--shapes", help="named shape set (default: smoke)")
    p.add_argument("--shape", help="one shape instead of a set, e.g. N=32,C=3,H=32,W=32,K=16")
    p.add_argument("--check-only", action="store_true", help="check correctness, do not time")
    p.add_argument("--out", help="run folder (default: reports/<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out (default: refuse)")
    p.add_argument("--seeds", type=at_least(3), default=len(DEFAULT_SEEDS), help="seeds per case (>= 3)")
    p.add_argument("--warm", action="store_true", help="GPU: keep L2 warm between timed calls (default: flush)")
    p.add_argument("--timing", choices=TIMING_METHODS, default="events",
                   help="GPU: events on a held stream (default), or graph: replay the call captured as a CUDA graph")
    p.add_argument("--budget", type=positive, default=1.0, help="seconds of timing per case at most (default 1)")
    p.add_argument("--rel-iqr", type=positive, default=0.05, help="stop timing once IQR/median is below this")
    p.add_argument("--cpu-max-gflop", type=non_negative, default=20.0, help="skip CPU implementations on larger cases")
    p.add_argument("--baseline", help="implementation that speedups are computed against (default: cudnn, "
                                      "cublas for gemm)")
    p.add_argument("--autotune", action="store_true", help="vendor libraries: time every plan, keep the fastest")
    p.add_argument("--no-report", action="store_true", help="do not build report.html at the end")
    p.add_argument("--resume", action="store_true", help="go on with the interrupted run in --out: keep its rows, "
                                                         "run only the cases it lacks")
    add_plugin_option(p)
    p.set_defaults(func=cmd_run)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # that command is not part of this checkout
            if exc.name is None or not name.startswith(exc.name):
                raise
            continue
        module.add_commands(sub)
    return parser


def add_plugin_option(p: argparse.ArgumentParser) -> None:
    """--plugin FILE_OR_MODULE (repeatable): implementations from outside the package (harness.plugins)."""
    p.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE",
                   help="import your implementations from this .py file or module first (repeatable; also "
                        f"${plugins.ENV}, entry points '{plugins.GROUP}')")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a refused argument (2, its one line already printed)
        return int(exc.code or 0)
    try:
        if hasattr(args, "plugin"):  # the commands that use implementations; report and compare read rows only
            plugins.load(args.plugin)  # also $KERNEL_HARNESS_PLUGINS and installed entry points
        check_out(getattr(args, "out", None), getattr(args, "force", False) or getattr(args, "resume", False))
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rows written so far are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: stop quietly, as other tools do (rows written so far are kept)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
