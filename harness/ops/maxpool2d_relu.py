"""maxpool2d_relu: ReLU then max pooling in one op, y = maxpool(ReLU(x)), and its backward pass: the tail of every
conv → ReLU → pool block of the thesis models (seed 003, §2.5.3 and §2.6.2), fused.

ReLU is monotonic, so maxpool(ReLU(x)) = ReLU(maxpool(x)) exactly: an implementation may pool first and apply ReLU
to the window maxima only. Backward: dx = the maxpool2d backward pass of dy·[y > 0] at each window's first maximum
of x (where y > 0 it is also the first maximum of ReLU(x); where y = 0 no gradient passes ReLU), so the full-size
ReLU(x) is never stored nor re-read. The checker compares every implementation with the oracle's composition of the
two ops (impls/reference/oracle.py). Geometry, tie rule and shape sets are maxpool2d's (harness/ops/maxpool2d.py).
FLOPs: maxpool2d's, plus one comparison per output (the ReLU, forward; the mask, backward).
"""

from __future__ import annotations

import numpy as np

from harness.ops import maxpool2d
from harness.ops.maxpool2d import Pool2dShape, pool_forward_reference
from harness.spec import OpSpec, PassSpec, signed_uniform


def _bwd_make(s: Pool2dShape, rng) -> dict:
    x = signed_uniform(rng, (s.N, s.C, s.H, s.W)).astype(np.float32).astype(np.float64)
    # y from the float32-rounded x equals every implementation's forward exactly (as in maxpool2d's bwd pass)
    y = np.maximum(pool_forward_reference(s, x), 0.0)
    return {"x": x, "y": y, "dy": signed_uniform(rng, y.shape)}


def _outputs(s: Pool2dShape) -> int:
    return s.N * s.C * s.P * s.Q


SPEC = OpSpec(
    name="maxpool2d_relu",
    shape_type=Pool2dShape,
    passes={
        "fwd": PassSpec(inputs=maxpool2d.FWD.inputs, outputs=maxpool2d.FWD.outputs,
                        flops=lambda s: maxpool2d.FWD.flops(s) + _outputs(s), reduction=maxpool2d.FWD.reduction,
                        make_inputs=maxpool2d.FWD.make_inputs),
        "bwd": PassSpec(inputs=maxpool2d.BWD.inputs, outputs=maxpool2d.BWD.outputs,
                        flops=lambda s: maxpool2d.BWD.flops(s) + _outputs(s), reduction=maxpool2d.BWD.reduction,
                        make_inputs=_bwd_make),
    },
    bound="memory",
    doc="ReLU then max pooling, fused: y = maxpool(ReLU(x)) = ReLU(maxpool(x)); bwd routes dy·[y > 0] to the "
        "first maximum of x",
    shape_sets=maxpool2d.SPEC.shape_sets,
)
