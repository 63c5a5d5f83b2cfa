"""sigmoid: y = 1 / (1 + e^(−x)); backward dx = dy · y · (1 − y) (thesis seed 003, §2.5.3).

FLOPs: 4 per element forward (negate, exp, add, divide), 3 backward.
"""

from __future__ import annotations

import numpy as np

from harness.ops._eltwise import SHAPE_SETS, TensorShape, tensor
from harness.spec import OpSpec, PassSpec, signed_uniform


def _bwd_make(s, rng):
    x = signed_uniform(rng, tensor(s).shape, scale=4.0)
    return {"y": 1.0 / (1.0 + np.exp(-x)), "dy": signed_uniform(rng, tensor(s).shape)}


SPEC = OpSpec(
    name="sigmoid",
    shape_type=TensorShape,
    passes={
        "fwd": PassSpec(inputs=lambda s: {"x": tensor(s)}, outputs=lambda s: {"y": tensor(s)},
                        flops=lambda s: 4 * s.numel, reduction=lambda s: {"y": 1}, transcendental=True,
                        make_inputs=lambda s, rng: {"x": signed_uniform(rng, tensor(s).shape, scale=4.0)}),
        "bwd": PassSpec(inputs=lambda s: {"y": tensor(s), "dy": tensor(s)}, outputs=lambda s: {"dx": tensor(s)},
                        flops=lambda s: 3 * s.numel, reduction=lambda s: {"dx": 1}, make_inputs=_bwd_make),
    },
    bound="memory",
    doc="sigmoid: y = 1/(1+e^-x); bwd dx = dy·y·(1-y)",
    shape_sets=SHAPE_SETS,
)
