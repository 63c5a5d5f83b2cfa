"""Data-parallel training on 2 GPUs with NCCL: the same loss curve as 1 GPU with the same global batch, identical
weights on every rank, both exchange schedules.

Tolerance: 1 and 2 GPUs differ only in the order in which each gradient's terms are summed (one sum over the
batch against two half-batch sums added by the all-reduce), a float32 rounding difference of the same kind that
test_backend_equivalence.py bounds by S steps × tolerance("fp32", L_max) relative, per epoch; the same bound
(the `curve_tolerance` fixture) applies here.
"""

from __future__ import annotations

import numpy as np
import pytest

from nets.train import TrainConfig, train

pytestmark = pytest.mark.gpu

SETTINGS = {"model": "thesis-0", "backend": "cupy_tiled", "epochs": 2, "batch": 32, "train_size": 330,
            "test_size": 100, "progress": False}


def _two_gpus():
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs 2 GPUs")


@pytest.mark.parametrize("overlap", [True, False])
def test_two_gpus_train_like_one(overlap, tmp_path, curve_tolerance):
    _two_gpus()
    from nets.multigpu import train_data_parallel

    one = train(TrainConfig(out=str(tmp_path / "one"), **SETTINGS), printer=lambda *a: None)
    ranks = train_data_parallel(TrainConfig(out=str(tmp_path / "two"), **SETTINGS), gpus=2, overlap=overlap,
                                bucket_mb=0.05, timeout_s=300, launcher="spawn")
    assert len({r["weights"] for r in ranks}) == 1  # every rank holds the same bits
    loss_1 = np.array([h["loss"] for h in one.history])
    loss_2 = np.array([h["loss"] for h in ranks[0]["history"]])
    bound = np.array([h["steps"] for h in one.history]) * curve_tolerance(one)
    assert np.all(np.abs(loss_2 - loss_1) / loss_1 <= bound), (loss_1, loss_2, bound)
    # 330 images in batches of 32: the last batch of 10 splits 5/5, and every batch's remainder is handled
    assert [h["steps"] for h in ranks[0]["history"]] == [h["steps"] for h in one.history]
