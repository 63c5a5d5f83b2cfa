"""Layer fusion (nets.fusion): the rewrite rules, stable parameter names, and the same training on the CPU with
fusion on and off (the GPU kernels' side: tests/nets/test_graph_gpu.py and test_gpu_training.py)."""

from __future__ import annotations

import numpy as np
import pytest

from nets.fusion import fuse
from nets.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, ReLUMaxPool2d, SigmoidBCE, SoftmaxCrossEntropy
from nets.models import get_model
from nets.train import TrainConfig, train
from tests.nets.curves import assert_same_curve


def test_rules_fuse_relu_pool_and_dense_relu_only():
    layers = [Conv2d(4), ReLU(), MaxPool2d(2, 2), Flatten(), Dense(8), ReLU(), Dense(3)]
    out = fuse(layers)
    assert [type(x) for x in out] == [Conv2d, ReLUMaxPool2d, Flatten, Dense, Dense]
    assert [x.position for x in out] == [0, 1, 3, 4, 6]
    assert out[3].relu and out[3].ops == ("gemm", "relu") and not out[4].relu
    assert (out[1].size, out[1].stride) == (2, 2)
    alone = [ReLU(), Flatten(), Dense(2)]  # a ReLU followed by no pool stays as it is
    assert [type(x) for x in fuse(alone)] == [ReLU, Flatten, Dense]
    assert get_model("thesis-1").loss_layer(fuse=True).fused
    assert not get_model("thesis-1").loss_layer().fused
    assert type(get_model("mlp1-bce").loss_layer(fuse=True)) is SigmoidBCE  # BCE has no fused pass


def test_conv_relu_fuses_where_no_pool_follows():
    layers = [Conv2d(4, 3, 1, 1), ReLU(), Conv2d(6, 5, 2, 2), ReLU(), MaxPool2d(2, 2), Conv2d(3), ReLU()]
    out = fuse(layers)
    assert [type(x) for x in out] == [Conv2d, Conv2d, ReLUMaxPool2d, Conv2d]
    assert [x.relu for x in (out[0], out[1], out[3])] == [True, False, True]  # the pooled block keeps its pool rule
    assert [x.position for x in out] == [0, 2, 3, 5]
    assert (out[0].filters, out[0].kernel, out[0].stride, out[0].pad) == (4, 3, 1, 1)
    assert out[0].ops == ("conv2d_bias_relu", "conv2d", "relu") and out[1].ops == ("conv2d",)
    assert not any(getattr(x, "relu", False) for x in fuse(get_model("thesis-2").layers(10)) if type(x) is Conv2d)


@pytest.mark.parametrize("backend", ["numpy_ref", "numpy_opt"])
def test_fused_conv_relu_network_computes_the_plain_one(backend):
    """A conv → ReLU → conv → ReLU → pool stack: fused (conv2d_bias_relu, then conv + maxpool2d_relu) and plain, the
    same loss and the same gradients for every parameter (float64: to rounding; float32: within a few ulps)."""
    from nets.backend import resolve
    from nets.network import Network, ops_of

    def net(fuse_on: bool):
        layers = [Conv2d(4), ReLU(), Conv2d(5), ReLU(), MaxPool2d(2, 2), Flatten(), Dense(3)]
        layers, loss = (fuse(layers) if fuse_on else layers), SoftmaxCrossEntropy(fused=fuse_on)
        n = Network(layers, loss, resolve(backend, ops_of(layers, loss)), (2, 8, 8))
        n.init(0)
        return n

    plain, fused = net(False), net(True)
    assert "conv2d_bias_relu" in ops_of(fused.layers, fused.loss)
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(6, 2, 8, 8)).astype(plain.backend.dtype), rng.integers(0, 3, 6).astype(np.int32)
    losses = []
    for n in (plain, fused):
        losses.append(float(n.loss.forward_loss(n.forward(x), labels)))
        n.backward(n.loss.backward_loss())
    rtol = 1e-12 if backend == "numpy_ref" else 1e-5
    np.testing.assert_allclose(losses[1], losses[0], rtol=rtol)
    grads = [{p.name: p.grad for p in n.params} for n in (plain, fused)]
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=rtol, atol=rtol * np.abs(grads[0][name]).max())


def _run(tmp_path, fuse: str, backend: str, model: str = "thesis-0", seed: int = 0):
    return train(TrainConfig(model=model, backend=backend, seed=seed, epochs=2, train_size=256, test_size=64,
                             progress=False, fuse=fuse, out=str(tmp_path / f"{model}-{backend}-{fuse}-{seed}")),
                 printer=lambda *a: None)


@pytest.mark.parametrize("backend", ["numpy_ref", "numpy_opt"])
@pytest.mark.parametrize("model", ["thesis-0", "mlp2"])
def test_fused_network_trains_like_the_plain_one(tmp_path, backend, model, curve_tolerance):
    """Same parameter names, same weights after training within the derived curve bound (pooling first and ReLU
    after is exact; the fused loss and the gemm epilogue round as the unfused calls do)."""
    plain, fused = _run(tmp_path, "off", backend, model), _run(tmp_path, "on", backend, model)
    assert any(isinstance(x, ReLUMaxPool2d) or getattr(x, "relu", False) for x in fused.net.layers)
    assert not any(isinstance(x, ReLU) for x in fused.net.layers)
    assert isinstance(fused.net.loss, SoftmaxCrossEntropy) and fused.net.loss.fused
    assert plain.net.state().keys() == fused.net.state().keys()
    assert_same_curve(plain, fused, curve_tolerance, test_size=64)
    with pytest.raises(AssertionError):  # the bound tells different trainings apart
        assert_same_curve(plain, _run(tmp_path, "on", backend, model, seed=1), curve_tolerance, test_size=64)


def test_checkpoint_of_a_fused_run_loads_into_a_plain_network(tmp_path):
    fused = _run(tmp_path, "on", "numpy_opt")
    spec = get_model("thesis-0")
    from nets.backend import resolve
    from nets.network import Network, ops_of

    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve("numpy_opt", ops_of(layers, loss)), fused.net.in_shape)
    net.load_state(fused.net.state(), "fused run")
    for name, value in fused.net.state().items():
        np.testing.assert_array_equal(net.state()[name], value)


def test_torch_equivalent_of_a_fused_network_has_the_plain_modules():
    torch = pytest.importorskip("torch")
    from nets.backend import resolve
    from nets.network import Network, ops_of
    from nets.peer import to_torch

    spec = get_model("thesis-0")
    nets = []
    for fuse_on in (False, True):
        layers, loss = spec.layers(10, fuse=fuse_on), spec.loss_layer(fuse_on)
        net = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), spec.input_shape)
        net.init(0)
        nets.append(to_torch(net))
    assert [type(m) for m in nets[0]] == [type(m) for m in nets[1]]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, *spec.input_shape)))
    torch.testing.assert_close(nets[0](x), nets[1](x), rtol=0, atol=0)
