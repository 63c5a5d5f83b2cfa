"""The command line: one-line errors with exit code 2, and runs that write their results."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness import registry
from harness.cli import main
from harness.ops import all_ops
from harness.results import load_run


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, needle", [
    (["run", "--op", "conv2d", "--impl", "nosuch"], "unknown implementation 'nosuch'; valid: "),
    (["run", "--op", "nosuch"], "unknown op 'nosuch'; valid: conv2d, conv2d_bias_relu, gemm"),
    (["run", "--op", "conv2d", "--pass", "backward"], "unknown pass of conv2d 'backward'; valid: dgrad, fprop, wgrad"),
    (["run", "--op", "conv2d", "--shapes", "huge"], "unknown shape set for conv2d 'huge'; valid: deepbench, depthwise, "
     "dilated, edge"),
    (["run", "--op", "conv2d", "--shape", "N=1,C=1,H=3,W=3,K=1,R=7,S=7,pad=0"], "larger than the padded input"),
    (["run", "--op", "gemm", "--shape", "M=0,N=1,K=1"], "M must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    if "--impl" in args:
        assert "numpy_opt" in lines[0] and "numpy_ref" in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # nothing created before the input is known to be valid


def test_run_conv2d_smoke_passes_both_cpu_implementations(tmp_path):
    out = tmp_path / "run"
    r = run_cli("run", "--op", "conv2d", "--shapes", "smoke", "--out", str(out), "--budget", "0.05", "--no-report")
    assert r.returncode == 0, r.stdout + r.stderr
    df = pd.read_csv(out / "results.csv")
    cpu = df[df.impl.isin(["numpy_ref", "numpy_opt"])]
    assert set(cpu["pass"]) == {"fprop", "dgrad", "wgrad"}
    assert set(cpu[cpu.impl == "numpy_opt"].status) == {"pass"}
    assert set(cpu[cpu.impl == "numpy_ref"].status) == {"oracle"}
    assert (cpu.median_ms > 0).all() and (cpu.seeds >= 3).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"].startswith("python -m harness run --op conv2d")
    assert meta["ceilings"]["cpu"]["copy_gbps"] > 0
    gpu = df[df.device == "gpu"]
    assert (gpu.status == "skipped").all() and gpu.reason.notna().all()


def test_every_op_passes_on_cpu_check_only(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--op", "all", "--shapes", "smoke", "--check-only", "--out", str(out), "--no-report"]) == 0
    df = pd.read_csv(out / "results.csv")
    numpy = df[df.impl.isin(["numpy_ref", "numpy_opt"])]
    assert set(numpy.status) == {"pass", "oracle"}
    assert set(numpy.op) == set(all_ops())  # every op ran on the CPU
    assert not df.status.isin(["fail", "nan", "error", "bad-shape", "bad-dtype"]).any()


def test_a_raising_implementation_is_an_error_row_and_the_run_goes_on(tmp_path, monkeypatch):
    registry.discover()

    def boom(s, x, w, b, *, y):
        raise RuntimeError("kernel launch failed")
    monkeypatch.setitem(registry._REGISTRY, ("conv2d", "fprop", "zz_boom"),
                        registry.Impl("conv2d", "fprop", "zz_boom", boom, "cpu", "fp32"))
    out = tmp_path / "run"
    code = main(["run", "--op", "conv2d", "--pass", "fprop", "--impl", "numpy_ref,zz_boom,numpy_opt",
                 "--check-only", "--out", str(out), "--no-report"])
    assert code == 1
    df = pd.read_csv(out / "results.csv")
    assert set(df[df.impl == "zz_boom"].status) == {"error"}
    assert df[df.impl == "zz_boom"].reason.str.contains("kernel launch failed").all()
    assert set(df[df.impl == "numpy_opt"].status) == {"pass"}


def test_list_shows_unavailable_reasons(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "numpy_ref" in text and "numpy_opt" in text


def test_a_failing_baseline_is_not_replaced_by_the_fallback(tmp_path, monkeypatch):
    """Speedups are against the op's baseline only; where it runs but fails a case, that case has none."""
    registry.discover()

    def wrong(s, x, w, b, *, y):
        y[...] = 0
    for name in ("cudnn", "cudnn_tf32"):
        monkeypatch.setitem(registry._REGISTRY, ("conv2d", "fprop", name),
                            registry.Impl("conv2d", "fprop", name, wrong, "cpu", "fp32"))
    out = tmp_path / "run"
    main(["run", "--op", "conv2d", "--pass", "fprop", "--impl", "numpy_ref,numpy_opt,cudnn",
          "--out", str(out), "--no-report", "--budget", "0.02"])
    df = pd.read_csv(out / "results.csv")
    assert set(df[df.impl == "cudnn"].status) == {"fail"}
    assert df[df.impl == "numpy_opt"].speedup.isna().all()


def test_ops_without_a_cudnn_routine_say_so(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--op", "sgd,sigmoid_bce", "--impl", "numpy_ref,cudnn", "--check-only", "--out", str(out),
                 "--no-report"]) == 0
    df = pd.read_csv(out / "results.csv")
    cudnn = df[df.impl == "cudnn"]
    assert len(cudnn) > 0 and (cudnn.status == "skipped").all()
    assert cudnn.reason.str.startswith("no cuDNN equivalent").all()


def test_old_implementation_names_run_and_old_runs_load_with_new_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "_noted", set())  # the note is printed once per process
    out = tmp_path / "run"
    assert main(["run", "--op", "relu", "--impl", "numpy_ref,numpy_im2col", "--check-only", "--out", str(out),
                 "--no-report"]) == 0
    assert "'numpy_im2col' is now 'numpy_opt'" in capsys.readouterr().err
    df = pd.read_csv(out / "results.csv")
    assert set(df.impl) == {"numpy_ref", "numpy_opt"}
    df.assign(impl=df.impl.replace({"numpy_opt": "numpy_im2col"})).to_csv(out / "results.csv", index=False)
    assert set(load_run(out)[0].impl) == {"numpy_ref", "numpy_opt"}  # a run folder written before the rename
