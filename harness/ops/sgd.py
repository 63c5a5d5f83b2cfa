"""sgd: the in-place mini-batch SGD update W ← W − lr·dW (thesis seed 003, §2.5.6 "Descenso del gradiente").

`w` is both input and output: the harness hands a fresh copy of W to the implementation, which updates it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import workloads
from harness.errors import UsageError
from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class SgdShape:
    N: int  # number of parameters
    lr: float = 0.1  # large enough that a skipped update is far outside any tolerance

    def __post_init__(self):
        positive(N=self.N)
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")


def _inputs(s):
    return {"w": Tensor((s.N,)), "dw": Tensor((s.N,))}


SPEC = OpSpec(
    name="sgd",
    shape_type=SgdShape,
    passes={
        "update": PassSpec(inputs=_inputs, outputs=lambda s: {"w": Tensor((s.N,))}, flops=lambda s: 2 * s.N,
                           reduction=lambda s: {"w": 1}, inplace=("w",),
                           make_inputs=lambda s, rng: {n: signed_uniform(rng, t.shape) for n, t in _inputs(s).items()}),
    },
    bound="memory",
    doc="in-place SGD step W ← W − lr·dW",
    shape_sets={
        "smoke": [SgdShape(1), SgdShape(7), SgdShape(1025), SgdShape(4099, 0.01)],
        # every parameter tensor of the thesis models (weights and biases), each size once
        "thesis": [SgdShape(n) for n in workloads.unique(n for m in workloads.THESIS_MODELS
                                                         for n in workloads.thesis_params(m))],
        "edge": [SgdShape(2), SgdShape(31), SgdShape(127)],
        "large": [SgdShape(32 * 2**20), SgdShape(64 * 2**20)],  # 3 x 128 MiB, 3 x 256 MiB
    },
)
