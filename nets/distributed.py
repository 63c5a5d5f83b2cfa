"""Data-parallel training: one process per GPU, gradients summed with NCCL all-reduce, optionally overlapped with
backpropagation.

Thesis (seed 003, §3.2 "Paralelización en entrenamiento", Algorithm 1 after Lee et al., HiPC 2017): every rank
holds the same weights and computes the gradient of its share of the global mini-batch; the shares' gradients
are summed across ranks and every rank applies the same update. The exchange of a layer's gradient can start as
soon as that layer's backward pass has produced it, so communication hides behind the backward passes of the
layers below.

- Sharding: the global batch of B images (same shuffled order on every rank: the shuffling stream is seeded
  identically) is split into contiguous shares; the first B mod N ranks take one image more (`shard`).
- Scaling: the loss is a mean over the *global* batch, so each rank scales its dL/dlogits (a mean over its n_r
  images) by n_r / B before backpropagating; the all-reduce SUM of the ranks' gradients is then exactly the
  gradient of the global batch, remainders included. A rank with no image (B < N) contributes zeros.
- Buckets: parameters are grouped, in backward order (last layer first), into buckets of at least
  `bucket_bytes` (`make_buckets`); a bucket is ready when the layer that produces its last gradient has run.
- Schedules: `overlap=False` issues every bucket's all-reduce after the whole backward pass; `overlap=True`
  issues each bucket's all-reduce on a separate communication stream as soon as it is ready, ordered after the
  compute stream's work by a CUDA event. Either way the update of a bucket's parameters waits (an event on the
  compute stream) only for that bucket's all-reduce.
- Identical weights: all-reduce gives every rank the same bits, and every rank applies the same update.
- How the exchange runs (`Exchange`): schedule, bucket size, the communication stream's priority, and how many
  NCCL channels (thread blocks, hence SMs) the all-reduce may take from the computation it overlaps.

The communicator is anything with `allreduce(arrays, stream)`: `NcclComm` on GPUs, `ThreadGroup` for CPU tests
(real sums across threads in rank order, no GPU results faked).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nets.layers import Param
from nets.network import SGD, Network


def shard(n: int, world: int, rank: int) -> tuple[int, int]:
    """[start, stop) of `rank`'s share of n items split over `world` ranks; the first n % world take one more."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Exchange:
    """How gradients are exchanged: `overlap` (the schedule), bucket size, stream priority ("normal" or "high")
    and the most NCCL channels per all-reduce (None: NCCL's choice). Fewer channels leave more SMs to the
    backward passes an overlapped all-reduce runs beside (benchmarks/NOTES.md, data-parallel training)."""

    overlap: bool = True
    bucket_bytes: int = 25 * 2**20
    comm_priority: str = "normal"
    nccl_channels: int | None = None

    def settings(self) -> str:
        """The settings other than the schedule, in words (printed and written to meta.json)."""
        return (f"buckets {self.bucket_bytes / 2**20:g} MiB, {self.comm_priority} stream priority, "
                f"NCCL channels {self.nccl_channels or 'default'}")


@dataclass
class Bucket:
    """Parameters whose gradients are all-reduced together, and the layer after whose backward they are ready."""

    params: list[Param]
    ready_after_layer: int
    nbytes: int = 0
    done: object = None  # the CUDA event recorded after its all-reduce (None on the CPU)


def make_buckets(layer_params: list[list[Param]], bucket_bytes: int) -> list[Bucket]:
    """Group parameters in backward order (last layer first) into buckets of >= bucket_bytes (the last may be
    smaller). `layer_params[i]` are layer i's parameters; layers without parameters are skipped."""
    buckets: list[Bucket] = []
    current: Bucket | None = None
    for i in range(len(layer_params) - 1, -1, -1):
        for p in layer_params[i]:
            if current is None:
                current = Bucket([], i)
            current.params.append(p)
            current.nbytes += p.grad.nbytes
            current.ready_after_layer = i
        if current is not None and current.nbytes >= bucket_bytes:
            buckets.append(current)
            current = None
    if current is not None:
        buckets.append(current)
    return buckets


class NcclComm:
    """A rank's NCCL communicator (cupy.cuda.nccl): in-place SUM all-reduce of float32/float64/int64 arrays.

    `max_channels` caps the channels NCCL uses (NCCL_MAX_NCHANNELS, read when the first communicator of the
    process is created; cupy.cuda.nccl has no per-communicator config), so it holds for the whole rank process."""

    def __init__(self, world: int, uid, rank: int, max_channels: int | None = None):
        from harness.comm.nccl import nccl as load_nccl

        if max_channels:
            os.environ["NCCL_MAX_NCHANNELS"] = str(max_channels)

        nccl = load_nccl()
        self.nccl, self.world, self.rank = nccl, world, rank
        self.comm = nccl.NcclCommunicator(world, uid, rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.int64): nccl.NCCL_INT64}

    def allreduce(self, arrays: list, stream) -> None:
        """Sum each array across ranks, in place, as one NCCL group on `stream`."""
        self.nccl.groupStart()
        for a in arrays:
            self.comm.allReduce(a.data.ptr, a.data.ptr, a.size, self._types[a.dtype], self.nccl.NCCL_SUM, stream.ptr)
        self.nccl.groupEnd()

    def abort(self) -> None:
        self.comm.abort()


class ThreadGroup:
    """An in-process group of `world` ranks (threads) on NumPy arrays: a real all-reduce for CPU tests.

    Every rank deposits its arrays; after a barrier each rank sums the deposits in rank order (so every rank
    gets identical bits, as with NCCL) and writes the sum into its own arrays; a second barrier ends the call."""

    def __init__(self, world: int):
        self.world = world
        self._barrier = threading.Barrier(world)
        self._slots: list[list | None] = [None] * world

    def member(self, rank: int) -> ThreadGroup.Member:
        return ThreadGroup.Member(self, rank)

    def run(self, rank_main: Callable[[ThreadGroup.Member], object], timeout_s: float = 300.0) -> list:
        """Run rank_main(member) on one thread per rank; return the results in rank order. A rank that raises
        breaks the barrier (so its peers stop instead of waiting forever) and its exception is raised here."""
        results: list = [None] * self.world
        errors: list[BaseException] = []

        def main(rank: int) -> None:
            try:
                results[rank] = rank_main(self.member(rank))
            except BaseException as exc:
                errors.append(exc)
                self._barrier.abort()

        threads = [threading.Thread(target=main, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout_s)
        if errors:
            raise errors[0]
        return results

    @dataclass
    class Member:
        group: ThreadGroup
        rank: int
        log: list = field(default_factory=list)

        @property
        def world(self) -> int:
            return self.group.world

        def allreduce(self, arrays: list, stream) -> None:
            g = self.group
            self.log.append([a.shape for a in arrays])
            g._slots[self.rank] = [a.copy() for a in arrays]
            g._barrier.wait()
            for i, a in enumerate(arrays):
                total = g._slots[0][i].copy()
                for r in range(1, g.world):
                    total += g._slots[r][i]
                a[...] = total
            g._barrier.wait()


class _Streams:
    """The compute and communication streams and their events on a GPU; no-ops on the CPU.

    `comm_priority="high"` gives the communication stream the device's highest stream priority, so the block
    scheduler starts the all-reduce's blocks ahead of waiting compute blocks. Measured on 2 H200s it hid less of
    the all-reduce than the default priority (benchmarks/NOTES.md), so "normal" is the default."""

    def __init__(self, device: str, comm_priority: str = "normal"):
        self.gpu = device == "gpu"
        if self.gpu:
            import cupy

            self.cp = cupy
            self.compute = cupy.cuda.Stream(non_blocking=True)
            # CUDA clamps a priority beyond the device's range to its highest (lower numbers are higher)
            self.comm = cupy.cuda.Stream(non_blocking=True, priority=-1000 if comm_priority == "high" else 0)
        else:
            self.compute = self.comm = None

    def comm_after_compute(self) -> None:
        """The communication stream waits for everything issued on the compute stream so far."""
        if self.gpu:
            ev = self.cp.cuda.Event(disable_timing=True)
            ev.record(self.compute)
            self.comm.wait_event(ev)

    def record_comm(self):
        if self.gpu:
            ev = self.cp.cuda.Event(disable_timing=True)
            ev.record(self.comm)
            return ev
        return None

    def compute_waits(self, event) -> None:
        if event is not None:
            self.compute.wait_event(event)


class DataParallelSGD:
    """One rank's training step: local forward/backward on its share, bucketed all-reduce, per-bucket update.

    `on_event` (tests) receives ("backward", layer index) and ("allreduce", bucket index) in issue order.
    """

    def __init__(self, net: Network, opt: SGD, comm, exchange: Exchange,
                 on_event: Callable[[tuple], None] | None = None):
        self.net, self.opt, self.comm, self.overlap = net, opt, comm, exchange.overlap
        self.streams = _Streams(net.backend.device, exchange.comm_priority)
        self.buckets = make_buckets([layer.params for layer in net.layers], exchange.bucket_bytes)
        self.sgd_shape = {id(p): s for p, s in zip(net.params, opt.shapes, strict=True)}
        self.on_event = on_event or (lambda e: None)

    def stream_context(self):
        """`with dp.stream_context():` runs the step's kernels on the compute stream (a no-op on the CPU).

        The device is synchronised first: the compute stream is non-blocking, so it would not wait for work
        (weight initialisation, data uploads) that other code left on the default stream."""
        import contextlib

        if not self.streams.gpu:
            return contextlib.nullcontext()
        self.streams.cp.cuda.Device().synchronize()
        return self.streams.compute

    def train_step(self, x, labels, scale: float):
        """Forward and backward on this rank's images (x may hold none), all-reduce, update.

        Returns (local mean loss buffer or None, local logits or None)."""
        net = self.net
        loss = logits = None
        if x.shape[0] > 0:
            logits = net.forward(x)
            loss = net.loss.forward_loss(logits, labels)
            g = net.loss.backward_loss()
            g *= scale
        else:
            for p in net.params:
                p.grad.fill(0)
        pending = list(self.buckets)
        for i in range(len(net.layers) - 1, -1, -1):
            if x.shape[0] > 0:
                g = net.layers[i].backward(g, need_dx=i > 0)
            self.on_event(("backward", i))
            if self.overlap:
                while pending and pending[0].ready_after_layer == i:
                    self._issue(pending.pop(0))
        for b in pending:
            self._issue(b)
        for b in self.buckets:
            self.streams.compute_waits(b.done)
            for p in b.params:
                net.backend.call("sgd", "update", self.sgd_shape[id(p)], {"dw": p.grad.reshape(-1)},
                                 {"w": p.value.reshape(-1)})
        self.opt.steps += 1
        return loss, logits

    def _issue(self, bucket: Bucket) -> None:
        self.streams.comm_after_compute()
        self.comm.allreduce([p.grad for p in bucket.params], self.streams.comm)
        bucket.done = self.streams.record_comm()
        self.on_event(("allreduce", self.buckets.index(bucket)))
