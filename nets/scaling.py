"""`python -m harness train-bench --gpus 1,2,4`: how data-parallel training scales, with and without overlap.

For each model and GPU count N, one launch of N ranks (nets.multigpu.launch) trains on synthetic data of the
model's input size with a fixed batch per GPU (weak scaling: the global batch is N times it). After `warmup`
untimed steps, each of `rounds` rounds times four blocks of `steps` each: training steps with no exchange at all
("none": the same kernels, the all-reduces skipped), with overlap off, with overlap on, and the all-reduces of
the gradient buckets alone ("comm", on spare buffers of the same sizes). Every block starts after a barrier and
ends with a synchronisation; a block's time is that of the slowest rank. Timing all four in the same processes,
round after round, and taking the median round keeps process start-up, clocks and drift out of the comparison
(separate launches of the same configuration differ by up to ~10 % at a few ms per step).

Reported per case: ms per step (median round, with min and max), images/s, scaling efficiency = throughput at N /
(N · throughput at 1 of the same schedule), compute_ms (the "none" block), comm_ms (the all-reduces alone),
comm_share = comm_ms / step time with overlap off, overlap gain = step time off / on, and comm_hidden =
(off − on) / (off − compute_ms): the share of the time that communication added to the step which overlap took
back. Written to scaling.csv and scaling.png in the run folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.results import write_meta
from nets.distributed import Exchange
from nets.multigpu import _check_gpus, launch

DEFAULT_BATCH = {"vgg-small": 256}  # others: the thesis's 32 per GPU
BLOCKS = ("none", "off", "on", "comm")  # the timed blocks of one round, in order


@dataclass
class ScalingConfig:
    models: list[str]
    gpus: list[int]
    backend: str = "cupy_opt"
    steps: int = 20
    warmup: int = 3
    rounds: int = 7
    batch: int | None = None  # per GPU; None: DEFAULT_BATCH or 32
    exchange: Exchange = field(default_factory=Exchange)  # its `overlap` is ignored: every launch times both
    timeout_s: float = 300.0
    seed: int = 0


def _bench_rank(rank, world, uid, beat, model, backend, batch, steps, warmup, rounds, exchange, seed):
    """One rank: {block: [ms per step of each round]} for the blocks in BLOCKS."""
    import cupy

    from nets.backend import resolve
    from nets.distributed import DataParallelSGD, NcclComm
    from nets.models import get_model
    from nets.network import SGD, Network, ops_of

    cupy.cuda.Device(rank).use()
    comm = NcclComm(world, uid, rank, exchange.nccl_channels)
    spec = get_model(model)
    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve(backend, ops_of(layers, loss), {}), spec.input_shape)
    net.init(seed)
    dp = DataParallelSGD(net, SGD(net, spec.lr), comm, exchange)  # dp.overlap is switched per block
    rng = np.random.default_rng([seed, rank])
    x = cupy.asarray(rng.uniform(-1, 1, (batch, *spec.input_shape)).astype(net.backend.dtype))
    y = cupy.asarray(rng.integers(0, 10, batch).astype(np.int32))
    spare = [[cupy.zeros_like(p.grad) for p in b.params] for b in dp.buckets]  # zeros: sums stay zero
    flag = cupy.zeros(1, dtype=np.float32)
    compute, comm_stream = dp.streams.compute, dp.streams.comm

    def barrier():
        comm.allreduce([flag], compute)
        compute.synchronize()

    def block(name: str) -> float:
        barrier()
        dp.comm, dp.overlap = (_NoExchange() if name == "none" else comm), name == "on"
        t0 = time.perf_counter()
        for _ in range(steps):
            if name == "comm":
                for arrays in spare:
                    comm.allreduce(arrays, comm_stream)
            else:
                dp.train_step(x, y, 1 / world)
            beat()
        compute.synchronize()
        comm_stream.synchronize()
        dp.comm = comm
        return (time.perf_counter() - t0) / steps * 1e3

    times: dict[str, list[float]] = {b: [] for b in BLOCKS}
    with dp.stream_context():
        for i in range(warmup):
            dp.overlap = bool(i % 2)
            dp.train_step(x, y, 1 / world)
            beat()
        for _ in range(rounds):
            for name in BLOCKS:
                times[name].append(block(name))
    return times


class _NoExchange:
    """A communicator that exchanges nothing: the "none" block's steps run every kernel but no all-reduce."""

    def allreduce(self, arrays: list, stream) -> None:
        pass


def rows_of(model: str, backend: str, gpus: int, batch: int, per_rank: list[dict]) -> list[dict]:
    """The two rows (overlap off, on) of one launch: per round the slowest rank, then the median over rounds."""
    slowest = {b: np.max([r[b] for r in per_rank], axis=0) for b in BLOCKS}
    compute_ms, comm_ms = float(np.median(slowest["none"])), float(np.median(slowest["comm"]))
    rows = []
    for overlap in ("off", "on"):
        ms = slowest[overlap]
        med = float(np.median(ms))
        rows.append({"model": model, "backend": backend, "gpus": gpus, "overlap": overlap, "batch_per_gpu": batch,
                     "global_batch": gpus * batch, "ms_per_step": med, "ms_min": float(ms.min()),
                     "ms_max": float(ms.max()), "rounds": len(ms), "images_per_s": gpus * batch / med * 1e3,
                     "compute_ms": compute_ms, "comm_ms": comm_ms})
    return rows


def run_scaling(cfg: ScalingConfig, run_dir: Path, printer=print) -> pd.DataFrame:
    _check_gpus(max(cfg.gpus))
    run_dir.mkdir(parents=True, exist_ok=True)
    exchange = cfg.exchange
    printer(f"exchange: {exchange.settings()}")
    rows = []
    printer(f"{'model':<10} {'gpus':>4} {'overlap':>7} {'batch':>6} {'ms/step':>9} {'min..max':>17} "
            f"{'images/s':>10} {'no-exchange ms':>14} {'comm ms':>8}")
    for model in cfg.models:
        batch = cfg.batch or DEFAULT_BATCH.get(model, 32)
        for n in cfg.gpus:
            per_rank = launch(n, _bench_rank, (model, cfg.backend, batch, cfg.steps, cfg.warmup, cfg.rounds,
                                               exchange, cfg.seed), cfg.timeout_s)
            for row in rows_of(model, cfg.backend, n, batch, per_rank):
                rows.append({**row, "bucket_mb": exchange.bucket_bytes / 2**20, "comm_priority": exchange.comm_priority,
                             "nccl_channels": exchange.nccl_channels or "default"})
                printer(f"{model:<10} {n:>4} {row['overlap']:>7} {batch:>6} {row['ms_per_step']:>9.3f} "
                        f"{row['ms_min']:>8.3f}..{row['ms_max']:<8.3f} {row['images_per_s']:>10,.0f} "
                        f"{row['compute_ms']:>14.3f} {row['comm_ms']:>8.3f}")
    df = add_derived(pd.DataFrame(rows))
    df.to_csv(run_dir / "scaling.csv", index=False)
    write_meta(run_dir, scaling_meta(cfg))
    plot(df, run_dir / "scaling.png")
    return df


def scaling_meta(cfg: ScalingConfig) -> dict:
    """meta.json: the command, host and GPU, NCCL's version and the settings every row shares."""
    import sys
    from dataclasses import asdict

    import cupy

    from harness.comm.nccl import nccl
    from harness.measure.ceilings import gpu_meta
    from harness.results import base_meta

    return {**base_meta(sys.argv[1:]), **gpu_meta(), "gpus_available": cupy.cuda.runtime.getDeviceCount(),
            "nccl": nccl().get_version(), "nccl_env": {k: v for k, v in os.environ.items() if k.startswith("NCCL_")},
            "exchange": cfg.exchange.settings(), "config": asdict(cfg)}


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Scaling efficiency against 1 GPU of the same model and schedule; overlap gain = off / on step time;
    comm_share = comm_ms / off step time; comm_hidden = (off − on) / (off − compute_ms) (on rows, N > 1)."""
    one = df[df.gpus == 1].set_index(["model", "overlap"]).images_per_s
    df["efficiency"] = [r.images_per_s / (r.gpus * one.get((r.model, r.overlap), float("nan")))
                        for r in df.itertuples()]
    off = df[df.overlap == "off"].set_index(["model", "gpus"]).ms_per_step
    off_ms = np.array([off.get((r.model, r.gpus), float("nan")) for r in df.itertuples()])  # each row's "off" time
    df["overlap_gain"] = np.where(df.overlap == "on", off_ms / df.ms_per_step, np.nan)
    df["comm_share"] = df.comm_ms / off_ms
    several = (df.overlap == "on") & (df.gpus > 1)  # on 1 GPU the "all-reduce" is a local copy: nothing to hide
    added = (off_ms - df.compute_ms).where(several)  # what the exchange added to a step without overlap
    df["comm_hidden"] = np.where(several, (off_ms - df.ms_per_step) / added, np.nan)
    return df


def plot(df: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(df.model))
    fig = Figure(figsize=(4 * len(models), 3.4))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        sub = df[df.model == model]
        for overlap, marker in (("off", "o"), ("on", "s")):
            s = sub[sub.overlap == overlap]
            images = s.gpus * s.batch_per_gpu * 1e3  # error bars: the slowest and fastest round (rounding: >= 0)
            spread = np.clip([s.images_per_s - images / s.ms_max, images / s.ms_min - s.images_per_s], 0, None)
            ax.errorbar(s.gpus, s.images_per_s, yerr=spread, marker=marker, capsize=3, label=f"overlap {overlap}")
        one = sub[(sub.gpus == 1) & (sub.overlap == "on")].images_per_s
        if len(one):
            ax.plot(sub.gpus.unique(), one.iloc[0] * sub.gpus.unique(), "k:", label="linear")
        ax.set(title=model, xlabel="GPUs", ylabel="images/s", xticks=sorted(sub.gpus.unique()))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
