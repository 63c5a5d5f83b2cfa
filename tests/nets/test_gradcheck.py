"""Whole-network gradient check: backprop through the registered numpy_ref passes vs central finite differences.

Tolerance: in float64 a central difference with step h has truncation error ~h²·|L'''| (~1e-12 here) and
rounding error ~eps·|L|/h (~1e-10 for h = 1e-6), so |numeric − analytic| stays below 1e-7 + 1e-6·|analytic| for
a correct gradient, while any error in a backward pass (a transposed weight, a missing term, a wrong scale) is of
the gradient's own size, 1e-3 .. 1. Inputs are random, so no ReLU kink or max-pool tie lies within ±h.
"""

from __future__ import annotations

import numpy as np
import pytest

from nets.backend import resolve
from nets.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sigmoid, SigmoidBCE, SoftmaxCrossEntropy
from nets.network import Network, ops_of

H = 1e-6
ATOL, RTOL = 1e-7, 1e-6


def _cnn():
    return [Conv2d(3), ReLU(), MaxPool2d(), Conv2d(4, 3, 1, 1), ReLU(), Flatten(), Dense(5), Sigmoid(), Dense(4)]


def _mlp():
    return [Flatten(), Dense(6), ReLU(), Dense(5), Sigmoid(), Dense(4)]


def _lenet_like():
    return [Conv2d(2, 5, 1, 2), ReLU(), MaxPool2d(), Conv2d(3, 3, 2, 0), Flatten(), Dense(4)]


CASES = {
    "cnn-softmax": (_cnn, SoftmaxCrossEntropy, (2, 6, 6)),
    "mlp-bce": (_mlp, SigmoidBCE, (1, 3, 3)),
    "strided-conv-softmax": (_lenet_like, SoftmaxCrossEntropy, (1, 10, 10)),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_gradients_match_finite_differences(case, seed):
    make_layers, make_loss, in_shape = CASES[case]
    layers, loss = make_layers(), make_loss()
    net = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), in_shape)
    net.init(seed)
    rng = np.random.default_rng(100 + seed)
    for p in net.params:  # nonzero biases, so their gradients flow through every term
        if p.fan_in is None:
            p.value[...] = rng.normal(0, 0.1, p.value.shape)
    x = rng.normal(size=(3, *in_shape))
    labels = rng.integers(0, 4, size=3).astype(np.int32)

    def loss_value() -> float:
        return float(net.loss.forward_loss(net.forward(x), labels))

    loss_value()
    net.backward(net.loss.backward_loss())
    analytic = {p.name: p.grad.copy() for p in net.params}
    for p in net.params:
        flat = p.value.reshape(-1)
        for i in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + H
            up = loss_value()
            flat[i] = old - H
            down = loss_value()
            flat[i] = old
            numeric = (up - down) / (2 * H)
            a = analytic[p.name].reshape(-1)[i]
            assert abs(numeric - a) <= ATOL + RTOL * abs(a), (p.name, i, numeric, a)
    assert max(np.abs(g).max() for g in analytic.values()) > 1e-3  # the check compared real gradients
