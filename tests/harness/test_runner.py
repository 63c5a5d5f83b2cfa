"""plan(): how op, pass, shape-set and implementation names become cases, and which mistakes are refused."""
import pytest

from harness import registry
from harness.context import current
from harness.errors import UsageError
from harness.runner import RunConfig, plan, run_cases


def _names(cases):
    return {(c.spec.name, c.pass_, i.name) for c in cases for i in c.impls}


def test_impls_of_several_ops_each_run_where_they_exist():
    # cupy_im2col_cublas is a conv2d implementation only; naming it beside maxpool2d must not be an error
    cases = plan(RunConfig(ops=["conv2d", "maxpool2d"], impls=["cupy_im2col_cublas", "cupy_opt"]))
    names = _names(cases)
    assert ("conv2d", "fprop", "cupy_im2col_cublas") in names
    assert ("maxpool2d", "fwd", "cupy_opt") in names
    assert not any(op == "maxpool2d" and name == "cupy_im2col_cublas" for op, _, name in names)
    assert {name for _, _, name in names} <= {"cupy_im2col_cublas", "cupy_opt"}


def test_a_name_no_selected_op_has_is_refused_with_the_choices():
    with pytest.raises(UsageError, match=r"unknown implementation 'nosuch'; valid: .*cupy_opt"):
        plan(RunConfig(ops=["conv2d", "maxpool2d"], impls=["cupy_opt", "nosuch"]))


def test_names_that_select_no_case_are_refused():
    # maxpool2d has the 'large' set and conv2d does not, so the conv2d-only name selects nothing
    with pytest.raises(UsageError, match="none of the implementations cupy_im2col_cublas runs"):
        plan(RunConfig(ops=["conv2d", "maxpool2d"], shape_set="large", impls=["cupy_im2col_cublas"]))


def test_the_run_context_reaches_implementations_and_ends_with_the_run(tmp_path, monkeypatch):
    seen = []

    def relu_that_looks(s, x, *, y):
        seen.append(current().autotune)
        y[...] = x.clip(min=0)
    registry.discover()
    monkeypatch.setitem(registry._REGISTRY, ("relu", "fwd", "zz_looks"),
                        registry.Impl("relu", "fwd", "zz_looks", relu_that_looks, "cpu", "fp32"))
    cfg = RunConfig(ops=["relu"], passes=["fwd"], impls=["numpy_ref", "zz_looks"], check_only=True, autotune=True)
    rows = run_cases(cfg, tmp_path / "run", printer=lambda *_: None)
    assert {r["status"] for r in rows} == {"pass", "oracle"}
    assert seen and all(seen)
    assert current().autotune is False
