"""GPU softmax_xent and sigmoid_bce (impls/losses_cuda.py) against the float64 oracle; alignment; determinism."""

import numpy as np
import pytest

from harness.measure.check import compare, tolerance
from harness.ops import get_op
from harness.ops.sigmoid_bce import BceShape
from harness.ops.softmax_xent import XentShape
from harness.registry import get
from harness.testing import assert_matches_oracle

pytestmark = pytest.mark.gpu

IMPLS = ("cupy_naive", "cupy_opt")
# rows cached in registers up to K = 1024, re-read beyond; K % 4 != 0 misaligns every other row
XENT_PATHS = [XentShape(64, 1024), XentShape(9, 1025), XentShape(5, 1021), XentShape(300, 7), XentShape(3, 2051)]


@pytest.mark.parametrize(("pass_", "impl"), [(p, i) for p in ("fwd", "bwd") for i in IMPLS] + [("fused", "cupy_opt")])
@pytest.mark.parametrize("shape", XENT_PATHS, ids=str)
def test_xent_row_paths_match_the_oracle(shape, pass_, impl):
    assert_matches_oracle("softmax_xent", pass_, impl, [shape])


def _view(cupy, a: np.ndarray, offset: int):
    """`a` on the GPU (float32 unless int32), starting `offset` elements past an aligned allocation."""
    dtype = np.int32 if a.dtype == np.int32 else np.float32
    buf = cupy.zeros(a.size + offset, dtype=dtype)
    view = buf[offset:].reshape(a.shape)
    view[...] = cupy.asarray(a.astype(dtype))
    return view


@pytest.mark.parametrize(("op", "shape"), [("softmax_xent", XentShape(37, 1000)), ("softmax_xent", XentShape(19, 2050)),
                                           ("sigmoid_bce", BceShape(1029))], ids=str)
@pytest.mark.parametrize("offsets", [(1, 1), (2, 0), (0, 3)], ids=lambda o: f"in{o[0]}-out{o[1]}")
def test_opt_any_alignment(op, shape, offsets):
    """Logits (and targets) and the gradient at offset views: shared and mismatched alignments."""
    import cupy

    spec = get_op(op)
    for pass_, ps in spec.passes.items():
        host = spec.make_inputs(shape, pass_, seed=5)
        ref = {k: np.empty(t.shape) for k, t in ps.outputs(shape).items()}
        get(op, pass_, "numpy_ref").fn(shape, **host, **ref)
        inputs = {k: _view(cupy, v, offsets[0]) for k, v in host.items()}
        outs = {name: _view(cupy, np.full(r.shape, np.nan), offsets[1]) for name, r in ref.items()}
        get(op, pass_, "cupy_opt").fn(shape, **inputs, **outs)
        for name, out in outs.items():  # the fused pass has two outputs
            rtol = tolerance("fp32", ps.reduction(shape)[name], ps.transcendental)
            c = compare(out.get(), ref[name], rtol, np.float32)
            assert c.status == "pass", f"{pass_} {name}: {c.reason}"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("op", "shape"), [("softmax_xent", XentShape(4099, 1000)),
                                           ("sigmoid_bce", BceShape(10**6 + 3))], ids=["softmax_xent", "sigmoid_bce"])
def test_mean_loss_is_bitwise_reproducible(op, shape, impl):
    """The two-stage reduction has a fixed order: three runs on the same inputs give the same bits."""
    import cupy

    host = get_op(op).make_inputs(shape, "fwd", seed=9)
    inputs = {k: _view(cupy, v, 0) for k, v in host.items()}
    losses = []
    for _ in range(3):
        loss = cupy.full((), np.nan, dtype=cupy.float32)
        get(op, "fwd", impl).fn(shape, **inputs, loss=loss)
        losses.append(float(loss.get()))
    assert np.isfinite(losses[0])
    assert losses[0] == losses[1] == losses[2]


def test_fused_loss_is_bitwise_reproducible_and_resets_its_counter():
    """The last-block mean sums the blocks' partials in index order whichever block ends last, and leaves its
    per-stream ticket at zero: five launches give the same bits, on two streams as on one."""
    import cupy

    shape = XentShape(4099, 1000)
    host = get_op("softmax_xent").make_inputs(shape, "fused", seed=9)
    inputs = {k: _view(cupy, v, 0) for k, v in host.items()}
    ref = {"loss": np.empty(()), "dlogits": np.empty((shape.N, shape.K))}
    get("softmax_xent", "fused", "numpy_ref").fn(shape, **host, **ref)
    losses = []
    for stream in (cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)):
        with stream:
            for _ in range(5):
                loss, g = cupy.full((), np.nan, dtype=cupy.float32), cupy.full(ref["dlogits"].shape, np.nan,
                                                                               dtype=cupy.float32)
                get("softmax_xent", "fused", "cupy_opt").fn(shape, **inputs, loss=loss, dlogits=g)
                losses.append(float(loss.get()))
        stream.synchronize()
    assert len(set(losses)) == 1
    rtol = tolerance("fp32", shape.N + shape.K, True)  # the pass's reduction length, as the checker derives it
    assert compare(np.float32(losses[0]), ref["loss"], rtol, np.float32).status == "pass"
