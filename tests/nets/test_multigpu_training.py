"""Data-parallel training through nets.train on the CPU: ranks are threads summing for real (ThreadGroup).

Same training as on GPUs except the communicator: N ranks with global batch B follow one process with batch B,
and a run saved by rank 0 at N ranks resumes at another rank count and ends with the same weights. numpy_ref
(float64): the ranks differ from one process only in the order of each gradient's sum, ~1e-16 per step.
"""

import numpy as np

from nets.distributed import Exchange, ThreadGroup
from nets.multigpu import DataParallelTrainer
from nets.train import TrainConfig, train

SETTINGS = {"model": "thesis-0", "backend": "numpy_ref", "dataset": "synthetic", "synthetic_count": 120,
            "train_size": 100, "test_size": 20, "batch": 16, "progress": False}


def run_ranks(world: int, **cfg):
    def rank_main(member):
        def make(net, opt, ds, batch, seed):
            return DataParallelTrainer(net, opt, ds, batch, seed, member, Exchange(True, 4096), lambda: None)
        return train(TrainConfig(**SETTINGS, **cfg), printer=lambda *a: None, make_trainer=make,
                     main=member.rank == 0)
    return ThreadGroup(world).run(rank_main)


def assert_same_weights(a, b, rtol=1e-10):
    for name, value in a.net.state().items():
        np.testing.assert_allclose(value, b.net.state()[name], rtol=rtol, atol=1e-13)


def test_ranks_train_like_one_process_and_agree_bit_for_bit(tmp_path):
    one = train(TrainConfig(**SETTINGS, epochs=2, out=str(tmp_path / "one")), printer=lambda *a: None)
    ranks = run_ranks(3, epochs=2, out=str(tmp_path / "three"))
    # 100 images in batches of 16: the last batch of 4 splits 2/1/1 across three ranks
    assert [h["steps"] for h in ranks[0].history] == [h["steps"] for h in one.history]
    np.testing.assert_allclose([h["loss"] for h in ranks[0].history], [h["loss"] for h in one.history], rtol=1e-12)
    assert_same_weights(ranks[0], one)
    for r in ranks[1:]:
        assert all(np.array_equal(v, ranks[0].net.state()[k]) for k, v in r.net.state().items())


def test_resume_at_another_rank_count(tmp_path):
    straight = run_ranks(2, epochs=2, out=str(tmp_path / "straight"))
    ckpt = tmp_path / "ck.npz"
    run_ranks(2, epochs=1, out=str(tmp_path / "first"), save=str(ckpt))
    assert ckpt.is_file() and not ckpt.with_name(ckpt.name + ".tmp").exists()
    resumed = run_ranks(3, epochs=2, out=str(tmp_path / "resumed"), resume=str(ckpt))
    assert [h["epoch"] for h in resumed[0].history] == [1, 2]
    assert_same_weights(resumed[0], straight[0])
