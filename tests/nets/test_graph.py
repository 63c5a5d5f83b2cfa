"""The graph path's control logic on the CPU (nets.graph): with a capturer that records the step body and replays
it by calling it, a GraphTrainer must train exactly like the eager Trainer (same body, same order), capture one
graph per batch size (the last, smaller batch its own), count its steps, and fall back to eager with the reason
when a capture fails. The decision function declines CPU and torch backends with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from nets.backend import resolve
from nets.graph import EagerCapturer, GraphTrainer, graph_unsupported_reason, make_trainer
from nets.train import TrainConfig, Trainer, train

SETTINGS = {"model": "mlp1", "backend": "numpy_opt", "epochs": 2, "batch": 32, "train_size": 200, "test_size": 50,
            "progress": False}  # 200 = 6 x 32 + 8: a smaller last batch every epoch


class CountingCapturer(EagerCapturer):
    def __init__(self, fail: bool = False):
        self.captures, self.replays, self.fail = 0, 0, fail

    def capture(self, body):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures += 1

        def replay():
            self.replays += 1
            body()

        return replay


def _train(tmp_path, name, make=Trainer):
    return train(TrainConfig(out=str(tmp_path / name), **SETTINGS), printer=lambda *a: None, make_trainer=make)


def test_graph_trainer_trains_like_eager_and_captures_once_per_batch_size(tmp_path):
    cap, made = CountingCapturer(), []

    def make(net, opt, ds, batch, seed):
        made.append(GraphTrainer(net, opt, ds, batch, seed, cap))
        return made[-1]

    eager, graphed = _train(tmp_path, "eager"), _train(tmp_path, "graph", make)
    for a, b in zip(eager.history, graphed.history, strict=True):
        for key in ("steps", "loss", "train_acc", "test_acc"):
            assert a[key] == b[key], (key, a, b)
    for p, q in zip(eager.net.params, graphed.net.params, strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    assert sorted(made[0].graphs) == [8, 32] and cap.captures == 2
    assert cap.replays == 2 * 7 - 2  # every step but the first of each size
    assert made[0].status() == "on"


def test_failed_capture_declines_with_the_reason_and_trains_eagerly(tmp_path):
    made = []

    def make(net, opt, ds, batch, seed):
        made.append(GraphTrainer(net, opt, ds, batch, seed, CountingCapturer(fail=True)))
        return made[-1]

    eager, graphed = _train(tmp_path, "eager"), _train(tmp_path, "graph", make)
    assert [h["loss"] for h in eager.history] == [h["loss"] for h in graphed.history]
    assert [h["steps"] for h in eager.history] == [h["steps"] for h in graphed.history]
    assert made[0].graphs == {} and "stream is capturing" in made[0].status()


def test_step_returns_the_static_buffers_and_counts_steps(tmp_path):
    res = _train(tmp_path, "base")
    net = res.net
    from nets.data import fit, synthetic
    from nets.network import SGD

    ds = fit(synthetic(64, (1, 8, 8), seed=0), (1, 8, 8))
    opt = SGD(net, 0.05)
    t = GraphTrainer(net, opt, ds, 32, 0, CountingCapturer())
    idx = np.arange(32)
    outs = [t.step(idx) for _ in range(3)]
    assert opt.steps == 3 and sorted(t.graphs) == [32]
    assert all(o[0] is outs[0][0] for o in outs) and np.isfinite(float(outs[-1][0]))


def test_decision_declines_cpu_and_torch_backends():
    from nets.layers import Dense, SoftmaxCrossEntropy
    from nets.network import ops_of

    ops = ops_of([Dense(4)], SoftmaxCrossEntropy())
    cpu = resolve("numpy_opt", ops)
    assert "CPU" in graph_unsupported_reason(cpu)
    make, note = make_trainer("on", cpu)
    assert make is Trainer and note == "off (CPU)"
    assert make_trainer("off", cpu) == (Trainer, "off")
    fake_gpu = resolve("numpy_opt", ops)
    fake_gpu.device = "gpu"
    assert graph_unsupported_reason(fake_gpu) is None
    for c in fake_gpu.choices.values():
        c.impl = type(c.impl)(**{**c.impl.__dict__, "group": "torch"})
    reason = graph_unsupported_reason(fake_gpu)
    assert reason and "caching allocator" in reason


@pytest.mark.parametrize("batch", ["32,256", "64"])
def test_train_bench_cli_takes_batches_and_graph_modes(batch, tmp_path):
    from harness.cli import main

    out = tmp_path / "tb"
    rc = main(["train-bench", "--models", "thesis-1", "--backends", "numpy_opt", "--batch", batch, "--steps", "2",
               "--warmup", "0", "--graph", "on,off", "--repeat", "2", "--no-peer", "--out", str(out)])
    assert rc in (0, None)
    import csv

    rows = list(csv.DictReader((out / "train_bench.csv").open()))
    batches = [int(b) for b in batch.split(",")]
    assert [int(r["batch"]) for r in rows] == [b for b in batches for _ in range(2)]  # CPU: one mode, two runs
    assert {r["graph"] for r in rows} == {"off"} and [r["run"] for r in rows[:2]] == ["1", "2"]
    assert all(r["status"] == "ok" and float(r["repeat_ratio"]) > 0 for r in rows)
