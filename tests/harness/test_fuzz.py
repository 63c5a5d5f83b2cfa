"""Fuzzed shapes: random valid shapes of every op (sizes that are not tile multiples, 1-element dimensions) run the
CPU implementations against the float64 oracle; random invalid shape strings give one-line UsageErrors.

Bounded and reproducible for CI (derandomized, a fixed number of examples per op); the GPU implementations get the
same strategies in the gpu-marked test, with more examples, on the GPU test machine.
"""

from __future__ import annotations

import dataclasses

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (pip install .[dev])")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.errors import UsageError  # noqa: E402
from harness.ops import all_ops, get_op  # noqa: E402
from harness.registry import all_impls  # noqa: E402
from harness.spec import parse_shape, shape_str  # noqa: E402
from harness.testing import assert_matches_oracle  # noqa: E402

OPS = sorted(all_ops())
SMALL = {"pad": st.integers(0, 3), "stride": st.integers(1, 3), "dilation": st.integers(1, 3),
         "R": st.integers(1, 5), "S": st.integers(1, 5), "groups": st.sampled_from([1, 1, 2, 3])}


def _field(f: dataclasses.Field):
    key = f.name.removesuffix("_h").removesuffix("_w")  # stride_h, pad_w, ...: the range of their shorthand
    if key in SMALL:
        return SMALL[key]
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    kind = kind.removesuffix(" | None")
    return {"int": st.integers(1, 13), "bool": st.booleans(), "float": st.floats(1e-3, 1.0)}[kind]


def shapes(op: str):
    """Valid shapes of `op`: every field drawn from a small range (per-axis fields independently), impossible
    combinations discarded. Depthwise convolutions (groups = C = K) are drawn on purpose: a random draw hits them
    rarely."""
    shape_type = get_op(op).shape_type

    @st.composite
    def draw(d):
        values = {f.name: d(_field(f)) for f in dataclasses.fields(shape_type)}
        if "groups" in values and d(st.booleans()):
            values["groups"] = values["K"] = values["C"]
        elif "groups" in values:  # scale C and K so that the drawn groups divide them
            values["C"], values["K"] = (-(-values[k] // values["groups"]) * values["groups"] for k in ("C", "K"))
        try:
            return shape_type(**values)
        except UsageError:
            assume(False)
    return draw()


def _impls(op: str, device: str) -> list:
    return [i for i in all_impls() if i.op == op and i.device == device and i.family != "oracle"
            and i.unavailable_reason() is None]


def _fuzz(op: str, device: str, examples: int) -> None:
    """`examples` random valid shapes of `op`, each checked on every runnable implementation of `device`."""
    impls = _impls(op, device)
    if not impls:
        pytest.skip(f"no {device.upper()} implementation of {op} can run here")

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.filter_too_much])
    @given(shapes(op))
    def check(shape):
        for impl in impls:
            assert_matches_oracle(op, impl.pass_, impl.name, [shape], seeds=(0, 1, 2))

    check()


@pytest.mark.parametrize("op", OPS)
def test_random_valid_shapes_pass_on_the_cpu(op):
    _fuzz(op, "cpu", 12)


@pytest.mark.gpu
@pytest.mark.parametrize("op", OPS)
def test_random_valid_shapes_pass_on_the_gpu(op):
    _fuzz(op, "gpu", 40)


TEXT = st.text(alphabet="NCHWKRSMlrpadstrieubo=,-0123456789.x ", max_size=40)


@pytest.mark.parametrize("op", OPS)
def test_random_shape_strings_are_one_line_usage_errors_or_valid(op):
    shape_type = get_op(op).shape_type

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(TEXT)
    def check(text):
        try:
            shape = parse_shape(shape_type, text)
        except UsageError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
        assert parse_shape(shape_type, shape_str(shape)) == shape  # what parses is a real shape and round-trips

    check()
