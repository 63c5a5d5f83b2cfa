"""The `train` and `train-bench` subcommands of `python -m harness` (added by harness/cli.py).

    python -m harness train --model lenet --dataset digits [--backend numpy_opt --epochs N --batch 32 --lr 0.05
                            --seed 0 --use conv2d=cudnn ... --data-dir DIR --out DIR --save PATH --resume PATH]
    python -m harness train-bench [--models thesis-0,... --backends numpy_ref,cudnn,... --steps 20]
    python -m harness train --model lenet --gpus 2 [--overlap on|off --bucket-mb 25 --nccl-channels 4]
    python -m harness train-bench --gpus 1,2,4 [--batch-per-gpu 16 --rounds 7]  (nets.multigpu, nets.scaling)

Settings left out take the model's defaults (nets/models.py's table) or, with --resume, the checkpoint's.
Bad input raises harness.errors.UsageError, which harness/cli.py prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from harness.argtypes import at_least, positive
from harness.errors import UsageError


def _ints(text: str, what: str, sep: str = ",") -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(sep) if t.strip())
    except ValueError:
        raise UsageError(f"bad {what} '{text}': expected integers separated by '{sep}'") from None
    if not values or min(values) < 1:
        raise UsageError(f"bad {what} '{text}': expected positive integers")
    return values


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _add_exchange_args(p, scope: str = "") -> None:
    """The gradient-exchange options that `train --gpus` and `train-bench --gpus` share (nets.distributed)."""
    p.add_argument("--bucket-mb", type=float, default=25.0, help=f"{scope}gradient bucket size in MiB (default 25)")
    p.add_argument("--comm-priority", choices=("normal", "high"), default="normal",
                   help=f"{scope}CUDA priority of the all-reduce stream (default normal)")
    p.add_argument("--nccl-channels", type=int, help=f"{scope}at most this many NCCL channels (SMs) per all-reduce; "
                   "fewer leave more SMs to the overlapped backward passes (default: NCCL's choice)")


def _exchange(args, overlap: bool):
    from nets.distributed import Exchange

    if args.bucket_mb <= 0 or (args.nccl_channels is not None and args.nccl_channels < 1):
        raise UsageError("--bucket-mb must be > 0 and --nccl-channels >= 1")
    return Exchange(overlap, int(args.bucket_mb * 2**20), args.comm_priority, args.nccl_channels)


def cmd_train(args) -> int:
    from nets.backend import parse_overrides
    from nets.train import TrainConfig, train

    shape = _ints(args.synthetic_shape, "--synthetic-shape", "x") if args.synthetic_shape else None
    if shape is not None and len(shape) != 3:
        raise UsageError(f"bad --synthetic-shape '{args.synthetic_shape}': expected CxHxW, e.g. 3x32x32")
    cfg = TrainConfig(
        model=args.model, dataset=args.dataset, backend=args.backend, impl=parse_overrides(args.use),
        epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
        hidden=_ints(args.hidden, "--hidden") if args.hidden else None, data_dir=args.data_dir, resize=args.resize,
        train_size=args.train_size, test_size=args.test_size, synthetic_shape=shape,
        synthetic_count=args.synthetic_count, out=args.out, save=args.save, resume=args.resume,
        progress=not args.no_progress, graph=args.graph, fuse=args.fuse,
    )
    if args.gpus is None and args.launcher != "mpi":
        train(cfg)
        return 0
    from nets.multigpu import train_data_parallel

    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0")
    try:
        train_data_parallel(cfg, args.gpus or 1, _exchange(args, overlap=args.overlap == "on"), args.timeout,
                            args.launcher)
    except RuntimeError as exc:  # a rank failed or hung: one line, non-zero exit
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_train_bench(args) -> int:
    from harness.errors import choices_error
    from harness.registry import canonical
    from harness.results import new_run_dir
    from nets.backend import BACKENDS, backend_names, parse_overrides
    from nets.bench import BenchConfig, run_bench
    from nets.models import THESIS_MODELS, get_model
    from nets.peer import KINDS

    if args.gpus:
        return _scaling(args)
    models = _names(args.models) or list(THESIS_MODELS)
    for m in models:
        get_model(m)
    batches = list(_ints(str(args.batch), "--batch"))
    for g in args.graph.split(","):
        if g.strip() not in ("on", "off"):
            raise choices_error("--graph value", g.strip(), ["on", "off"])
    backends = _names(args.backends) or list(BACKENDS)
    if backends == ["all"]:
        backends = backend_names()
    for name in backends:
        if canonical(name) not in backend_names():
            raise choices_error("backend", name, backend_names())
    fuses = [f.strip() for f in args.fuse.split(",")]
    for f in fuses:
        if f not in ("on", "off"):
            raise choices_error("--fuse value", f, ["on", "off"])
    peers = () if args.no_peer else tuple(_names(args.peers))
    for kind in peers:
        if kind not in KINDS:
            raise choices_error("--peers value", kind, list(KINDS))
    cfg = BenchConfig(models=models, backends=backends,
                      impl=parse_overrides(args.use), steps=args.steps, warmup=args.warmup, batches=batches,
                      graphs=[g.strip() for g in args.graph.split(",")], repeat=args.repeat,
                      max_s=args.max_seconds, seed=args.seed, peers=peers, fuses=fuses,
                      accuracy_epochs=args.accuracy_epochs)
    run_dir = new_run_dir(args.out, "train-bench")
    run_bench(cfg, run_dir)
    print(f"\ntable: {run_dir / 'train_bench.csv'}; plot: {run_dir / 'train_bench.png'}")
    return 0


def _scaling(args) -> int:
    from harness.results import new_run_dir
    from nets.models import THESIS_MODELS, get_model
    from nets.scaling import ScalingConfig, run_scaling

    models = _names(args.models) or [*THESIS_MODELS, "vgg-small"]
    for m in models:
        get_model(m)
    if args.steps < 1 or args.rounds < 1 or (args.batch_per_gpu is not None and args.batch_per_gpu < 1):
        raise UsageError("--steps, --rounds and --batch-per-gpu must be >= 1")
    backends = _names(args.backends) or ["cupy_opt"]
    if len(backends) != 1:
        raise UsageError("train-bench --gpus times one backend; give one with --backends")
    cfg = ScalingConfig(models=models, gpus=list(_ints(args.gpus, "--gpus")), backend=backends[0], steps=args.steps,
                        warmup=args.warmup, rounds=args.rounds, batch=args.batch_per_gpu,
                        exchange=_exchange(args, overlap=False), seed=args.seed)
    run_dir = new_run_dir(args.out, "scaling")
    df = run_scaling(cfg, run_dir)
    cols = ["model", "gpus", "overlap", "ms_per_step", "images_per_s", "efficiency", "comm_share", "overlap_gain",
            "comm_hidden"]
    print("\n" + df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ntable: {run_dir / 'scaling.csv'}; plot: {run_dir / 'scaling.png'}")
    return 0


class _OldImplFlag(argparse._AppendAction):
    """`train --impl OP=NAME`, the old spelling of --use (kept for one release, with a note)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print("note: train's --impl OP=NAME is now --use OP=NAME; --impl works until the next release", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def _use_option(p: argparse.ArgumentParser, help_text: str) -> None:
    """--use OP=NAME (repeatable): the per-op override; --impl stays the name of `run`'s comma list."""
    p.add_argument("--use", action="append", metavar="OP=NAME", help=help_text)
    p.add_argument("--impl", dest="use", action=_OldImplFlag, help=argparse.SUPPRESS)


def add_commands(subparsers) -> None:
    """Add `train` and `train-bench` to harness/cli.py's subparsers."""
    from harness.cli import add_plugin_option
    from nets.peer import DEFAULT_KINDS, KINDS
    p = subparsers.add_parser("train", help="train a classifier with one backend's implementations",
                              description="Train a model; settings left out take the model's defaults "
                                          "(see nets/models.py) or, with --resume, the checkpoint's.")
    p.add_argument("--model", help="mlp1, mlp2, mlp1-bce, mlp2-bce, thesis-0..thesis-4, lenet (default mlp1)")
    p.add_argument("--dataset", help="digits (default), mnist, cifar10, synthetic")
    p.add_argument("--backend", help="numpy_ref, numpy_opt (default), cupy_naive, cupy_opt, cudnn, torch")
    _use_option(p, "use implementation NAME for every pass of OP, e.g. conv2d=cudnn (repeatable)")
    p.add_argument("--epochs", type=int, help="epochs to train (with --resume: the total to reach)")
    p.add_argument("--batch", type=int, help="mini-batch size (default 32)")
    p.add_argument("--lr", type=float, help="SGD learning rate (default: per model)")
    p.add_argument("--seed", type=at_least(0), help="seed of the weights and the shuffling (default 0)")
    p.add_argument("--hidden", help="hidden dense widths, comma separated (default: per model)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files or the CIFAR-10 python batches")
    p.add_argument("--resize", choices=("bilinear", "nearest"), help="how images are resized (default bilinear)")
    p.add_argument("--train-size", type=int, help="use at most this many training images (seeded subset)")
    p.add_argument("--test-size", type=int, help="use at most this many test images (seeded subset)")
    p.add_argument("--synthetic-shape", help="CxHxW of --dataset synthetic (default: the model's input, or 1x8x8)")
    p.add_argument("--synthetic-count", type=int, help="training images of --dataset synthetic (default 1024)")
    p.add_argument("--out", help="run folder (default reports/train-<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out (default: refuse)")
    p.add_argument("--save", help="write a checkpoint to this file after every epoch")
    p.add_argument("--resume", help="continue from this checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--graph", choices=("on", "off"), default="on",
                   help="capture each training step into a CUDA graph and replay it (default on; CPU backends and "
                        "GPU backends that cannot be captured train eagerly, the latter with the reason)")
    p.add_argument("--fuse", choices=("on", "off"), default="on",
                   help="fused layers (nets.fusion): ReLU + max pool as one maxpool2d_relu op, dense + ReLU as one "
                        "gemm with a ReLU epilogue, the softmax loss and its gradient in one call (default on; the "
                        "same function and parameters, fewer kernels)")
    p.add_argument("--gpus", type=at_least(1), help="data-parallel training on this many GPUs of this machine, one "
                                           "process each, gradients summed with NCCL")
    p.add_argument("--overlap", choices=("on", "off"), default="on",
                   help="start each gradient bucket's all-reduce as soon as backpropagation produced it (default on)")
    _add_exchange_args(p)
    p.add_argument("--timeout", type=positive, default=300.0,
                   help="end the job when a rank makes no progress for this many seconds (default 300)")
    p.add_argument("--launcher", choices=("spawn", "mpi"), default="spawn",
                   help="spawn: --gpus processes here; mpi: this process is one rank of an mpirun job")
    add_plugin_option(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("train-bench", help="time training steps of the thesis models on every backend")
    p.add_argument("--models", help="comma separated (default thesis-0..thesis-4)")
    p.add_argument("--backends", help="comma separated, or 'all' for every registered implementation name (default: "
                                      "numpy_ref, numpy_opt, cupy_naive, cupy_opt, cudnn, torch); those that "
                                      "cannot run get a row saying why")
    _use_option(p, "per-op override for every backend, e.g. conv2d=cudnn (repeatable; rows whose network lacks the "
                   "op, e.g. maxpool2d_relu with --fuse off, ignore it)")
    p.add_argument("--steps", type=at_least(1), default=20, help="at most this many timed steps per row (default "
                   "20); past 50, timing stops once the relative IQR is <= 5%% or --max-seconds are spent")
    p.add_argument("--warmup", type=at_least(0), default=3, help="untimed steps first (default 3)")
    p.add_argument("--batch", default="32", help="mini-batch sizes, comma separated (default 32, the thesis's)")
    p.add_argument("--max-seconds", type=positive, default=30.0,
                   help="stop timing a row after this long, once the minimum steps are timed (default 30)")
    p.add_argument("--graph", default="on", help="on, off or on,off: GPU backends with and/or without CUDA-graph "
                                                 "capture (default on; a backend that cannot capture says why)")
    p.add_argument("--fuse", default="on", help="on, off or on,off: backends with and/or without fused layers "
                   "(nets.fusion: ReLU + max pool, dense + ReLU, the loss and its gradient in one call; default on; "
                   "the PyTorch peers run the plain model)")
    p.add_argument("--repeat", type=at_least(1), default=1,
                   help="time every row this many times (repeatability: the table shows each median's ratio to "
                        "the first)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--peers", default=",".join(DEFAULT_KINDS),
                   help=f"PyTorch peers to time, comma separated, of {', '.join(KINDS)} (default "
                        f"{','.join(DEFAULT_KINDS)}; graph only where --graph has on; compile takes seconds per "
                        "model and batch to compile)")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peers")
    p.add_argument("--accuracy-epochs", type=at_least(0), default=0,
                   help="also train each backend on digits for this many epochs and report test accuracy")
    p.add_argument("--gpus", help="comma list of GPU counts, e.g. 1,2,4: time data-parallel scaling instead "
                                  "(models default to thesis-0..4 and vgg-small; one backend, default cupy_opt)")
    p.add_argument("--rounds", type=at_least(1), default=7, help="with --gpus: rounds of no-exchange, off, on and "
                   "all-reduce-only blocks of --steps steps each; the median round is reported (default 7)")
    p.add_argument("--batch-per-gpu", type=int, help="with --gpus: images per GPU (default 32; vgg-small 256)")
    _add_exchange_args(p, "with --gpus: ")
    p.add_argument("--out", help="run folder (default reports/train-bench-<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out (default: refuse)")
    add_plugin_option(p)
    p.set_defaults(func=cmd_train_bench)

