"""relu: y = max(x, 0); backward dx = dy · [y > 0] (thesis seed 003, §2.5.3: ReLU and its derivative).

The backward pass reads the forward output y (as cuDNN's activation backward does); y > 0 exactly when x > 0.
"""

from __future__ import annotations

import numpy as np

from harness.ops._eltwise import SHAPE_SETS, TensorShape, tensor
from harness.spec import OpSpec, PassSpec, signed_uniform


def _bwd_make(s, rng):
    x = signed_uniform(rng, tensor(s).shape)
    return {"y": np.maximum(x, 0.0), "dy": signed_uniform(rng, tensor(s).shape)}


SPEC = OpSpec(
    name="relu",
    shape_type=TensorShape,
    passes={
        "fwd": PassSpec(inputs=lambda s: {"x": tensor(s)}, outputs=lambda s: {"y": tensor(s)},
                        flops=lambda s: s.numel, reduction=lambda s: {"y": 1},
                        make_inputs=lambda s, rng: {"x": signed_uniform(rng, tensor(s).shape)}),
        "bwd": PassSpec(inputs=lambda s: {"y": tensor(s), "dy": tensor(s)}, outputs=lambda s: {"dx": tensor(s)},
                        flops=lambda s: s.numel, reduction=lambda s: {"dx": 1}, make_inputs=_bwd_make),
    },
    bound="memory",
    doc="ReLU: y = max(x, 0); bwd dx = dy·[y > 0]",
    shape_sets=SHAPE_SETS,
)
