"""A run: for every (op, pass, shape, implementation) check against the oracle, time, and write a row.

Order of work: shapes are the outer loop so that one shape's inputs and float64 references are computed once and
shared by every implementation (measure.check.ReferenceCache); the oracle and the baselines run first so that each
row's speedup is known the moment the row is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from harness import cuda
from harness.console import TablePrinter
from harness.context import run_context
from harness.errors import UsageError, choices_error, one_line
from harness.measure import ceilings, plausibility
from harness.measure.check import DEFAULT_SEEDS, ReferenceCache, check
from harness.measure.inputs import InputSets
from harness.measure.timing import CpuTimer, GpuTimer, TimerSettings
from harness.ops import get_op
from harness.registry import Impl, impls_for
from harness.results import ResultWriter, base_meta, write_meta
from harness.spec import OpSpec, parse_shape, shape_str


@dataclass
class RunConfig:
    ops: list[str]
    passes: list[str] | None = None
    impls: list[str] | None = None
    shape_set: str = "smoke"
    shape: str | None = None  # one shape, "N=..,C=..", instead of a set
    check_only: bool = False
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    timer: TimerSettings = field(default_factory=TimerSettings)
    warm: bool = False
    resume: bool = False  # go on with the run in `run_dir`: keep its rows, run only the cases it lacks
    autotune: bool = False  # vendor libraries: time every plan that builds, keep the fastest (harness.context)
    timing: str = "events"  # GPU: "events" (held stream) or "graph" (CUDA-graph replay), see harness.measure.timing
    cpu_max_gflop: float = 20.0
    baseline: str | None = None
    argv: list[str] = field(default_factory=list)


@dataclass
class Case:
    spec: OpSpec
    pass_: str
    shape_set: str
    shape: object
    impls: list[Impl]
    baselines: tuple[str, ...]  # the groups its speedups are taken against, preferred first (baseline_groups)


def plan(cfg: RunConfig) -> list[Case]:
    """Resolve names into cases; every unknown name or impossible shape is a UsageError, before anything runs."""
    specs = [get_op(o) for o in cfg.ops]
    known = {i.name for spec in specs for i in impls_for(spec.name)}
    if cfg.baseline and cfg.baseline not in known:
        raise choices_error("--baseline", cfg.baseline, known)
    for n in cfg.impls or []:  # each name must belong to one of the selected ops; each op runs those of its own
        if n not in known:
            raise choices_error("implementation", n, known)
    cases = []
    for spec in specs:
        passes = cfg.passes or list(spec.passes)
        for p in passes:
            spec.pass_spec(p)
        if cfg.shape:
            shapes, set_name = [parse_shape(spec.shape_type, cfg.shape)], "cli"
        elif cfg.shape_set in spec.shape_sets or len(specs) == 1:
            shapes, set_name = spec.shapes(cfg.shape_set), cfg.shape_set
        else:
            continue  # several ops: skip those without this set (checked below that at least one has it)
        for p in passes:
            impls = [i for i in impls_for(spec.name, p) if not cfg.impls or i.name in cfg.impls]
            if not impls:
                continue
            baselines = baseline_groups(spec, impls, cfg.baseline)
            impls = order_impls(impls, baselines)
            cases += [Case(spec, p, set_name, s, impls, baselines) for s in shapes]
    if not cases and not any(cfg.shape or cfg.shape_set in spec.shape_sets for spec in specs):
        sets = sorted({s for spec in specs for s in spec.shape_sets})
        raise choices_error("shape set", cfg.shape_set, sets)
    if not cases:
        raise UsageError(f"none of the implementations {','.join(cfg.impls)} runs on the selected ops, passes "
                         "and shape sets")
    return cases


def baseline_groups(spec: OpSpec, impls: list[Impl], chosen: str | None) -> tuple[str, ...]:
    """The groups speedups are taken against, in order of preference: the group of --baseline NAME, else the op
    spec's `baselines` (the vendor library, then the optimised CPU path where it cannot run)."""
    if chosen is None:
        return spec.baselines
    return tuple({i.group for i in impls if i.name == chosen} or {chosen})


def order_impls(impls: list[Impl], baselines: tuple[str, ...]) -> list[Impl]:
    """The oracle first, then the baselines (every math mode of their group), then the rest by name."""
    def rank(i: Impl):
        return (i.family != "oracle", i.group not in baselines, i.name)
    return sorted(impls, key=rank)


def skip_reason(impl: Impl, case: Case, cfg: RunConfig) -> str | None:
    """Why this implementation does not run this case, or None."""
    reason = impl.unavailable_reason() or impl.unsupported_reason(case.shape)
    if reason:
        return reason
    gflop = case.spec.flops(case.shape, case.pass_) / 1e9
    if impl.device == "cpu" and gflop > cfg.cpu_max_gflop:
        return f"{gflop:.1f} GFLOP is over the CPU limit (--cpu-max-gflop {cfg.cpu_max_gflop:g})"
    return None


class Run:
    """State of one run: the writer, the timers, the ceilings and the baseline times seen so far."""

    def __init__(self, cfg: RunConfig, cases: list[Case], run_dir: Path):
        self.cfg, self.cases, self.run_dir = cfg, cases, run_dir
        self.writer = ResultWriter(run_dir, resume=cfg.resume)
        self.timers: dict[str, object] = {}
        self.ceilings: dict[str, dict] = {}
        self.baseline_ms: dict[tuple, tuple[str, float]] = {}
        self.logs_saved = len(cuda.COMPILE_LOGS)
        self.meta = base_meta(cfg.argv)
        self.meta.update({"run_dir": str(run_dir), "shape_set": cfg.shape_set, "seeds": list(cfg.seeds),
                          "check_only": cfg.check_only, "l2": "warm" if cfg.warm else "flushed",
                          "timing": cfg.timing})

    def setup(self, printer) -> None:
        devices = {i.device for c in self.cases for i in c.impls if not i.unavailable_reason()}
        if "gpu" in devices:
            self.meta.update(ceilings.gpu_meta())
        if not self.cfg.check_only:
            for dev in sorted(devices):
                printer(f"measuring {dev} ceilings ...")
                if dev == "gpu":
                    self.ceilings[dev] = {**ceilings.gpu_ceilings(), **ceilings.gpu_hardware()}
                    timer = self.timers[dev] = GpuTimer(self.cfg.timer, warm=self.cfg.warm, method=self.cfg.timing)
                    self.meta["event_overhead_us"] = round(timer.overhead_ms * 1e3, 3)
                    self.meta["event_overhead_how"] = timer.overhead_how
                    if timer.clock_note:
                        self.meta["clocks"] = timer.clock_note
                else:
                    self.ceilings[dev] = ceilings.cpu_ceilings()
                    self.timers[dev] = CpuTimer(self.cfg.timer)
        self.meta["ceilings"] = self.ceilings
        self.meta["timers"] = {d: t.name for d, t in self.timers.items()}
        write_meta(self.run_dir, self.meta)

    def run_case(self, case: Case, impl: Impl, refs: ReferenceCache) -> dict:
        row = {**row_head(case, impl), "flops": case.spec.flops(case.shape, case.pass_),
               "bytes": case.spec.bytes(case.shape, case.pass_, float_bytes=8 if impl.math == "fp64" else 4)}
        reason = skip_reason(impl, case, self.cfg)
        if reason:
            return {**row, "status": "skipped", "reason": reason}
        result = check(impl, refs, self.cfg.seeds)
        row.update(status=result.status, reason=result.reason, err=result.err, viol=result.viol,
                   rtol=result.rtol, seeds=result.seeds)
        if result.status not in ("pass", "oracle") or self.cfg.check_only:
            if result.status not in ("error", "oracle"):
                row.update(self.details(impl, case.shape))  # which kernel or plan produced these values
            return row
        try:
            row.update(self.time(impl, case, refs, row["flops"], row["bytes"]))
        except Exception as exc:  # a launch failure while timing is this row's error, not the run's
            row.update(status="error", reason=f"while timing: {one_line(exc)}")
        return row

    def time(self, impl: Impl, case: Case, refs: ReferenceCache, flops: int, nbytes: int) -> dict:
        """Time the call (measure.timing); a call that breaks the contract while timed gets that status instead."""
        t = self.timers[impl.device].time(InputSets(impl, refs, self.cfg.seeds))
        out = {"timing": t.method, "flags": "; ".join(t.flags), **t.columns}
        if t.failure:
            return {**out, "status": t.failure[0], "reason": t.failure[1]}
        sec = t.stats.median_ms / 1e3
        out.update(**t.stats.as_dict(), host_ms=t.host_ms, gflops=flops / sec / 1e9, gbps=nbytes / sec / 1e9)
        ceil = self.ceilings.get(impl.device, {})
        if case.spec.bound == "compute":
            out["peak_kind"] = f"{impl.device} fp32 gemm"
            if impl.math == "fp32" and ceil.get("gemm_fp32_gflops"):
                out["pct_peak"] = 100 * out["gflops"] / ceil["gemm_fp32_gflops"]
        else:
            out["peak_kind"] = f"{impl.device} copy"
            if ceil.get("copy_gbps"):
                out["pct_peak"] = 100 * out["gbps"] / ceil["copy_gbps"]
        out.update(self.details(impl, case.shape))
        return out

    def save_compile_logs(self, row: dict) -> None:
        """Write the full NVRTC log of each CUDA file that failed to compile since the last row to
        <run>/compile-logs/<file>.log, and name it in the row's note (its reason has the first error)."""
        while self.logs_saved < len(cuda.COMPILE_LOGS):
            path, log = cuda.COMPILE_LOGS[self.logs_saved]
            self.logs_saved += 1
            out = self.run_dir / "compile-logs" / f"{path.name}.log"
            out.parent.mkdir(exist_ok=True)
            out.write_text(f"{path}\n\n{log}\n")
            row["note"] = "; ".join(filter(None, [row.get("note"), f"compile log: {out.relative_to(self.run_dir)}"]))

    def add_flags(self, row: dict) -> None:
        """Append the plausibility flags (harness.measure.plausibility) of a timed row to the timer's own."""
        if not isinstance(row.get("median_ms"), float) or not math.isfinite(row["median_ms"]):
            return
        found = plausibility.flags(row, self.ceilings.get(row["device"], {}), self.cfg.warm)
        row["flags"] = "; ".join(filter(None, [row.get("flags", ""), *found]))

    @staticmethod
    def details(impl: Impl, shape) -> dict:
        """Kernel resources (first kernel in columns, all in the note; occupancy in resident blocks per SM where the
        implementation says how it launches) and the implementation's own note."""
        try:
            details = (impl.details(shape) or {}) if impl.details else {}
        except Exception as exc:  # reporting must never turn a result into an error
            return {"note": f"details unavailable: {one_line(exc)}"}
        out: dict = {}
        kernels = details.get("kernels", {})
        if kernels:
            first = next(iter(kernels.values()))
            out.update(kernel_regs=first["regs"], kernel_smem=first["smem"], kernel_spill=first["spill"])
            if first.get("occupancy") is not None:
                out["kernel_occupancy"] = first["occupancy"]
            out["note"] = ", ".join(f"{k}: {v['regs']} regs, {v['smem']} B smem, {v['spill']} B spill"
                                    + (f", {v['occupancy']} blocks/SM" if v.get("occupancy") is not None else "")
                                    for k, v in kernels.items())
        if details.get("note"):
            out["note"] = "; ".join(filter(None, [out.get("note"), details["note"]]))
        return out

    def add_speedup(self, case: Case, row: dict) -> None:
        """Speedup against the op's baseline of the same math mode, once that baseline has been timed.

        The fallback baseline stands in only where the op's baseline cannot run here at all (no GPU, library
        missing); where the baseline runs but fails a case, that case has no speedup, rather than one against
        another baseline."""
        if not _timed(row):
            return
        runs_here = _baselines_here(case)
        key = (case.spec.name, case.pass_, row["shape"], row["math"])
        impl = next(i for i in case.impls if i.name == row["impl"])
        if runs_here and impl.group == runs_here[0]:
            self.baseline_ms[key] = (row["impl"], row["median_ms"])
        if key in self.baseline_ms:
            name, ms = self.baseline_ms[key]
            row["baseline"], row["speedup"] = name, ms / row["median_ms"]

    def seed_baselines(self, case: Case, kept: dict[tuple, dict]) -> None:
        """Before a case runs in a --resume run: the kept rows of its baseline serve its new rows' speedups, also
        when this run's --impl leaves the baseline out (re-timing one implementation against a library timed
        before). The baseline is the group add_speedup would take, else the most preferred group with a kept row
        for the case (timed or not: one that failed the case gives no speedup, as in add_speedup)."""
        shape = shape_str(case.shape)
        by_group: dict[str, list[dict]] = {}
        for impl in impls_for(case.spec.name):
            row = kept.get((case.spec.name, case.pass_, impl.name, shape))
            if impl.pass_ == case.pass_ and row is not None:
                by_group.setdefault(impl.group, []).append(row)
        runs_here = _baselines_here(case)
        group = runs_here[0] if runs_here else next((g for g in case.baselines if g in by_group), None)
        for row in by_group.get(group, []):
            if _timed(row):
                self.baseline_ms[(case.spec.name, case.pass_, shape, row["math"])] = (row["impl"],
                                                                                      float(row["median_ms"]))


def _baselines_here(case: Case) -> list[str]:
    """The case's baseline groups, preferred first, that have an implementation in the run able to run here."""
    return [g for g in case.baselines if any(i.group == g and not i.unavailable_reason() for i in case.impls)]


def _timed(row: dict) -> bool:
    """Whether a row has a finite median time (a kept row's missing value is '')."""
    return isinstance(row.get("median_ms"), float) and math.isfinite(row["median_ms"])


def row_head(case: Case, impl: Impl) -> dict:
    """The columns that identify a row."""
    return {"op": case.spec.name, "pass": case.pass_, "impl": impl.name, "device": impl.device, "math": impl.math,
            "shape_set": case.shape_set, "shape": shape_str(case.shape)}


def run_cases(cfg: RunConfig, run_dir: Path, printer=print) -> list[dict]:
    """Run every case of `cfg`, writing rows to run_dir as they finish; returns the rows."""
    with run_context(autotune=cfg.autotune):
        return _run_cases(cfg, run_dir, printer)


def _run_cases(cfg: RunConfig, run_dir: Path, printer) -> list[dict]:
    cases = plan(cfg)
    run = Run(cfg, cases, run_dir)
    run.setup(printer)
    table = TablePrinter(printer)
    total = sum(len(c.impls) for c in cases)
    kept = {tuple(str(r[k]) for k in ("op", "pass", "impl", "shape")): r for r in run.writer.rows}
    if kept:
        printer(f"resuming {run_dir}: {len(kept)} rows kept, the cases they cover are not run again")
    with tqdm(total=total, unit="case", disable=None, leave=False) as bar:
        for case in cases:
            refs = ReferenceCache(case.spec, case.shape, case.pass_)
            if kept:
                run.seed_baselines(case, kept)  # a kept baseline still serves the new rows' speedups
            for impl in case.impls:
                done = kept.get((case.spec.name, case.pass_, impl.name, shape_str(case.shape)))
                if done is not None:
                    bar.update()
                    continue
                bar.set_description(f"{case.spec.name}/{case.pass_} {impl.name}")
                try:
                    row = run.run_case(case, impl, refs)
                except Exception as exc:  # e.g. the oracle itself failed (out of memory): record, go on
                    row = {**row_head(case, impl), "status": "error",
                           "reason": one_line(exc)}
                run.add_speedup(case, row)
                run.add_flags(row)
                run.save_compile_logs(row)
                run.writer.write(row)
                table.row(row, lambda line: bar.write(line) if not bar.disable else printer(line))
                bar.update()
    run.writer.close()
    statuses = [r["status"] for r in run.writer.rows]
    run.meta["summary"] = {s: statuses.count(s) for s in sorted(set(statuses))}
    write_meta(run_dir, run.meta)
    return run.writer.rows
