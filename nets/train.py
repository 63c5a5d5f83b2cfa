"""The training loop: data on the backend's device once, shuffled mini-batch SGD, per-epoch metrics, CSV and plot.

Per epoch it records the mean training loss, the training accuracy (of the forward passes made while training, so
it costs nothing extra), the test accuracy (a forward pass over the test split in batches of EVAL_BATCH), the
training time and images per second, and the evaluation time. The run folder (default reports/train-<UTC time>)
gets history.csv, history.png (loss and accuracies by epoch) and meta.json (settings, implementations, machine).

Reproducibility: weights come from the seed (nets.network.Network.init) and the shuffling order from a separate
PCG64 stream of the same seed; the loss and accuracy are accumulated on the device and read once per epoch, and
the batch is gathered into a preallocated buffer, so a GPU step makes no host<->device copy.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from harness.device import synchronize
from harness.errors import UsageError
from harness.results import base_meta, can_write_in, new_run_dir, write_meta
from nets import checkpoint
from nets.backend import Backend, resolve
from nets.data import Dataset, fit, load, subset
from nets.models import ModelSpec, get_model
from nets.network import SGD, Network, ops_of

EVAL_BATCH = 256
COLUMNS = ["epoch", "steps", "loss", "train_acc", "test_acc", "epoch_s", "images_per_s", "eval_s"]
# Settings that define the experiment: on --resume they come from the checkpoint and may not be changed.
FIXED_ON_RESUME = ("model", "dataset", "hidden", "seed", "data_dir", "resize", "train_size", "test_size",
                   "synthetic_shape", "synthetic_count")


@dataclass
class TrainConfig:
    """What `python -m harness train` was asked for; None means the model's default (or the checkpoint's)."""

    model: str | None = None
    dataset: str | None = None
    backend: str | None = None
    impl: dict[str, str] = field(default_factory=dict)
    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    seed: int | None = None
    hidden: tuple[int, ...] | None = None
    data_dir: str | None = None
    resize: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    synthetic_shape: tuple[int, int, int] | None = None
    synthetic_count: int | None = None
    out: str | None = None
    save: str | None = None
    resume: str | None = None
    progress: bool = True
    graph: str = "on"  # capture each step into a CUDA graph where the backend can (nets.graph)
    fuse: str = "on"  # fused layers (nets.fusion): ReLU + max pool, dense + ReLU


DEFAULTS = {"model": "mlp1", "dataset": "digits", "backend": "numpy_opt", "seed": 0, "resize": "bilinear",
            "synthetic_count": 1024}
# What a resumed run takes from its checkpoint when not given (the output paths are never inherited).
INHERITED = (*FIXED_ON_RESUME, "backend", "epochs", "lr", "batch")


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    net: Network
    backend: Backend
    config: TrainConfig


def settle(cfg: TrainConfig, resumed: dict | None) -> TrainConfig:
    """Fill every None from the checkpoint's settings (when resuming), then from the model's and global defaults."""
    values = dataclasses.asdict(cfg)
    if resumed:
        for key in INHERITED:
            saved, given = resumed.get(key), values[key]
            if isinstance(given, tuple | list):
                given = list(given)
            if key in FIXED_ON_RESUME and given is not None and given != saved:
                raise UsageError(f"--{key.replace('_', '-')} {given} differs from the checkpoint's {saved}; "
                                 "leave it out to resume")
            if values[key] is None:
                values[key] = saved
    for key, default in DEFAULTS.items():
        if values[key] is None:
            values[key] = default
    spec = get_model(values["model"])
    for key in ("epochs", "lr", "batch"):
        if values[key] is None:
            values[key] = getattr(spec, key)
    for key in ("hidden", "synthetic_shape"):
        if values[key] is not None:
            values[key] = tuple(values[key])
    out = TrainConfig(**values)
    if out.epochs < 1 or out.batch < 1:
        raise UsageError(f"--epochs and --batch must be >= 1, got {out.epochs} and {out.batch}")
    if out.save:
        _check_save(Path(out.save))
    return out


def _check_save(path: Path) -> None:
    """Refuse before epoch 1 a checkpoint path that cannot be written (a folder, an unwritable place)."""
    if path.is_dir():
        raise UsageError(f"--save {path}: is a folder; give a file name such as {path / 'model.npz'}")
    if not can_write_in(path.parent):
        raise UsageError(f"--save {path}: cannot write a file in {path.parent}")


def prepare_data(cfg: TrainConfig, spec: ModelSpec) -> Dataset:
    shape = cfg.synthetic_shape or spec.input_shape or (1, 8, 8)
    ds = load(cfg.dataset, cfg.data_dir, shape, cfg.synthetic_count, cfg.seed)
    ds = subset(ds, cfg.train_size, cfg.test_size)
    return fit(ds, spec.input_shape, cfg.resize)


def build(cfg: TrainConfig, spec: ModelSpec, classes: int, image_shape) -> tuple[Network, SGD]:
    fuse = cfg.fuse == "on"
    layers, loss = spec.layers(classes, cfg.hidden, fuse=fuse), spec.loss_layer(fuse)
    backend = resolve(cfg.backend, ops_of(layers, loss), cfg.impl)
    net = Network(layers, loss, backend, image_shape)
    net.init(cfg.seed)
    return net, SGD(net, cfg.lr)


class Trainer:
    """One network, its optimiser and its data on the device; `epoch()` trains one pass, `evaluate()` tests."""

    def __init__(self, net: Network, opt: SGD, ds: Dataset, batch: int, seed: int):
        self.net, self.opt, self.batch = net, opt, batch
        b = net.backend
        self.xp = b.xp
        self.x_train = self.xp.asarray(ds.x_train.astype(b.dtype))
        self.y_train = self.xp.asarray(ds.y_train.astype(np.int32))
        self.x_test = self.xp.asarray(ds.x_test.astype(b.dtype))
        self.y_test = self.xp.asarray(ds.y_test.astype(np.int32))
        self.rng = np.random.default_rng([seed, 1])  # the shuffling stream, independent of the weights'
        self._bufs: dict[int, tuple] = {}

    def _batch(self, x, y, idx):
        """x[idx], y[idx] gathered into buffers kept per batch size (no allocation per step)."""
        n = len(idx)
        if n not in self._bufs:
            self._bufs[n] = (self.xp.empty((n, *x.shape[1:]), dtype=x.dtype), self.xp.empty(n, dtype=np.int32))
        xb, yb = self._bufs[n]
        self.xp.take(x, idx, axis=0, out=xb)
        self.xp.take(y, idx, axis=0, out=yb)
        return xb, yb

    def step(self, idx):
        """One SGD step on the training images `idx` (a device index array); returns (loss, logits, labels)."""
        xb, yb = self._batch(self.x_train, self.y_train, idx)
        loss, logits = self.opt.train_step(xb, yb)
        return loss, logits, yb

    def steps_per_epoch(self) -> int:
        return -(-len(self.y_train) // self.batch)

    def epoch(self, bar=None) -> tuple[float, float]:
        """One shuffled pass; returns (mean loss, training accuracy)."""
        xp, n = self.xp, len(self.y_train)
        order = xp.asarray(self.rng.permutation(n))
        loss_sum = xp.zeros((), dtype=np.float64)
        correct = xp.zeros((), dtype=np.int64)
        for start in range(0, n, self.batch):
            loss, logits, yb = self.step(order[start:start + self.batch])
            loss_sum += loss * len(yb)
            correct += (logits.argmax(axis=1) == yb).sum()
            if bar is not None:
                bar.update(1)
        loss_sum, correct = self.totals(loss_sum, correct)
        return float(loss_sum) / n, int(correct) / n

    def totals(self, loss_sum, correct):
        """The epoch's loss sum and correct count over the whole batch (data-parallel ranks add theirs up)."""
        return loss_sum, correct

    def evaluate(self) -> float:
        """Test accuracy."""
        correct, n = 0, len(self.y_test)
        for start in range(0, n, EVAL_BATCH):
            idx = self.xp.arange(start, min(start + EVAL_BATCH, n))
            xb, yb = self._batch(self.x_test, self.y_test, idx)
            correct += int((self.net.forward(xb).argmax(axis=1) == yb).sum())
        return correct / n


def train(cfg: TrainConfig, printer=print, make_trainer=Trainer, main: bool = True) -> TrainResult:
    """Train as `cfg` says; write the run folder; return the history and the trained network.

    make_trainer(net, opt, ds, batch, seed) builds the Trainer (nets.multigpu passes a data-parallel one);
    only the `main` process (rank 0) writes the run folder and checkpoints."""
    ck = checkpoint.load(cfg.resume) if cfg.resume else None
    cfg = settle(cfg, ck.meta["config"] if ck else None)
    spec = get_model(cfg.model)
    ds = prepare_data(cfg, spec)
    net, opt = build(cfg, spec, ds.classes, ds.image_shape)
    graph_note = "off"
    if make_trainer is Trainer:
        from nets.graph import make_trainer as graph_trainer

        make_trainer, graph_note = graph_trainer(cfg.graph, net.backend)
    trainer = make_trainer(net, opt, ds, cfg.batch, cfg.seed)
    history: list[dict] = []
    if ck:
        net.load_state(ck.params, cfg.resume)
        opt.steps = ck.meta["step"]
        trainer.rng.bit_generator.state = ck.meta["rng_state"]
        history = ck.meta["history"]
    first = len(history)
    run_dir = new_run_dir(cfg.out, "train")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    b = net.backend
    printer(f"{cfg.model} on {cfg.dataset}: {len(ds.y_train)} train / {len(ds.y_test)} test images of "
            f"{'x'.join(map(str, ds.image_shape))}; backend {b.name} ({b.device}, {np.dtype(b.dtype).name}); "
            f"{len(net.params)} tensors, {sum(p.value.size for p in net.params):,} parameters")
    for line in b.describe():
        printer(f"  {line}")
    if graph_note not in ("off", "off (CPU)"):
        printer(f"  CUDA graph: {graph_note}")
    if first:
        printer(f"resumed from {cfg.resume} after epoch {first} (step {opt.steps})")
    if first >= cfg.epochs:
        printer(f"nothing to do: the checkpoint already has {first} of {cfg.epochs} epochs")

    for epoch in range(first, cfg.epochs):
        with tqdm(total=trainer.steps_per_epoch(), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                  leave=False, disable=None if cfg.progress else True) as bar:  # None: not on a pipe
            t0 = time.perf_counter()
            loss, train_acc = trainer.epoch(bar)
            synchronize(b.device)
            epoch_s = time.perf_counter() - t0
        if getattr(trainer, "declined", None) and graph_note == "on":
            graph_note = trainer.status()
            printer(f"  CUDA graph: {graph_note}; trained eagerly")
        t0 = time.perf_counter()
        test_acc = trainer.evaluate()
        eval_s = time.perf_counter() - t0
        if not np.isfinite(loss):
            raise UsageError(f"the loss diverged to {loss} in epoch {epoch + 1}; try a smaller --lr than {cfg.lr}")
        row = {"epoch": epoch + 1, "steps": opt.steps, "loss": loss, "train_acc": train_acc, "test_acc": test_acc,
               "epoch_s": epoch_s, "images_per_s": len(ds.y_train) / epoch_s, "eval_s": eval_s}
        history.append(row)
        printer(f"epoch {epoch + 1:>3}/{cfg.epochs}  loss {loss:.4f}  train {train_acc:6.2%}  test {test_acc:6.2%}  "
                f"{epoch_s:6.2f} s  {row['images_per_s']:9,.0f} img/s")
        if main:
            write_csv(run_dir / "history.csv", history)
        if cfg.save and main:
            checkpoint.save(cfg.save, net.state(), {
                "config": dataclasses.asdict(cfg), "epoch": epoch + 1, "step": opt.steps,
                "rng_state": trainer.rng.bit_generator.state, "history": history})

    if main:
        write_csv(run_dir / "history.csv", history)
        if history:
            plot_history(history, run_dir / "history.png", f"{cfg.model} on {cfg.dataset}, backend {b.name}")
        write_meta(run_dir, {**train_meta(cfg, b, history), "graph": graph_note})
    printer(f"run folder: {run_dir}" + (f"; checkpoint: {cfg.save}" if cfg.save else ""))
    return TrainResult(run_dir, history, net, b, cfg)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)


def train_meta(cfg: TrainConfig, backend: Backend, history: list[dict]) -> dict:
    """meta.json of a training run: the machine, the settings, the implementation of every pass, the last epoch."""
    return {**base_meta(["train"]), "config": dataclasses.asdict(cfg), "backend": backend.name,
            "device": backend.device, "dtype": np.dtype(backend.dtype).name,
            "implementations": backend.impl_names(), "final": history[-1] if history else None}


def plot_history(rows: list[dict], path: Path, title: str) -> None:
    """Loss (left) and train/test accuracy (right) by epoch, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax_loss.plot(epochs, [r["loss"] for r in rows], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_acc.plot(epochs, [r["train_acc"] for r in rows], marker=".", label="train")
    ax_acc.plot(epochs, [r["test_acc"] for r in rows], marker=".", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
