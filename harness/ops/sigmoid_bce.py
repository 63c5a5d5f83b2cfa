"""sigmoid_bce: binary sigmoid cross-entropy of the seed's first chapter, mean over elements; fused gradient.

Thesis (seed 000/003, §2.5.5 "Sigmoid Cross Entropy Loss"): with p = σ(z) and target t ∈ {0, 1},
L = −(1/N) Σ [t·log p + (1 − t)·log(1 − p)], computed stably as (1/N) Σ [max(z, 0) − z·t + log(1 + e^(−|z|))];
∂L/∂z = (σ(z) − t) / N.
FLOPs per element: fwd 7 (max, multiply, subtract, abs, exp, log1p, add); bwd 5 (sigmoid's 4, subtract; the
scale by 1/N folded in) + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class BceShape:
    N: int  # number of (logit, target) pairs: batch × outputs

    def __post_init__(self):
        positive(N=self.N)


def _inputs(s):
    return {"logits": Tensor((s.N,)), "targets": Tensor((s.N,))}


def _make(s, rng):
    return {"logits": signed_uniform(rng, (s.N,), scale=4.0), "targets": rng.integers(0, 2, size=s.N) * 1.0}


SPEC = OpSpec(
    name="sigmoid_bce",
    shape_type=BceShape,
    passes={
        "fwd": PassSpec(inputs=_inputs, outputs=lambda s: {"loss": Tensor(())}, flops=lambda s: 7 * s.N,
                        reduction=lambda s: {"loss": s.N}, make_inputs=_make, transcendental=True),
        "bwd": PassSpec(inputs=_inputs, outputs=lambda s: {"dlogits": Tensor((s.N,))}, flops=lambda s: 6 * s.N,
                        reduction=lambda s: {"dlogits": 1}, make_inputs=_make, transcendental=True),
    },
    bound="memory",
    doc="binary sigmoid cross-entropy (mean); bwd (σ(z) − t)/N",
    shape_sets={
        "smoke": [BceShape(1), BceShape(2), BceShape(33), BceShape(1000)],
        "thesis": [BceShape(32), BceShape(256)],
        "edge": [BceShape(127), BceShape(4097)],
        "large": [BceShape(64 * 2**20), BceShape(128 * 2**20)],  # 2 x 256 MiB and 2 x 512 MiB
    },
)
