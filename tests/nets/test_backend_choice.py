"""Which implementation each op uses: the backend's own, a --use override, or the documented fallback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness import registry
from harness.errors import UsageError
from nets.backend import parse_overrides, resolve
from nets.layers import Dense, Flatten, ReLU, SoftmaxCrossEntropy
from nets.network import SGD, Network, ops_of

OPS = ["gemm", "relu", "softmax_xent", "sgd"]


def test_backend_uses_its_own_implementations():
    b = resolve("numpy_ref", OPS)
    assert b.device == "cpu" and b.dtype == np.float64
    assert {c.impl.name for c in b.choices.values()} == {"numpy_ref"}
    assert b.describe()[0] == "gemm: fwd=numpy_ref bwd=numpy_ref"


def test_override_and_generic_oracle_in_float32():
    b = resolve("numpy_opt", OPS, parse_overrides(["gemm=numpy_ref"]))
    assert b.dtype == np.float32
    assert b.choices[("gemm", "fwd")].impl.name == "numpy_ref" and b.choices[("gemm", "fwd")].how == "override"
    assert "fwd=numpy_ref (override)" in b.describe()[0]
    # numpy_ref is dtype-generic, so the float32 network still trains in float32 through it
    layers, loss = [Flatten(), Dense(4), ReLU(), Dense(3)], SoftmaxCrossEntropy()
    net = Network(layers, loss, b, (1, 2, 2))
    net.init(0)
    x = np.random.default_rng(0).normal(size=(5, 1, 2, 2)).astype(np.float32)
    loss_value, logits = SGD(net, 0.1).train_step(x, np.array([0, 1, 2, 0, 1], dtype=np.int32))
    assert logits.dtype == np.float32 and net.params[0].value.dtype == np.float32 and np.isfinite(loss_value)


def test_missing_op_falls_back_and_says_so(monkeypatch):
    """A CPU backend with only gemm gets the CPU fallbacks (numpy_opt) for everything else."""
    for pass_ in ("fwd", "bwd"):
        base = registry.get("gemm", pass_, "numpy_opt")
        monkeypatch.setitem(registry._REGISTRY, ("gemm", pass_, "gemmonly"), dataclasses.replace(base, name="gemmonly"))
    b = resolve("gemmonly", OPS)
    assert b.choices[("gemm", "bwd")].impl.name == "gemmonly"
    assert b.choices[("relu", "fwd")].impl.name == "numpy_opt" and b.choices[("relu", "fwd")].how == "fallback"
    assert "sgd: update=numpy_opt (fallback)" in b.describe()


def test_network_refuses_a_shape_the_implementation_cannot_run(monkeypatch):
    base = registry.get("gemm", "fwd", "numpy_ref")
    limited = dataclasses.replace(base, supports=lambda s: "K > 3 not supported" if s.K > 3 else None)
    monkeypatch.setitem(registry._REGISTRY, ("gemm", "fwd", "numpy_ref"), limited)
    layers, loss = [Flatten(), Dense(2)], SoftmaxCrossEntropy()
    net = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), (1, 2, 2))
    with pytest.raises(UsageError, match=r"gemm/fwd implementation numpy_ref cannot run .*K > 3 not supported"):
        net.forward(np.zeros((1, 1, 2, 2)))


@pytest.mark.parametrize(("backend", "overrides", "problem"), [
    ("nope", [], "unknown backend 'nope'.*valid: .*numpy_ref"),
    ("numpy_ref", ["gemm=nope"], "no implementation 'nope' of gemm/fwd"),
    ("numpy_ref", ["gemm=numpy_opt"], "numpy_opt computes in float32, the backend in float64"),
    ("numpy_ref", ["conv9=x"], "unknown op 'conv9'"),
    ("numpy_ref", ["gemm"], "expected OP=IMPLEMENTATION"),
])
def test_bad_backend_choices(backend, overrides, problem):
    with pytest.raises(UsageError, match=problem) as err:
        resolve(backend, OPS, parse_overrides(overrides))
    assert "\n" not in str(err.value)


def test_gpu_backend_unavailable_here_says_why():
    if registry.get("relu", "fwd", "cupy_opt").unavailable_reason() is None:
        pytest.skip("a GPU is available")
    with pytest.raises(UsageError, match="backend cupy_opt cannot run here"):
        resolve("cupy_opt", OPS)
