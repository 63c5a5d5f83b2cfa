"""Running data-parallel training (nets.distributed) as one process per GPU, and measuring how it scales.

Launching:
- `--gpus N` on one machine: this process spawns N ranks (multiprocessing, "spawn"), hands each the NCCL unique
  id it created, and supervises them (`launch`). No rendezvous protocol of our own: the id travels as a process
  argument, as NCCL's own examples do with MPI_Bcast.
- Several machines: start the same command under mpirun (Open MPI or any MPI with mpi4py) with `--launcher mpi`;
  rank 0 creates the NCCL id and MPI broadcasts it; each process uses the GPU of its node-local rank.

Failure behaviour: a rank that raises or dies ends the whole job with a message naming it; a rank that makes no
progress for `timeout_s` (a hung collective, a peer that vanished) ends it too. Under `--gpus N` the supervisor
terminates every rank; under MPI a watchdog thread aborts the NCCL communicator and exits, and mpirun then ends
the other ranks. Checkpoints are written by rank 0 only and hold the global shuffling state, so a run can resume
at a different GPU count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from harness.errors import UsageError, one_line
from nets.distributed import DataParallelSGD, Exchange, NcclComm, shard
from nets.train import Trainer

STOP_GRACE_S = 5.0


class DataParallelTrainer(Trainer):
    """A Trainer whose steps run this rank's share of each global batch through DataParallelSGD."""

    def __init__(self, net, opt, ds, batch, seed, comm, exchange: Exchange, beat: Callable[[], None]):
        super().__init__(net, opt, ds, batch, seed)
        self.comm, self.beat = comm, beat
        self.dp = DataParallelSGD(net, opt, comm, exchange)
        self._empty = (self.xp.zeros((), dtype=net.backend.dtype),
                       self.xp.empty((0, net.loss.in_shape[0]), dtype=net.backend.dtype))

    def step(self, idx):
        lo, hi = shard(len(idx), self.comm.world, self.comm.rank)
        xb, yb = self._batch(self.x_train, self.y_train, idx[lo:hi])
        loss, logits = self.dp.train_step(xb, yb, (hi - lo) / len(idx))
        self.beat()
        return (loss, logits, yb) if loss is not None else (*self._empty, yb)

    def epoch(self, bar=None):
        with self.dp.stream_context():
            return super().epoch(bar)

    def totals(self, loss_sum, correct):
        self.comm.allreduce([loss_sum, correct], self.dp.streams.compute)
        return loss_sum, correct


# ---------------------------------------------------------------------------------------------- launching
def nccl_uid():
    from harness.comm.nccl import nccl

    return nccl().get_unique_id()


def _entry(target, rank: int, world: int, uid, beats, results, args) -> None:
    """A spawned rank: run target(rank, world, uid, beat, *args) and report its result or its error."""
    def beat():
        beats[rank] = time.time()
    try:
        results.put((rank, "result", target(rank, world, uid, beat, *args)))
    except BaseException as exc:  # report every failure, then exit non-zero
        results.put((rank, "error", one_line(exc)))
        sys.exit(1)


def launch(world: int, target, args: tuple, timeout_s: float, make_uid=nccl_uid) -> list:
    """Run `target` on `world` spawned ranks and return their results in rank order.

    target(rank, world, uid, beat, *args) must be a module-level function; it calls beat() whenever it makes
    progress. Raises RuntimeError naming the rank when one fails, dies or stays silent for timeout_s."""
    ctx = mp.get_context("spawn")
    uid = make_uid()
    beats = ctx.Array("d", [time.time()] * world, lock=False)
    results = ctx.Queue()
    procs = [ctx.Process(target=_entry, args=(target, r, world, uid, beats, results, args), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    got: dict[int, object] = {}
    failure = None
    while failure is None and len(got) < world:
        try:
            rank, kind, payload = results.get(timeout=0.2)
            if kind == "result":
                got[rank] = payload
            else:
                failure = f"rank {rank} failed: {payload}"
            continue
        except queue.Empty:
            pass
        now = time.time()
        for r, p in enumerate(procs):
            if p.exitcode not in (None, 0) and r not in got:
                failure = f"rank {r} died (exit code {p.exitcode})"
            elif p.exitcode is None and now - beats[r] > timeout_s:
                failure = f"rank {r} made no progress for {timeout_s:g} s (a hung collective or a lost peer)"
    _stop(procs)
    if failure:
        raise RuntimeError(f"{failure}; stopped all {world} ranks")
    return [got[r] for r in range(world)]


def _stop(procs) -> None:
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    deadline = time.time() + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.time()))
        if p.exitcode is None:
            p.kill()
            p.join()


def mpi_world():
    """(rank, world, local rank, uid) inside an MPI job, the NCCL id broadcast from rank 0; None outside one."""
    if not any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")):
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--launcher mpi needs mpi4py (pip install mpi4py)") from None
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
    uid = comm.bcast(nccl_uid() if comm.Get_rank() == 0 else None, root=0)
    return comm.Get_rank(), comm.Get_size(), local, uid


def watchdog(beat_box: list, timeout_s: float, on_timeout: Callable[[], None]) -> None:
    """Start a daemon thread that calls on_timeout() once no beat (beat_box[0] = time) came for timeout_s."""
    def watch():
        while True:
            time.sleep(min(1.0, timeout_s / 4))
            if time.time() - beat_box[0] > timeout_s:
                on_timeout()
                return
    threading.Thread(target=watch, daemon=True).start()


# ---------------------------------------------------------------------------------------------- training
def _train_rank(rank, world, uid, beat, cfg, exchange: Exchange, device=None):
    import cupy

    from nets.train import train

    cupy.cuda.Device(rank if device is None else device).use()
    comm = NcclComm(world, uid, rank, exchange.nccl_channels)
    beat()

    def make_trainer(net, opt, ds, batch, seed):
        return DataParallelTrainer(net, opt, ds, batch, seed, comm, exchange, beat)
    quiet = dataclasses.replace(cfg, progress=cfg.progress and rank == 0)
    result = train(quiet, printer=print if rank == 0 else (lambda *a, **k: None), make_trainer=make_trainer,
                   main=rank == 0)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(v).tobytes() for v in result.net.state().values()))
    return {"history": result.history, "run_dir": str(result.run_dir), "weights": digest.hexdigest()}


def train_data_parallel(cfg, gpus: int, exchange: Exchange, timeout_s: float, launcher: str) -> list:
    """Train `cfg` data-parallel; returns every rank's {history, run_dir, weights digest}."""
    from harness.results import new_run_dir

    if launcher == "mpi":
        world_info = mpi_world()
        if world_info is None:
            raise UsageError("--launcher mpi: not inside an MPI job (start it with mpirun)")
        rank, world, local, uid = world_info
        box = [time.time()]

        def beat():
            box[0] = time.time()

        def abort():
            print(f"rank {rank}: no progress for {timeout_s:g} s (a hung collective?); aborting", file=sys.stderr)
            os._exit(1)
        watchdog(box, timeout_s, abort)
        return [_train_rank(rank, world, uid, beat, cfg, exchange, device=local)]
    _check_gpus(gpus)
    cfg = dataclasses.replace(cfg, out=str(new_run_dir(cfg.out, "train")))  # one folder, chosen before the ranks start
    print(f"data-parallel on {gpus} GPUs: overlap {'on' if exchange.overlap else 'off'}, {exchange.settings()}")
    results = launch(gpus, _train_rank, (cfg, exchange), timeout_s)
    digests = {r["weights"] for r in results}
    if len(digests) != 1:
        raise RuntimeError(f"the ranks ended with different weights ({len(digests)} distinct digests)")
    print(f"all {gpus} ranks ended with identical weights (sha256 {results[0]['weights'][:16]}...)")
    return results


def _check_gpus(n: int) -> None:
    from harness.device import gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    if reason:
        raise UsageError(f"--gpus needs CUDA GPUs: {reason}")
    import cupy

    have = cupy.cuda.runtime.getDeviceCount()
    if not 1 <= n <= have:
        raise UsageError(f"--gpus {n}: this machine has {have} GPU(s)")
