"""What cupy_winograd_f4 should take on ResNet-50's 3x3 stride-1 layers: the prediction NOTES.md records before
the first GPU run (issue 12, item 3).

Model: the 36 batched products at GEMM_TFLOPS (the v7 batched kernel's rate on ResNet-50's 1x1 layers) plus the
bytes every launch moves at HBM_TBS (U written and read, the image read once, V and M each written and read, the
output written), the two added; beside it the direct convolution's time at the FP32 FMA peak, the ceiling of any
direct algorithm.

    python benchmarks/winograd_model.py [--gemm-tflops 38] [--hbm-tbs 3.3]
"""

from __future__ import annotations

import argparse

from harness.ops.conv2d import Conv2dShape
from harness.workloads import RESNET50_CONVS
from impls.cuda.conv2d_winograd import POSITIONS, f4_plan

FMA_PEAK_TFLOPS = 66.9  # H200 strict FP32 (harness.measure.ceilings)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gemm-tflops", type=float, default=38.0)
    p.add_argument("--hbm-tbs", type=float, default=3.3)
    args = p.parse_args()
    print("batch  layer      tiles   GEMM GFLOP  x fewer  GEMM ms  MB moved  bytes ms  F4 ms  direct@peak ms")
    for n in (32, 128):
        for name, layer in RESNET50_CONVS.items():
            s = Conv2dShape(N=n, C=layer.C, H=layer.H, W=layer.W, K=layer.K, R=layer.R, S=layer.S,
                            stride=layer.stride, pad=layer.pad)
            if (s.R, s.S, s.stride_h) != (3, 3, 1):
                continue
            plan = f4_plan(s, "fprop")
            gemm = 2 * POSITIONS * plan.kout * plan.ldt * plan.cin
            direct = 2 * s.N * s.K * s.P * s.Q * s.C * 9
            image, out = s.N * s.C * s.H * s.W, s.N * s.K * s.P * s.Q
            buffers = 2 * POSITIONS * (plan.kout * plan.cin + plan.ldt * (plan.cin + plan.kout))  # written + read
            moved = 4 * (buffers + image + out)
            t_gemm, t_bytes = gemm / args.gemm_tflops / 1e9, moved / args.hbm_tbs / 1e9
            print(f"{n:5d}  {name:9s}  {plan.tiles:6d}  {gemm / 1e9:10.2f}  {direct / gemm:7.2f}  {t_gemm:7.3f}  "
                  f"{moved / 1e6:8.0f}  {t_bytes:8.3f}  {t_gemm + t_bytes:5.3f}  "
                  f"{direct / FMA_PEAK_TFLOPS / 1e9:14.3f}")


if __name__ == "__main__":
    main()
