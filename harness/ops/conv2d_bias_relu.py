"""conv2d_bias_relu: convolution, bias and ReLU in one call, y = max(0, conv(x, w) + b): the head of every
conv → ReLU block of the thesis models (seed 003, §2.6.1 then §2.5.3), fused into the convolution's epilogue.

Forward only: the layer's backward pass is ReLU's (dy·[y > 0], from the y this pass wrote) followed by conv2d's
dgrad and wgrad, so nothing of it changes. The full-size pre-activation conv(x, w) + b is never stored nor re-read:
the ReLU costs no memory pass of its own. The checker compares every implementation with the oracle's composition
of the two ops (impls/reference/oracle.py); ReLU is 1-Lipschitz, so conv2d fprop's tolerance (reduction C/G·R·S)
holds unchanged. Geometry, shape sets and FLOPs are conv2d's fprop (harness/ops/conv2d.py), plus one comparison per
output.
"""

from __future__ import annotations

from harness.ops import conv2d
from harness.ops.conv2d import Conv2dShape
from harness.spec import OpSpec, PassSpec

FPROP = PassSpec(inputs=conv2d.FPROP.inputs, outputs=conv2d.FPROP.outputs,
                 flops=lambda s: conv2d.FPROP.flops(s) + s.N * s.K * s.P * s.Q, reduction=conv2d.FPROP.reduction,
                 make_inputs=conv2d.FPROP.make_inputs)

SPEC = OpSpec(
    name="conv2d_bias_relu",
    shape_type=Conv2dShape,
    passes={"fprop": FPROP},
    bound="compute",
    doc="convolution + bias + ReLU, fused: y = max(0, x*w + b) (conv2d's geometry and shape sets)",
    shape_sets=conv2d.SPEC.shape_sets,
)
