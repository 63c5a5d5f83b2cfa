"""`python -m harness new-impl --op OP --pass PASS --name NAME [--device gpu|cpu] [--dir DIR]`: write a runnable
starting point for an implementation of your own: NAME.py (registered with @register) and, for the GPU, NAME.cu
(a naive kernel: one thread per output element). The header of each file says what the arguments are, the tensor
layout, and the one command that checks and times it; that command passes on the files as written.

Templates exist for the ops users start with (TEMPLATES); other (op, pass, device) choices are refused with the list.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from harness.errors import UsageError
from harness.ops import get_op

_PY_HEAD = '''"""{name}: {op} {pass_} on the {device}, written by `python -m harness new-impl` as a starting point.

Check it against the float64 oracle and time it beside the vendor library (run from this folder):

    python -m harness run --op {op} --pass {pass_} --plugin {name}.py --impl {name},{peer}

{args}
Outputs arrive preallocated and filled with NaN: write every element in place and return None. Make it fast, then
run the command again; `--shapes thesis` or `--shapes resnet50` time it on real layers, `--shapes edge` on odd sizes.
"""
'''

_GPU_ARGS = ("Arguments: `s`, the shape ({shape}), the inputs and outputs by name as CuPy float32 "
             "arrays, C-contiguous, layout {layout}. Launch on CuPy's current stream; do not synchronise.")
_CPU_ARGS = ("Arguments: `s`, the shape ({shape}), the inputs and outputs by name as NumPy float32 "
             "arrays, C-contiguous, layout {layout}.")

_GPU_PY = '''
import numpy as np

from harness import cuda, register
from harness.device import gpu_unavailable_reason

SOURCE = "{name}.cu"  # beside this file
KERNEL = "{name}_{op}_{pass_}"
THREADS = 256


def _blocks(n: int) -> int:
    return max(1, min(-(-n // THREADS), 2**31 - 1))  # the kernel grid-strides, so any size fits


@register("{op}", "{pass_}", name="{name}", device="gpu", math="fp32", available=gpu_unavailable_reason,
          details=lambda s: cuda.attributes(SOURCE, [KERNEL]){supports})
def {func}(s, {params}):
    """{doc}"""
    args = ({launch_args})
    cuda.kernel(SOURCE, KERNEL)((_blocks({count}),), (THREADS,), args)
'''

_CU_HEAD = '''// {name}.cu: {op} {pass_}, a starting point written by `python -m harness new-impl` (the naive kernel).
//
// {formula}
// Layout: {layout}; float32, C-contiguous.
// Strategy: one thread per output element in a grid-stride loop with 64-bit indices (any size works).
// Check and time: python -m harness run --op {op} --pass {pass_} --plugin {name}.py --impl {name},{peer}
'''

TEMPLATES: dict[tuple[str, str], dict] = {
    ("relu", "fwd"): {
        "shape": "N, C, H, W", "layout": "x and y N×C×H×W", "formula": "y = max(x, 0)",
        "params": "x, *, y", "doc": "y = max(x, 0), one thread per element.", "count": "y.size",
        "launch_args": "x, y, np.int64(y.size)",
        "cu": '''extern "C" __global__ void {name}_relu_fwd(const float* __restrict__ x, float* __restrict__ y,
                                     long long n)
{{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] > 0.f ? x[i] : 0.f;
}}
''',
        "cpu": "    np.maximum(x, 0, out=y)\n",
    },
    ("conv2d", "fprop"): {
        "shape": "N, C, H, W, K, R, S, stride, pad, and the output's P, Q; the template takes square layers (one "
                 "stride and pad for both axes, no dilation, no groups: `supports=` says so for the others, whose "
                 "rows are then skipped; s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dilation_h, s.dilation_w and "
                 "s.groups describe them)",
        "supports": (',\n          supports=lambda s: None if s.square else '
                     '"template: square layers only (see its header)"'),
        "layout": "x N×C×H×W, w K×C×R×S, b K, y N×K×P×Q",
        "formula": "y[n,k,p,q] = b[k] + Σ_{c,r,s} x[n,c,p·u+r−pad,q·u+s−pad]·w[k,c,r,s], u = stride, zero outside",
        "params": "x, w, b, *, y", "doc": "y = b + Σ x·w, one thread per output element.", "count": "y.size",
        "launch_args": "x, w, b, y, *map(np.int32, (s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.stride, s.pad))",
        "cu": '''extern "C" __global__ void {name}_conv2d_fprop(const float* __restrict__ x,
                                          const float* __restrict__ w, const float* __restrict__ b,
                                          float* __restrict__ y, int N, int C, int H, int W, int K, int R, int S,
                                          int P, int Q, int u, int pad)
{{
    const long long total = (long long)N * K * P * Q;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {{
        const int q = (int)(i % Q), p = (int)((i / Q) % P), k = (int)((i / ((long long)P * Q)) % K);
        const long long n = i / ((long long)K * P * Q);
        float acc = 0.f;
        for (int c = 0; c < C; ++c)
            for (int r = 0; r < R; ++r) {{
                const int h = p * u + r - pad;
                if (h < 0 || h >= H) continue;
                for (int s = 0; s < S; ++s) {{
                    const int v = q * u + s - pad;
                    if (v >= 0 && v < W) acc += x[((n * C + c) * H + h) * W + v] * w[((k * C + c) * R + r) * S + s];
                }}
            }}
        y[i] = acc + b[k];
    }}
}}
''',
        "cpu": '''    xp = np.pad(x, ((0, 0), (0, 0), (s.pad, s.pad), (s.pad, s.pad)))
    y[...] = b[None, :, None, None]
    u = s.stride
    for r in range(s.R):  # one shifted window of the input per filter tap
        for c in range(s.S):
            window = xp[:, :, r:r + u * (s.P - 1) + 1:u, c:c + u * (s.Q - 1) + 1:u]  # N×C×P×Q
            y += np.einsum("ncpq,kc->nkpq", window, w[:, :, r, c], optimize=True)
''',
    },
    ("gemm", "fwd"): {
        "shape": "M, N, K, and the flags bias, relu", "layout": "x M×K, w K×N, b N (when s.bias), y M×N",
        "formula": "y[i,j] = Σ_l x[i,l]·w[l,j] (+ b[j]) (then max(·, 0) when s.relu)",
        "params": "x, w, b=None, *, y", "doc": "y = x·w (+ b, ReLU), one thread per output element.",
        "count": "y.size",
        "launch_args": "x, w, b if s.bias else y, y, np.int32(s.M), np.int32(s.N), np.int32(s.K), "
                       "np.int32(s.bias), np.int32(s.relu)",
        "cu": '''extern "C" __global__ void {name}_gemm_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                     const float* b, float* y, int M, int N, int K, int bias, int relu)
{{
    const long long total = (long long)M * N;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {{
        const long long row = i / N;
        const int col = (int)(i % N);
        float acc = 0.f;
        for (int l = 0; l < K; ++l) acc += x[row * K + l] * w[(long long)l * N + col];
        if (bias) acc += b[col];
        y[i] = relu && acc < 0.f ? 0.f : acc;
    }}
}}
''',
        "cpu": '''    np.matmul(x, w, out=y)
    if s.bias:
        y += b
    if s.relu:
        np.maximum(y, 0, out=y)
''',
    },
}


def write(op: str, pass_: str, name: str, device: str = "gpu", folder: str | Path = ".") -> list[Path]:
    """Write NAME.py (and NAME.cu on the GPU) into `folder`; the files written. UsageError for a bad choice or
    when a file would be overwritten."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UsageError(f"--name {name!r} must be a Python identifier (letters, digits, _)")
    if (op, pass_) not in TEMPLATES:
        raise UsageError(f"no template for {op}/{pass_}; templates: "
                         f"{', '.join(f'{o}/{p}' for o, p in TEMPLATES)}")
    if device not in ("gpu", "cpu"):
        raise UsageError(f"--device {device!r}: valid: cpu, gpu")
    t = TEMPLATES[(op, pass_)]
    folder = Path(folder)
    files = {folder / f"{name}.py": _python(op, pass_, name, device, t)}
    if device == "gpu":
        files[folder / f"{name}.cu"] = (_CU_HEAD + "\n" + t["cu"]).format(
            name=name, op=op, pass_=pass_, formula=t["formula"], layout=t["layout"], peer=_peer(op))
    for path in files:
        if path.exists():
            raise UsageError(f"{path} exists; choose another --name or --dir")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def _peer(op: str) -> str:
    """The library the op's speedups are taken against (its spec's first baseline)."""
    return get_op(op).baselines[0]


def _python(op: str, pass_: str, name: str, device: str, t: dict) -> str:
    peer = _peer(op) if device == "gpu" else "numpy_opt"
    args = textwrap.fill((_GPU_ARGS if device == "gpu" else _CPU_ARGS).format(shape=t["shape"], layout=t["layout"]),
                         112)
    head = _PY_HEAD.format(name=name, op=op, pass_=pass_, device=device.upper(), peer=peer, args=args)
    func = f"{name}_{op}_{pass_}"
    if device == "gpu":
        return head + _GPU_PY.format(name=name, op=op, pass_=pass_, func=func, params=t["params"], doc=t["doc"],
                                     count=t["count"], launch_args=t["launch_args"], supports=t.get("supports", ""))
    return head + f'''
import numpy as np

from harness import register


@register("{op}", "{pass_}", name="{name}", device="cpu", math="fp32"{t.get("supports", "")})
def {func}(s, {t["params"]}):
    """{t["formula"]}"""
{t["cpu"]}'''


def cmd_new_impl(args) -> int:
    for path in write(args.op, args.pass_, args.name, args.device, args.dir):
        print(f"wrote {path}")
    peer = _peer(args.op) if args.device == "gpu" else "numpy_opt"
    print(f"check and time it: cd {args.dir} && python -m harness run --op {args.op} --pass {args.pass_} "
          f"--plugin {args.name}.py --impl {args.name},{peer}")
    return 0


def add_commands(subparsers) -> None:
    """Adds `new-impl` to the harness CLI."""
    p = subparsers.add_parser("new-impl", help="write a runnable starting point for your own implementation")
    p.add_argument("--op", required=True, help=f"op ({', '.join(sorted({o for o, _ in TEMPLATES}))})")
    p.add_argument("--pass", dest="pass_", required=True, help="pass of the op, e.g. fwd, fprop")
    p.add_argument("--name", required=True, help="implementation name (a Python identifier)")
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                   help="gpu: a CUDA kernel (.cu) and its CuPy wrapper; cpu: NumPy (default gpu)")
    p.add_argument("--dir", default=".", help="folder to write into (default: here)")
    p.set_defaults(func=cmd_new_impl)
