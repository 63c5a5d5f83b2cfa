"""Data-parallel training on 2 GPUs with NCCL: the same loss curve as 1 GPU with the same global batch, identical
weights on every rank, both exchange schedules.

Tolerance: 1 and 2 GPUs differ only in the order in which each gradient's terms are summed (one sum over the
batch against two half-batch sums added by the all-reduce), a float32 rounding difference of the same kind that
test_backend_equivalence.py bounds by S steps × tolerance("fp32", L_max) relative, per epoch; the same bound
(the `curve_tolerance` fixture) applies here.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from nets.distributed import Exchange
from nets.train import TrainConfig, train

pytestmark = pytest.mark.gpu

SETTINGS = {"model": "thesis-0", "backend": "cupy_opt", "epochs": 2, "batch": 32, "train_size": 330,
            "test_size": 100, "progress": False}


def _dies_after_joining(rank, world, uid, beat):
    """Rank 1 joins the communicator and dies; rank 0 then waits in an all-reduce that can never complete."""
    import cupy

    from nets.distributed import NcclComm

    cupy.cuda.Device(rank).use()
    comm = NcclComm(world, uid, rank)
    if rank == 1:
        os._exit(3)
    x, stream = cupy.ones(1 << 20, dtype=cupy.float32), cupy.cuda.Stream(non_blocking=True)
    comm.allreduce([x], stream)
    stream.synchronize()


def _never_joins_the_allreduce(rank, world, uid, beat):
    """Rank 1 stays alive and beating but never calls the all-reduce: rank 0 hangs in it, silent."""
    import cupy

    from nets.distributed import NcclComm

    cupy.cuda.Device(rank).use()
    comm = NcclComm(world, uid, rank)
    beat()
    if rank == 1:
        while True:
            beat()
            time.sleep(0.1)
    x, stream = cupy.ones(1 << 20, dtype=cupy.float32), cupy.cuda.Stream(non_blocking=True)
    comm.allreduce([x], stream)
    stream.synchronize()


@pytest.mark.parametrize("target, message", [
    (_dies_after_joining, "rank 1 died (exit code 3); stopped all 2 ranks"),
    (_never_joins_the_allreduce, "rank 0 made no progress for 20 s (a hung collective or a lost peer)"),
])
def test_a_lost_peer_in_a_collective_ends_the_job_in_bounded_time(target, message):
    _two_gpus()
    from nets.multigpu import launch

    t0 = time.time()
    with pytest.raises(RuntimeError) as info:
        launch(2, target, (), timeout_s=20)
    assert message in str(info.value)
    assert time.time() - t0 < 90  # start-up (CuPy, NCCL) + the timeout + the stop grace


def _two_gpus():
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs 2 GPUs")


@pytest.mark.parametrize("overlap", [True, False])
def test_two_gpus_train_like_one(overlap, tmp_path, curve_tolerance):
    _two_gpus()
    from nets.multigpu import train_data_parallel

    one = train(TrainConfig(out=str(tmp_path / "one"), **SETTINGS), printer=lambda *a: None)
    ranks = train_data_parallel(TrainConfig(out=str(tmp_path / "two"), **SETTINGS), gpus=2,
                                exchange=Exchange(overlap, bucket_bytes=50_000), timeout_s=300, launcher="spawn")
    assert len({r["weights"] for r in ranks}) == 1  # every rank holds the same bits
    loss_1 = np.array([h["loss"] for h in one.history])
    loss_2 = np.array([h["loss"] for h in ranks[0]["history"]])
    bound = np.array([h["steps"] for h in one.history]) * curve_tolerance(one)
    assert np.all(np.abs(loss_2 - loss_1) / loss_1 <= bound), (loss_1, loss_2, bound)
    # 330 images in batches of 32: the last batch of 10 splits 5/5, and every batch's remainder is handled
    assert [h["steps"] for h in ranks[0]["history"]] == [h["steps"] for h in one.history]


def test_a_two_gpu_checkpoint_resumes_on_one_gpu(tmp_path, curve_tolerance):
    """Rank 0's checkpoint after epoch 1 on 2 GPUs, resumed on 1 GPU for epoch 2, lands on the straight 2-GPU run's
    curve: the checkpoint holds the global shuffling state, so both see the same batches in epoch 2."""
    _two_gpus()
    from nets.multigpu import train_data_parallel

    def on_two(out, **kw):
        return train_data_parallel(TrainConfig(out=str(tmp_path / out), **{**SETTINGS, **kw}), gpus=2,
                                   exchange=Exchange(True, bucket_bytes=50_000), timeout_s=300, launcher="spawn")[0]
    straight = on_two("straight")
    ckpt = tmp_path / "ck.npz"
    on_two("first", epochs=1, save=str(ckpt))
    resumed = train(TrainConfig(out=str(tmp_path / "resumed"), resume=str(ckpt), **SETTINGS), printer=lambda *a: None)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    loss_2 = np.array([h["loss"] for h in straight["history"]])
    loss_r = np.array([h["loss"] for h in resumed.history])
    assert loss_r[0] == loss_2[0]  # epoch 1 comes from the checkpoint unchanged
    bound = resumed.history[-1]["steps"] * curve_tolerance(resumed)
    assert abs(loss_r[1] - loss_2[1]) / loss_2[1] <= bound, (loss_2, loss_r, bound)
