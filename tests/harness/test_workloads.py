"""The thesis shape sets of every op are the shapes the thesis networks, built by nets/, actually run."""

from __future__ import annotations

from collections import defaultdict

import pytest

from harness import workloads
from harness.ops import get_op
from nets.backend import resolve
from nets.models import THESIS_MODELS, get_model
from nets.network import Network, ops_of


def network_shapes(batch: int) -> tuple[dict[str, list], list[int]]:
    """{op: shapes used at `batch`} over every layer of thesis-0..4, and every parameter tensor's size."""
    shapes, params = defaultdict(list), []
    for name in THESIS_MODELS:
        spec = get_model(name)
        layers, loss = spec.layers(workloads.CLASSES), spec.loss_layer()
        net = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), spec.input_shape)
        for layer in [*net.layers, net.loss]:
            for op in layer.ops:
                shapes[op].append(layer.at_batch(batch)["shape"])
        params += [p.value.size for p in net.params]
    return {op: workloads.unique(s) for op, s in shapes.items()}, workloads.unique(params)


def test_the_models_are_the_workloads_table():
    assert tuple(m.name for m in workloads.THESIS_MODELS) == THESIS_MODELS
    for m in workloads.THESIS_MODELS:
        spec = get_model(m.name)
        assert (spec.input_shape, spec.hidden) == (m.input, m.hidden)


@pytest.mark.parametrize("op", ["conv2d", "maxpool2d", "gemm", "relu"])
def test_thesis_set_is_what_the_networks_run(op):
    used, _ = network_shapes(workloads.BATCH)
    assert set(get_op(op).shapes("thesis")) == set(used[op])


def test_thesis_sets_of_the_loss_and_the_update_cover_the_networks():
    used, params = network_shapes(workloads.BATCH)
    assert set(used["softmax_xent"]) <= set(get_op("softmax_xent").shapes("thesis"))
    assert {s.N for s in get_op("sgd").shapes("thesis")} == set(params)


def test_thesis_256_set_is_the_dense_layers_at_batch_256():
    used, _ = network_shapes(256)
    assert set(get_op("gemm").shapes("thesis-256")) == set(used["gemm"])
