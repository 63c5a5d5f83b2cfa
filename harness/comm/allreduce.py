"""`python -m harness allreduce`: NCCL all-reduce bandwidth across the GPUs of this machine, nccl-tests style.

One process drives every GPU (ncclCommInitAll through cupy.cuda.nccl); each size is an out-of-place float32 SUM
all-reduce. Rank r's send buffer holds r + 1 everywhere, so every element of every receive buffer must equal
N(N+1)/2 exactly: each size is checked on every rank before it is timed. Timing follows nccl-tests: warm-up, then
back-to-back iterations between two synchronisations of every GPU, several trials, median per call. Reported as
nccl-tests defines them: algorithm bandwidth = bytes / time, bus bandwidth = algbw · 2(N−1)/N (the traffic each
link carries in a ring all-reduce, comparable across N). Rows go to results.csv like every other run
(op "allreduce", impl "nccl"; gbps is algbw, busbw_gbps the bus bandwidth).
"""

from __future__ import annotations

import re
import sys
import time

from harness.device import gpu_unavailable_reason
from harness.errors import UsageError
from harness.measure.timing import stats
from harness.results import ResultWriter, base_meta, new_run_dir, write_meta

UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
         "G": 2**30, "GB": 2**30, "GIB": 2**30}


def parse_bytes(text: str) -> int:
    """'1KiB', '64M', '1G', '4096' -> bytes; anything else is a UsageError."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in UNITS:
        raise UsageError(f"bad size '{text}': expected a number with an optional unit K, M, G (KiB, MiB, GiB)")
    return int(m.group(1)) * UNITS[m.group(2).upper()]


def sizes(lo: int, hi: int) -> list[int]:
    """Powers of two from lo to hi bytes (rounded to whole float32 elements)."""
    if lo < 4 or hi < lo:
        raise UsageError(f"need 4 <= --min-bytes <= --max-bytes, got {lo} and {hi}")
    out, b = [], lo
    while b <= hi:
        out.append(b - b % 4)
        b *= 2
    return out


def bus_factor(n: int) -> float:
    """nccl-tests' bus-bandwidth factor for all-reduce: 2(n−1)/n."""
    return 2 * (n - 1) / n if n > 1 else 1.0


class Group:
    """One communicator and stream per GPU, driven from this process."""

    def __init__(self, n: int):
        import cupy

        from harness.comm.nccl import nccl

        self.cp, self.nccl, self.n = cupy, nccl(), n
        self.comms = self.nccl.NcclCommunicator.initAll(list(range(n)))
        self.streams = []
        for d in range(n):
            with cupy.cuda.Device(d):
                self.streams.append(cupy.cuda.Stream(non_blocking=True))

    def buffers(self, count: int):
        send, recv = [], []
        for d in range(self.n):
            # filled on the stream the all-reduce runs on: a non-blocking stream does not wait for the default one
            with self.cp.cuda.Device(d), self.streams[d]:
                send.append(self.cp.full(count, d + 1, dtype=self.cp.float32))
                recv.append(self.cp.full(count, self.cp.nan, dtype=self.cp.float32))
        return send, recv

    def allreduce(self, send, recv) -> None:
        self.nccl.groupStart()
        for d in range(self.n):
            with self.cp.cuda.Device(d):
                self.comms[d].allReduce(send[d].data.ptr, recv[d].data.ptr, send[d].size, self.nccl.NCCL_FLOAT32,
                                        self.nccl.NCCL_SUM, self.streams[d].ptr)
        self.nccl.groupEnd()

    def sync(self) -> None:
        for s in self.streams:
            s.synchronize()


def measure(group: Group, nbytes: int, trials: int = 7, target_s: float = 0.02) -> dict:
    """Check, then time one size; returns a results row."""
    count = nbytes // 4
    send, recv = group.buffers(count)
    expected = group.n * (group.n + 1) / 2
    group.allreduce(send, recv)
    group.sync()
    wrong = sum(int((r != expected).sum()) for r in recv)
    row = {"op": "allreduce", "pass": "sum", "impl": "nccl", "device": "gpu", "math": "fp32", "shape_set": "sizes",
           "shape": f"bytes={nbytes},ranks={group.n}", "flops": count * (group.n - 1), "bytes": nbytes, "seeds": 1}
    if wrong:
        return {**row, "status": "fail", "reason": f"{wrong} elements differ from {expected:g}"}
    for _ in range(5):
        group.allreduce(send, recv)
    group.sync()
    t0 = time.perf_counter()
    group.allreduce(send, recv)
    group.sync()
    iters = max(1, min(1000, int(target_s / max(time.perf_counter() - t0, 1e-6))))
    samples = []
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(iters):
            group.allreduce(send, recv)
        group.sync()
        samples.append((time.perf_counter() - t0) / iters * 1e3)
    t = stats(samples)
    algbw = nbytes / (t.median_ms / 1e3) / 1e9
    return {**row, "status": "pass", "err": 0.0, **t.as_dict(), "gflops": row["flops"] / t.median_ms / 1e6,
            "gbps": algbw, "busbw_gbps": algbw * bus_factor(group.n), "peak_kind": "nccl busbw",
            "note": f"{iters} back-to-back calls per trial, {trials} trials"}


def cmd_allreduce(args) -> int:
    reason = gpu_unavailable_reason()
    if reason:
        print(f"error: allreduce needs CUDA GPUs: {reason}", file=sys.stderr)
        return 2
    import cupy

    available = cupy.cuda.runtime.getDeviceCount()
    n = args.gpus or available
    if not 1 <= n <= available:
        raise UsageError(f"--gpus {n}: this machine has {available} GPU(s)")
    plan = sizes(parse_bytes(args.min_bytes), parse_bytes(args.max_bytes))
    run_dir = new_run_dir(args.out)
    writer = ResultWriter(run_dir)
    group = Group(n)
    write_meta(run_dir, {**base_meta(sys.argv[1:]), "gpus": n, "nccl": group.nccl.get_version()})
    print(f"NCCL all-reduce, float32 SUM, out of place, {n} GPU(s)")
    print(f"{'bytes':>12}  {'time_us':>10}  {'algbw GB/s':>10}  {'busbw GB/s':>10}  status")
    for b in plan:
        row = measure(group, b)
        writer.write(row)
        t = row.get("median_ms")
        line = f"{b:>12}  " + (f"{t * 1e3:>10.1f}  {row['gbps']:>10.2f}  {row['busbw_gbps']:>10.2f}" if t else
                               f"{'-':>10}  {'-':>10}  {'-':>10}")
        print(f"{line}  {row['status']} {row.get('reason', '')}".rstrip())
    writer.close()
    print(f"results: {run_dir / 'results.csv'}")
    return 0 if all(r["status"] == "pass" for r in writer.rows) else 1


def add_commands(sub) -> None:
    p = sub.add_parser("allreduce", help="NCCL all-reduce bandwidth across this machine's GPUs (nccl-tests style)")
    p.add_argument("--gpus", type=int, help="number of GPUs (default: all)")
    p.add_argument("--min-bytes", default="1K", help="smallest message (default 1K)")
    p.add_argument("--max-bytes", default="1G", help="largest message (default 1G)")
    p.add_argument("--out", help="run folder (default: reports/<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out (default: refuse)")
    p.set_defaults(func=cmd_allreduce)
