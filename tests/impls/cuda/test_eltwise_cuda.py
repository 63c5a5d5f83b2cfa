"""GPU relu, sigmoid and sgd (impls/eltwise_cuda.py) against the float64 oracle; any alignment; 64-bit indices."""

import numpy as np
import pytest

from harness.measure.check import compare, tolerance
from harness.ops import get_op
from harness.ops._eltwise import TensorShape
from harness.registry import get

pytestmark = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt")


def _views(cupy, host: np.ndarray, offset: int):
    """`host` as float32 on the GPU starting `offset` elements past a 256-byte-aligned allocation."""
    buf = cupy.full(host.size + offset, np.nan, dtype=cupy.float32)
    view = buf[offset:]
    view[...] = cupy.asarray(host.astype(np.float32))
    return view


# (offset of the first input, of the second input, of the output): shared alignment with a scalar head, and
# mismatched alignments (the all-scalar path)
OFFSETS = [(1, 1, 1), (3, 3, 3), (0, 1, 2), (2, 0, 0)]


@pytest.mark.parametrize("offsets", OFFSETS, ids=lambda o: "-".join(map(str, o)))
@pytest.mark.parametrize("n", [1, 5, 1031, 4099])
@pytest.mark.parametrize(("op", "pass_"), [("relu", "fwd"), ("relu", "bwd"), ("sigmoid", "fwd"), ("sigmoid", "bwd")])
def test_opt_any_alignment(op, pass_, n, offsets):
    """Offset views: every element written once and right, whatever the head / body / tail split."""
    import cupy

    spec, shape = get_op(op), TensorShape(1, 1, 1, n)
    host = spec.make_inputs(shape, pass_, seed=n)
    ps = spec.pass_spec(pass_)
    ref = {k: np.empty(t.shape) for k, t in ps.outputs(shape).items()}
    get(op, pass_, "numpy_ref").fn(shape, **host, **ref)
    inputs = {k: _views(cupy, v.ravel(), off).reshape(v.shape)
              for (k, v), off in zip(host.items(), offsets[:len(host)], strict=True)}
    [(out_name, out_ref)] = ref.items()
    out = _views(cupy, np.full(n, np.nan), offsets[-1]).reshape(out_ref.shape)
    get(op, pass_, "cupy_opt").fn(shape, **inputs, **{out_name: out})
    c = compare(out.get(), out_ref, tolerance("fp32", 1, ps.transcendental), np.float32)
    assert c.status == "pass", c.reason


@pytest.mark.parametrize("offsets", [(1, 1), (0, 3)], ids=["shared", "mismatched"])
def test_sgd_opt_updates_a_misaligned_w_in_place(offsets):
    import cupy

    from harness.ops.sgd import SgdShape

    s = SgdShape(1029, lr=0.25)
    rng = np.random.default_rng(7)
    w0, dw = rng.uniform(-1, 1, s.N), rng.uniform(-1, 1, s.N)
    w = _views(cupy, w0, offsets[0])
    get("sgd", "update", "cupy_opt").fn(s, dw=_views(cupy, dw, offsets[1]), w=w)
    ref = w0.astype(np.float32).astype(np.float64) - s.lr * dw.astype(np.float32).astype(np.float64)
    c = compare(w.get(), ref, tolerance("fp32", 1), np.float32)
    assert c.status == "pass", c.reason


@pytest.mark.parametrize("impl", IMPLS)
def test_relu_past_2_31_elements(impl):
    """n > 2^31 elements (8 GiB per tensor): indices past the int32 range must read and write the right places."""
    import cupy

    n = 2**31 + 77
    if cupy.cuda.Device().mem_info[0] < 30 * 2**30:
        pytest.skip("needs 30 GiB of free GPU memory")
    x = cupy.random.RandomState(3).standard_normal(n, dtype=cupy.float32)
    y = cupy.full(n, np.nan, dtype=cupy.float32)
    get("relu", "fwd", impl).fn(TensorShape(n, 1), x=x, y=y)
    tail = slice(n - 4096, n)
    assert bool((y[tail] == cupy.maximum(x[tail], 0)).all())
    assert bool((y == cupy.maximum(x, 0)).all())
    del x, y
    cupy.get_default_memory_pool().free_all_blocks()
