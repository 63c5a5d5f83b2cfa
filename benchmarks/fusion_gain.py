"""What conv2d_bias_relu's one call saves over conv2d fprop + relu fwd, per implementation and layer:

    python benchmarks/fusion_gain.py RUN_DIR [RUN_DIR ...]

The run folders hold conv2d_bias_relu fprop, conv2d fprop and relu fwd rows on matching sets (thesis, resnet50):
each conv layer's fused median is set against its conv median plus the relu median of its output tensor
(N × K × P × Q). Prints one line per (implementation, layer) and the sums per implementation and set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.ops._eltwise import TensorShape
from harness.ops.conv2d import Conv2dShape
from harness.results import load_runs
from harness.spec import parse_shape, shape_str


def gains(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df.median_ms.notna() & df.status.isin(["pass"])]
    med = {(r.op, r.impl, r.shape): r.median_ms for r in ok.itertuples()}
    rows = []
    for r in ok[ok.op == "conv2d_bias_relu"].itertuples():
        s = parse_shape(Conv2dShape, r.shape)
        conv = med.get(("conv2d", r.impl, r.shape))
        relu = med.get(("relu", r.impl, shape_str(TensorShape(s.N, s.K, s.P, s.Q))))
        if conv is None or relu is None:
            continue
        rows.append({"impl": r.impl, "set": r.shape_set, "shape": r.shape, "fused_ms": r.median_ms,
                     "conv_ms": conv, "relu_ms": relu, "speedup": (conv + relu) / r.median_ms})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> None:
    df, _ = load_runs(argv)
    g = gains(df)
    if g.empty:
        print("no layer has all three rows (conv2d_bias_relu fprop, conv2d fprop, relu fwd)")
        return
    pd.set_option("display.width", 200)
    print(g.round(4).to_string(index=False))
    sums = g.groupby(["impl", "set"])[["fused_ms", "conv_ms", "relu_ms"]].sum()
    sums["speedup"] = (sums.conv_ms + sums.relu_ms) / sums.fused_ms
    print(sums.round(4).to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
