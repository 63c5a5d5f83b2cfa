"""nets/network.py: the parameters live in one flat buffer (views at aligned offsets), and one SGD step is one
`sgd` call that updates every tensor exactly as a per-tensor update would."""

from __future__ import annotations

import numpy as np

from nets.backend import resolve
from nets.models import get_model
from nets.network import ALIGN, SGD, Network, ops_of


def _net(backend: str = "numpy_opt") -> Network:
    spec = get_model("thesis-0")
    layers, loss = spec.layers(10), spec.loss_layer()
    net = Network(layers, loss, resolve(backend, ops_of(layers, loss), {}), (3, 12, 12))
    net.init(0)
    return net


def test_parameters_are_aligned_views_of_one_buffer_each():
    net = _net()
    assert len(net.params) >= 4
    for p in net.params:
        for view, flat in ((p.value, net.flat_values), (p.grad, net.flat_grads)):
            assert np.shares_memory(view, flat)
            offset = (view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // view.itemsize
            assert offset % ALIGN == 0
    assert net.flat_values.size == sum(-(-p.value.size // ALIGN) * ALIGN for p in net.params)
    # He-initialised weights were copied in, not lost
    assert all(np.abs(p.value).max() > 0 for p in net.params if p.fan_in is not None)


def test_one_step_is_one_sgd_call_equal_to_per_tensor_updates():
    net = _net()
    opt = SGD(net, 0.05)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 12, 12)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    net.loss.forward_loss(net.forward(x), labels)
    net.backward(net.loss.backward_loss())
    before = [(p.value.copy(), p.grad.copy()) for p in net.params]
    calls = []
    real = net.backend.call
    net.backend.call = lambda op, pass_, *a: calls.append((op, pass_)) or real(op, pass_, *a)
    opt.step()
    assert calls == [("sgd", "update")] and opt.steps == 1
    for p, (w, dw) in zip(net.params, before, strict=True):
        assert np.abs(dw).max() > 0  # every tensor had a gradient to apply
        np.testing.assert_array_equal(p.value, w - np.float32(0.05) * dw)
    # the gaps between the views stay zero
    used = np.zeros(net.flat_values.size, bool)
    for p in net.params:
        off = (p.value.__array_interface__["data"][0] - net.flat_values.__array_interface__["data"][0]) // 4
        used[off:off + p.value.size] = True
    assert not net.flat_values[~used].any() and not net.flat_grads[~used].any()
