"""PyTorch as the training peer: the same architecture and initial weights as a nets network, trained with
torch.nn and torch.optim.SGD in strict FP32 (TF32 off, and back as it was afterwards: `strict_fp32`).

Three peers, what a PyTorch user would pick (`train-bench --peers`): eager (`peer_step`), the whole step captured
in one CUDA graph by hand (`peer_graph_step`), and torch.compile in its reduce-overhead mode (`peer_compile_step`:
Inductor's fused kernels, replayed from CUDA graphs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from nets.data import fit, synthetic
from nets.models import ModelSpec
from nets.network import Network

NAME = "pytorch-eager"
GRAPH_NAME = "pytorch-graph"
COMPILE_NAME = "pytorch-compile"
KINDS = ("eager", "graph", "compile")  # train-bench --peers
DEFAULT_KINDS = ("eager", "graph")  # compile is opt-in: seconds of compilation per model and batch


def torch_unavailable_reason() -> str | None:
    try:
        import torch  # noqa: F401
    except Exception as exc:
        return f"torch not installed ({type(exc).__name__})"
    return None


@contextlib.contextmanager
def strict_fp32():
    """torch's TF32 switches off for the body, then restored: the peer must not change the process's settings."""
    import torch

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def peer_step(ref: Network, spec: ModelSpec, batch: int, seed: int) -> tuple[Callable[[int], None], str, str]:
    """(step(i), "cuda" or "cpu", what it is): one torch training step on batch i % 4 of synthetic images, for the
    model `spec` with the weights of the host network `ref`. Call inside strict_fp32()."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = to_torch(ref).float().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr)
    ds = fit(synthetic(4 * batch, ref.in_shape, seed=seed), None)
    xs = torch.from_numpy(ds.x_train).to(device).split(batch)
    ys = torch.from_numpy(ds.y_train.astype(np.int64)).to(device).split(batch)
    loss_fn = torch.nn.functional.cross_entropy if spec.loss == "softmax" else bce_onehot

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[i % 4]), ys[i % 4]).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step, device, f"torch {torch.__version__} nn + optim.SGD on {device}, TF32 off"


def bce_onehot(logits, labels):
    import torch

    targets = torch.nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def to_torch(net: Network):
    """A torch.nn.Sequential with the same layers and weights (same dtype) as the host network `net`; torch stores
    a dense layer's W transposed."""
    import torch

    from nets.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, ReLUMaxPool2d, Sigmoid

    mods = []
    for layer in net.layers:
        if isinstance(layer, ReLUMaxPool2d):  # a fused layer (nets.fusion) is its two torch modules
            mods.append(torch.nn.ReLU())
        if isinstance(layer, Dense):
            m = torch.nn.Linear(layer.in_shape[0], layer.units)
            w, b = layer.params
            m.weight.data = torch.from_numpy(np.ascontiguousarray(w.value.T))
            m.bias.data = torch.from_numpy(b.value.copy())
            if layer.relu:
                mods.append(m)
                m = torch.nn.ReLU()
        elif isinstance(layer, Conv2d):
            m = torch.nn.Conv2d(layer.in_shape[0], layer.filters, layer.kernel, layer.stride, layer.pad)
            w, b = layer.params
            m.weight.data = torch.from_numpy(w.value.copy())
            m.bias.data = torch.from_numpy(b.value.copy())
            if layer.relu:
                mods.append(m)
                m = torch.nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = torch.nn.MaxPool2d(layer.size, layer.stride)
        elif isinstance(layer, ReLU):
            m = torch.nn.ReLU()
        elif isinstance(layer, Sigmoid):
            m = torch.nn.Sigmoid()
        elif isinstance(layer, Flatten):
            m = torch.nn.Flatten()
        else:
            raise TypeError(f"no torch equivalent for {layer!r}")
        mods.append(m)
    return torch.nn.Sequential(*mods)


def peer_graph_step(ref: Network, spec: ModelSpec, batch: int, seed: int) -> tuple[Callable[[int], None], str, str]:
    """As peer_step, with the whole step (forward, loss, backward, optimizer.step) captured into one CUDA graph:
    PyTorch's documented whole-network capture (warm-up on a side stream, static inputs, torch.cuda.graph), and
    each step copies batch i % 4 into the static input and replays. CUDA only; call inside strict_fp32()."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device: CUDA graphs need one")
    model = to_torch(ref).float().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr)
    ds = fit(synthetic(4 * batch, ref.in_shape, seed=seed), None)
    xs = torch.from_numpy(ds.x_train).cuda().split(batch)
    ys = torch.from_numpy(ds.y_train.astype(np.int64)).cuda().split(batch)
    loss_fn = torch.nn.functional.cross_entropy if spec.loss == "softmax" else bce_onehot
    static_x, static_y = xs[0].clone(), ys[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(static_x), static_y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss_fn(model(static_x), static_y).backward()
        opt.step()

    def step(i: int) -> None:
        static_x.copy_(xs[i % 4])
        static_y.copy_(ys[i % 4])
        graph.replay()
        torch.cuda.synchronize()

    return step, "cuda", f"torch {torch.__version__} nn + optim.SGD captured in one CUDA graph, TF32 off"


def peer_compile_step(ref: Network, spec: ModelSpec, batch: int, seed: int) -> tuple[Callable[[int], None], str, str]:
    """As peer_step, with the forward pass and the loss compiled by torch.compile(mode="reduce-overhead") (their
    backward compiled with them by AOTAutograd, both replayed from CUDA graphs) and a foreach SGD update. The first
    steps compile (seconds): the bench's warm-up steps absorb them. CUDA only; call inside strict_fp32()."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device: the reduce-overhead mode replays CUDA graphs")
    model = to_torch(ref).float().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, foreach=True)
    ds = fit(synthetic(4 * batch, ref.in_shape, seed=seed), None)
    xs = torch.from_numpy(ds.x_train).cuda().split(batch)
    ys = torch.from_numpy(ds.y_train.astype(np.int64)).cuda().split(batch)
    loss_fn = torch.nn.functional.cross_entropy if spec.loss == "softmax" else bce_onehot
    compiled = torch.compile(lambda x, y: loss_fn(model(x), y), mode="reduce-overhead")

    def step(i: int) -> None:
        torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the last one's graph outputs may be reused
        opt.zero_grad(set_to_none=True)
        compiled(xs[i % 4], ys[i % 4]).backward()
        opt.step()
        torch.cuda.synchronize()

    return step, "cuda", (f"torch {torch.__version__} nn + torch.compile(mode=reduce-overhead) + foreach SGD, "
                          "TF32 off")

