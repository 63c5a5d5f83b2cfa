"""`python -m harness train-bench --gpus 1,2,4`: how data-parallel training scales, with and without overlap.

For each model, GPU count N and exchange schedule, N ranks (nets.multigpu.launch) train on synthetic data of the
model's input size with a fixed batch per GPU (weak scaling: the global batch is N times it), `warmup` untimed
steps then `steps` timed ones between two synchronisations. Reported per case: ms per step, images/s, scaling
efficiency = throughput at N / (N · throughput at 1 of the same schedule), and the overlap gain = step time with
overlap off / on. Written to scaling.csv and scaling.png in the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nets.multigpu import _check_gpus, launch

DEFAULT_BATCH = {"vgg-small": 256}  # others: the thesis's 32 per GPU


@dataclass
class ScalingConfig:
    models: list[str]
    gpus: list[int]
    backend: str = "cupy_tiled"
    steps: int = 20
    warmup: int = 3
    batch: int | None = None  # per GPU; None: DEFAULT_BATCH or 32
    bucket_mb: float = 25.0
    timeout_s: float = 300.0
    seed: int = 0


def _bench_rank(rank, world, uid, beat, model, backend, batch, steps, warmup, overlap, bucket_bytes, seed):
    import cupy
    import numpy as np

    from nets.backend import resolve
    from nets.distributed import DataParallelSGD, NcclComm
    from nets.models import get_model
    from nets.network import SGD, Network, ops_of

    cupy.cuda.Device(rank).use()
    comm = NcclComm(world, uid, rank)
    spec = get_model(model)
    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve(backend, ops_of(layers, loss), {}), spec.input_shape)
    net.init(seed)
    dp = DataParallelSGD(net, SGD(net, spec.lr), comm, overlap, bucket_bytes)
    rng = np.random.default_rng([seed, rank])
    x = cupy.asarray(rng.uniform(-1, 1, (batch, *spec.input_shape)).astype(net.backend.dtype))
    y = cupy.asarray(rng.integers(0, 10, batch).astype(np.int32))
    with dp.stream_context():
        for _ in range(warmup):
            dp.train_step(x, y, 1 / world)
            beat()
        dp.streams.compute.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            dp.train_step(x, y, 1 / world)
            beat()
        dp.streams.compute.synchronize()
    return (time.perf_counter() - t0) / steps * 1e3


def run_scaling(cfg: ScalingConfig, run_dir: Path, printer=print) -> pd.DataFrame:
    _check_gpus(max(cfg.gpus))
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    printer(f"{'model':<10} {'gpus':>4} {'overlap':>7} {'batch':>6} {'ms/step':>9} {'images/s':>10}")
    for model in cfg.models:
        batch = cfg.batch or DEFAULT_BATCH.get(model, 32)
        for n in cfg.gpus:
            for overlap in (False, True):
                ms = launch(n, _bench_rank, (model, cfg.backend, batch, cfg.steps, cfg.warmup, overlap,
                                             int(cfg.bucket_mb * 2**20), cfg.seed), cfg.timeout_s)
                step_ms = max(ms)  # the slowest rank sets the pace
                row = {"model": model, "backend": cfg.backend, "gpus": n, "overlap": "on" if overlap else "off",
                       "batch_per_gpu": batch, "global_batch": n * batch, "ms_per_step": step_ms,
                       "images_per_s": n * batch / step_ms * 1e3}
                rows.append(row)
                printer(f"{model:<10} {n:>4} {row['overlap']:>7} {batch:>6} {step_ms:>9.3f} "
                        f"{row['images_per_s']:>10,.0f}")
    df = add_derived(pd.DataFrame(rows))
    df.to_csv(run_dir / "scaling.csv", index=False)
    plot(df, run_dir / "scaling.png")
    return df


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Scaling efficiency against 1 GPU of the same model and schedule; overlap gain = off / on step time."""
    one = df[df.gpus == 1].set_index(["model", "overlap"]).images_per_s
    df["efficiency"] = [r.images_per_s / (r.gpus * one.get((r.model, r.overlap), float("nan")))
                        for r in df.itertuples()]
    off = df[df.overlap == "off"].set_index(["model", "gpus"]).ms_per_step
    df["overlap_gain"] = [off.get((r.model, r.gpus), float("nan")) / r.ms_per_step if r.overlap == "on"
                          else float("nan") for r in df.itertuples()]
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
            ax.plot(s.gpus, s.images_per_s, marker=marker, label=f"overlap {overlap}")
        one = sub[(sub.gpus == 1) & (sub.overlap == "on")].images_per_s
        if len(one):
            ax.plot(sub.gpus.unique(), one.iloc[0] * sub.gpus.unique(), "k:", label="linear")
        ax.set(title=model, xlabel="GPUs", ylabel="images/s", xticks=sorted(sub.gpus.unique()))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
