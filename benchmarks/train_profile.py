"""Where a training step's GPU time goes: per-kernel CUPTI durations of one model's step, per backend and peer.

    python3 benchmarks/train_profile.py --model thesis-4 --batch 256 --backends cudnn,cupy_opt [--fuse on,off]
        [--use maxpool2d_relu=cupy_opt] [--steps 20]

Each backend's step (eager: the same kernels a captured graph replays), with fusion on and/or off (nets.fusion), and
PyTorch's eager step run `steps` times
under torch.profiler (CUPTI sees every kernel of the process, CuPy's and cuDNN's included); the table lists each
kernel's µs per step, largest first, and the sum of kernel time per step beside the wall time per step (the gap is
launch overhead and idle GPU). Needs a GPU, torch and, for cudnn, the cuDNN Frontend.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from harness.device import synchronize
from nets.backend import parse_overrides, resolve
from nets.bench import BenchConfig, input_shape, model_parts
from nets.data import fit, synthetic
from nets.models import get_model
from nets.network import SGD, Network, ops_of
from nets.peer import peer_step, strict_fp32
from nets.train import Trainer


def _profile(step, steps: int) -> tuple[dict[str, float], float, float]:
    """({kernel: µs per step}, wall ms per step, kernels per step) of `steps` calls after 3 warm-up calls."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for i in range(3):
        step(i)
    synchronize("gpu")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        synchronize("gpu")
        wall = (time.perf_counter() - t0) * 1e3 / steps
    per: dict[str, float] = defaultdict(float)
    launches = 0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            per[e.name[:70]] += e.device_time / steps
            launches += 1
    return dict(per), wall, launches / steps


def _ours(spec, backend_name: str, batch: int, fuse: str, overrides: dict[str, str]):
    layers, loss, ops, impl = model_parts(spec, fuse, overrides)
    backend = resolve(backend_name, ops, impl)
    net = Network(layers, loss, backend, input_shape(spec))
    net.init(0)
    ds = fit(synthetic(4 * batch, input_shape(spec), seed=0), None)
    trainer = Trainer(net, SGD(net, spec.lr), ds, batch, 0)
    batches = [backend.xp.arange(i * batch, (i + 1) * batch) for i in range(4)]
    return lambda i: trainer.step(batches[i % 4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="thesis-4")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--backends", default="cudnn")
    ap.add_argument("--fuse", default="on", help="on, off or on,off")
    ap.add_argument("--use", action="append", help="OP=IMPL override (repeatable), where the network has the op")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    spec = get_model(args.model)
    cfg = BenchConfig(batch=args.batch)
    overrides = parse_overrides(args.use)
    runs = {f"{name} fuse {f}": _ours(spec, name, args.batch, f, overrides)
            for name in args.backends.split(",") for f in args.fuse.split(",")}
    ref_layers, ref_loss = spec.layers(10), spec.loss_layer()
    ref = Network(ref_layers, ref_loss, resolve("numpy_ref", ops_of(ref_layers, ref_loss)), input_shape(spec))
    ref.init(cfg.seed)
    for name, step in runs.items():
        _report(name, *_profile(step, args.steps))
    with strict_fp32():
        step, _, _ = peer_step(ref, spec, args.batch, cfg.seed)
        _report("pytorch-eager", *_profile(step, args.steps))


def _report(name: str, per: dict[str, float], wall_ms: float, launches: float) -> None:
    print(f"== {name}: kernels {sum(per.values()):.1f} us/step, {launches:.0f} kernels/step, "
          f"wall {wall_ms * 1e3:.1f} us/step")
    for k, us in sorted(per.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {us:8.1f}  {k}")


if __name__ == "__main__":
    main()
