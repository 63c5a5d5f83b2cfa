"""gemm: the dense (fully connected) layer, Y = X·W (+ b) (then ReLU), and its backward pass.

Thesis (seed 003, §2.5.2 and §3.1.2): a layer's output is z = x·W + b, a = f(z); backpropagation gives
dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ_rows dY. Shapes: X is M×K (M = batch), W is K×N, Y is M×N.
The `bwd` pass is the linear part only; a fused ReLU's backward is the `relu` op's.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import workloads
from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class GemmShape:
    M: int
    N: int
    K: int
    bias: bool = False
    relu: bool = False

    def __post_init__(self):
        positive(M=self.M, N=self.N, K=self.K)


def _fwd_inputs(s: GemmShape) -> dict[str, Tensor]:
    t = {"x": Tensor((s.M, s.K)), "w": Tensor((s.K, s.N))}
    if s.bias:
        t["b"] = Tensor((s.N,))
    return t


def _fwd_make(s: GemmShape, rng) -> dict:
    return {name: signed_uniform(rng, t.shape) for name, t in _fwd_inputs(s).items()}


def _bwd_inputs(s: GemmShape) -> dict[str, Tensor]:
    return {"x": Tensor((s.M, s.K)), "w": Tensor((s.K, s.N)), "dy": Tensor((s.M, s.N))}


def _bwd_make(s: GemmShape, rng) -> dict:
    return {name: signed_uniform(rng, t.shape) for name, t in _bwd_inputs(s).items()}


FWD = PassSpec(
    inputs=_fwd_inputs,
    outputs=lambda s: {"y": Tensor((s.M, s.N))},
    flops=lambda s: 2 * s.M * s.N * s.K + (s.M * s.N if s.bias else 0) + (s.M * s.N if s.relu else 0),
    reduction=lambda s: {"y": s.K},
    make_inputs=_fwd_make,
)

BWD = PassSpec(
    inputs=_bwd_inputs,
    outputs=lambda s: {"dx": Tensor((s.M, s.K)), "dw": Tensor((s.K, s.N)), "db": Tensor((s.N,))},
    flops=lambda s: 4 * s.M * s.N * s.K + s.M * s.N,
    reduction=lambda s: {"dx": s.N, "dw": s.M, "db": s.M},
    make_inputs=_bwd_make,
)


def _thesis_dense(batch: int) -> list[GemmShape]:
    """The dense layers of the thesis models (harness.workloads): flattened conv features -> hidden -> 10 classes."""
    layers = workloads.unique(d for m in workloads.THESIS_MODELS for d in workloads.thesis_dense(m))
    return [GemmShape(M=batch, N=n, K=k, bias=True) for k, n in layers]


SPEC = OpSpec(
    name="gemm",
    shape_type=GemmShape,
    passes={"fwd": FWD, "bwd": BWD},
    bound="compute",
    baselines=("cublas", "numpy_opt"),
    doc="dense layer: Y = X·W + b (+ReLU); bwd: dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ dY",
    shape_sets={
        "smoke": [GemmShape(1, 1, 1), GemmShape(7, 5, 3, bias=True), GemmShape(33, 17, 65, bias=True, relu=True),
                  GemmShape(64, 64, 64), GemmShape(3, 130, 129, relu=True)],
        "thesis": _thesis_dense(workloads.BATCH),
        "thesis-256": _thesis_dense(256),
        "gemm-square": [GemmShape(n, n, n) for n in workloads.GEMM_SQUARE],
        "gemm-tall": [GemmShape(*mnk) for mnk in workloads.GEMM_TALL],
        "edge": [GemmShape(1, 1000, 1), GemmShape(127, 31, 13, bias=True, relu=True), GemmShape(129, 1, 257)],
    },
)
