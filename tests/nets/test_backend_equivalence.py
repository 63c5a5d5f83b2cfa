"""Backend equivalence on the CPU: numpy_ref (float64) and numpy_opt (float32) train the same loss curve.

Tolerance, derived rather than tuned: harness.measure.check bounds the relative rounding error of one float32 pass by
tolerance("fp32", L) for a reduction of length L, so one training step perturbs the weights by at most
tol_step = tolerance("fp32", L_max) relative, L_max being the longest reduction of any pass in the network. To
first order these perturbations add up over the steps taken, so after S steps the per-epoch mean losses may
differ by S·tol_step relative. The observed differences are orders of magnitude smaller; the bound is still
tight enough to catch a real discrepancy, which the test shows by requiring another seed's curve to lie outside
it. Weights are not compared element by element: on digits, whose flat background makes exact ties in max
pooling, float32 and float64 rounding break some ties differently and route a few gradients elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.registry import all_impls
from nets.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not any(i.name == "numpy_opt" for i in all_impls()),
                                reason="impls/reference/cpu.py is not there")

SETTINGS = {"epochs": 3, "train_size": 320, "test_size": 100, "progress": False}


def run(model: str, backend: str, seed: int = 0, tmp=None):
    return train(TrainConfig(model=model, backend=backend, seed=seed, out=str(tmp / f"{model}-{backend}-{seed}"),
                             **SETTINGS), printer=lambda *a: None)


@pytest.mark.parametrize("model", ["mlp1", "mlp1-bce", "lenet", "thesis-0"])
def test_numpy_im2col_trains_like_numpy_ref(model, tmp_path, curve_tolerance):
    ref, f32 = run(model, "numpy_ref", tmp=tmp_path), run(model, "numpy_opt", tmp=tmp_path)
    assert ref.backend.dtype == np.float64 and f32.backend.dtype == np.float32
    loss_ref = np.array([h["loss"] for h in ref.history])
    loss_f32 = np.array([h["loss"] for h in f32.history])
    steps = np.array([h["steps"] for h in ref.history])
    bound = steps * curve_tolerance(ref)
    assert np.all(np.abs(loss_f32 - loss_ref) / loss_ref <= bound), (loss_ref, loss_f32, bound)
    n_test = SETTINGS["test_size"]
    for a, b in zip(ref.history, f32.history, strict=True):
        assert abs(a["test_acc"] - b["test_acc"]) * n_test <= 2  # at most two borderline images flip
    other = np.array([h["loss"] for h in run(model, "numpy_ref", seed=1, tmp=tmp_path).history])
    assert np.any(np.abs(other - loss_ref) / loss_ref > bound)  # the bound separates different trainings
    assert loss_ref[-1] < loss_ref[0]  # it learned


@pytest.mark.parametrize("model", ["thesis-0", "mlp1-bce"])
def test_torch_peer_is_the_same_network(model):
    """train-bench's PyTorch peer starts from the same weights and follows the same SGD steps as numpy_ref."""
    torch = pytest.importorskip("torch")
    from nets.backend import resolve
    from nets.bench import input_shape
    from nets.models import get_model
    from nets.network import SGD, Network, ops_of
    from nets.peer import bce_onehot, to_torch

    spec = get_model(model)
    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), input_shape(spec))
    net.init(0)
    peer = to_torch(net)
    opt, peer_opt = SGD(net, spec.lr), torch.optim.SGD(peer.parameters(), lr=spec.lr)
    loss_fn = torch.nn.functional.cross_entropy if spec.loss == "softmax" else bce_onehot
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(8, *input_shape(spec)))
        y = rng.integers(0, 10, size=8)
        ours = float(opt.train_step(x, y.astype(np.int32))[0])
        peer_opt.zero_grad()
        theirs = loss_fn(peer(torch.from_numpy(x)), torch.from_numpy(y))
        theirs.backward()
        peer_opt.step()
        assert abs(ours - theirs.item()) <= 1e-10 * abs(ours)  # both float64: only summation order differs
