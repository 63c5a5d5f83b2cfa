"""Data-parallel logic on the CPU: sharding, buckets, the order of exchanges, and real sums across threads.

The GPU path (NCCL, streams) is tested on GPUs in test_distributed_gpu.py; nothing here fakes its results.
"""

import itertools

import numpy as np
import pytest

from nets.backend import resolve
from nets.distributed import DataParallelSGD, Exchange, ThreadGroup, make_buckets, shard
from nets.layers import Param
from nets.models import get_model
from nets.network import SGD, Network, ops_of


@pytest.mark.parametrize("n, world", [(32, 4), (33, 4), (3, 4), (1, 2), (100, 3), (7, 7)])
def test_shards_cover_the_batch_once_and_differ_by_at_most_one(n, world):
    parts = [shard(n, world, r) for r in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    sizes = [stop - start for start, stop in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def _param(name, n):
    return Param(name, np.zeros(n, np.float32), np.zeros(n, np.float32), None)


def test_buckets_follow_backward_order_and_size():
    layers = [[_param("0.w", 100), _param("0.b", 10)], [], [_param("2.w", 1000), _param("2.b", 10)], [],
              [_param("4.w", 50), _param("4.b", 5)]]
    buckets = make_buckets(layers, bucket_bytes=1000)
    assert [[p.name for p in b.params] for b in buckets] == [["4.w", "4.b", "2.w", "2.b"], ["0.w", "0.b"]]
    assert [b.ready_after_layer for b in buckets] == [2, 0]
    one_each = make_buckets(layers, bucket_bytes=1)
    assert [b.ready_after_layer for b in one_each] == [4, 2, 0]
    assert len(make_buckets(layers, bucket_bytes=1 << 30)) == 1


def _net(seed=0, backend="numpy_ref", batch=8):
    spec = get_model("thesis-0")
    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve(backend, ops_of(layers, loss), {}), (3, 12, 12))
    net.init(seed)
    return net, SGD(net, 0.05)


def _data(n=24, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 3, 12, 12)), rng.integers(0, 10, n).astype(np.int32)


@pytest.mark.parametrize("overlap", [False, True])
def test_exchange_order(overlap):
    net, opt = _net()
    events = []
    dp = DataParallelSGD(net, opt, ThreadGroup(1).member(0), Exchange(overlap, bucket_bytes=1),
                         on_event=events.append)
    x, y = _data(8)
    dp.train_step(x, y, 1.0)
    n_layers = len(net.layers)
    backward = [e for e in events if e[0] == "backward"]
    assert [e[1] for e in backward] == list(range(n_layers - 1, -1, -1))
    first_exchange = next(i for i, e in enumerate(events) if e[0] == "allreduce")
    if overlap:  # the last layer's gradients leave before the layers below have run their backward pass
        assert first_exchange < len(backward)
        for b_index, bucket in enumerate(dp.buckets):
            at = events.index(("allreduce", b_index))
            assert events[at - 1] == ("backward", bucket.ready_after_layer)
    else:  # everything after the whole backward pass
        assert first_exchange == n_layers
    assert [e[1] for e in events if e[0] == "allreduce"] == list(range(len(dp.buckets)))


@pytest.mark.parametrize("world, batch", [(2, 8), (3, 8), (4, 3)])
@pytest.mark.parametrize("overlap", [False, True])
def test_n_ranks_with_global_batch_b_equal_one_rank_with_batch_b(world, batch, overlap):
    """float64 oracle backend: the only difference is the order of the sums, so weights agree to ~1e-15."""
    x, y = _data(24)
    single, single_opt = _net()
    for start in range(0, 24, batch):
        single_opt.train_step(x[start:start + batch], y[start:start + batch])

    nets = [_net() for _ in range(world)]

    def rank_main(member):
        net, opt = nets[member.rank]
        dp = DataParallelSGD(net, opt, member, Exchange(overlap, bucket_bytes=4096))
        for start in range(0, 24, batch):
            n = min(batch, 24 - start)
            lo, hi = shard(n, world, member.rank)
            dp.train_step(x[start + lo:start + hi], y[start + lo:start + hi], (hi - lo) / n)

    ThreadGroup(world).run(rank_main)
    reference = single.state()
    for net, _ in nets:
        for name, value in net.state().items():
            np.testing.assert_allclose(value, reference[name], rtol=1e-12, atol=1e-14)
    states = [net.state() for net, _ in nets]
    for name in reference:  # every rank holds the same bits
        assert all(np.array_equal(s[name], states[0][name]) for s in states)


def test_exchange_settings_in_words():
    assert Exchange().settings() == "buckets 25 MiB, normal stream priority, NCCL channels default"
    assert Exchange(False, 2**20, "high", 4).settings() == "buckets 1 MiB, high stream priority, NCCL channels 4"


def test_a_failing_thread_rank_raises_instead_of_leaving_its_peers_waiting():
    def rank_main(member):
        if member.rank == 1:
            raise ValueError("rank 1 broke")
        member.allreduce([np.ones(3)], None)  # would wait forever for rank 1 without the aborted barrier

    with pytest.raises(ValueError, match="rank 1 broke"):
        ThreadGroup(3).run(rank_main, timeout_s=30)
