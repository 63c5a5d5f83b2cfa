"""softmax_xent: softmax over classes + cross-entropy against integer labels, mean over the batch; fused gradient.

Thesis (seed 003, §2.5.5 and §3.1.1): p = softmax(z), L = −(1/N) Σ_n log p[n, label_n];
∂L/∂z = (p − onehot(label)) / N — the "one-hot simplification" that makes the backward pass one subtraction.
Implementations compute log p stably as z − max(z) − log Σ exp(z − max(z)).
FLOPs (per element of the N×K logits, counted as in the formula): fwd 4 (max, subtract, exp, add) plus one log
and one add per row; bwd 4 (max, subtract, exp, sum) plus 2 (scale, subtract) per element.
The `fused` pass is a training step's use of the op: the loss and its gradient from one read of the logits (the row
statistics max and Σ exp shared), so its FLOPs are bwd's plus the loss's log and add per row; a training loss
layer with fusion on calls only it (nets.fusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import workloads
from harness.spec import OpSpec, PassSpec, Tensor, positive, signed_uniform


@dataclass(frozen=True)
class XentShape:
    N: int  # batch
    K: int  # classes

    def __post_init__(self):
        positive(N=self.N, K=self.K)


def _inputs(s):
    return {"logits": Tensor((s.N, s.K)), "labels": Tensor((s.N,), "int32")}


def _make(s, rng):
    return {"logits": signed_uniform(rng, (s.N, s.K), scale=4.0),
            "labels": rng.integers(0, s.K, size=s.N).astype(np.int32)}


SPEC = OpSpec(
    name="softmax_xent",
    shape_type=XentShape,
    passes={
        "fwd": PassSpec(inputs=_inputs, outputs=lambda s: {"loss": Tensor(())},
                        flops=lambda s: 4 * s.N * s.K + 2 * s.N, reduction=lambda s: {"loss": s.N + s.K},
                        make_inputs=_make, transcendental=True),
        "bwd": PassSpec(inputs=_inputs, outputs=lambda s: {"dlogits": Tensor((s.N, s.K))},
                        flops=lambda s: 6 * s.N * s.K, reduction=lambda s: {"dlogits": s.K},
                        make_inputs=_make, transcendental=True),
        "fused": PassSpec(inputs=_inputs, outputs=lambda s: {"loss": Tensor(()), "dlogits": Tensor((s.N, s.K))},
                          flops=lambda s: 6 * s.N * s.K + 2 * s.N,
                          reduction=lambda s: {"loss": s.N + s.K, "dlogits": s.K}, make_inputs=_make,
                          transcendental=True),
    },
    bound="memory",
    doc="softmax + cross-entropy over integer labels (mean); bwd (softmax − onehot)/N; fused: both in one pass",
    shape_sets={
        "smoke": [XentShape(1, 1), XentShape(3, 10), XentShape(32, 10), XentShape(5, 1000), XentShape(2, 33)],
        "thesis": [XentShape(n, workloads.CLASSES) for n in (workloads.BATCH, 256)],  # the output layer
        "edge": [XentShape(1, 2), XentShape(127, 13), XentShape(31, 4097), XentShape(1000, 1)],
        "imagenet": [XentShape(32, 1000), XentShape(256, 1000)],
        "large": [XentShape(65536, 1024), XentShape(131072, 1000)],  # 256 MiB and 500 MiB of logits
    },
)
