"""Nothing is lost and the tool starts fast: run folders are not overwritten, an --out that cannot work is refused
before any work, a results table cut off mid-row is read without its half row, and --help does not load seaborn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_run

ROOT = Path(__file__).resolve().parents[2]
RUN = ["run", "--op", "relu", "--pass", "fwd", "--impl", "numpy_ref,numpy_opt", "--check-only", "--no-report"]


def test_an_existing_run_is_not_replaced_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    rows = (out / "results.csv").read_text()
    assert main([*RUN, "--shape", "N=1,C=1", "--out", str(out)]) == 2
    assert "holds a run already (results.csv)" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == rows  # untouched
    assert main([*RUN, "--shape", "N=1,C=1", "--out", str(out), "--force"]) == 0
    assert (out / "results.csv").read_text() != rows


@pytest.mark.parametrize("out, problem", [("file", "is a file, not a folder"),
                                          ("file/sub", "cannot create or write a folder under"),
                                          ("/proc/x", "cannot create or write a folder under /proc")])
def test_an_out_that_cannot_work_is_one_line_and_exit_2(tmp_path, capsys, out, problem):
    (tmp_path / "file").write_text("not a folder")
    path = out if out.startswith("/") else str(tmp_path / out)
    for argv in (RUN, ["train", "--epochs", "1", "--no-progress"]):
        assert main([*argv, "--out", path]) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err


def test_a_row_cut_off_mid_write_is_left_out_and_said(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    csv = out / "results.csv"
    full = len(load_run(out)[0])
    text = csv.read_text()
    csv.write_text(text[: text.rstrip("\n").rfind("\n") + 12])  # the last row, cut after a few characters
    df, _ = load_run(out)
    assert len(df) == full - 1
    assert "last line was cut off" in capsys.readouterr().err


def test_help_does_not_import_the_plotting_libraries():
    code = "import sys; from harness.cli import build_parser; build_parser(); print('seaborn' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("argv, problem", [
    (["run", "--op", "relu", "--budget", "nan"], "--budget: must be a finite number"),
    (["run", "--op", "relu", "--budget", "inf"], "--budget: must be a finite number"),
    (["run", "--op", "relu", "--budget", "0"], "--budget: must be > 0"),
    (["run", "--op", "relu", "--rel-iqr", "-1"], "--rel-iqr: must be > 0"),
    (["run", "--op", "relu", "--cpu-max-gflop", "-1"], "--cpu-max-gflop: must be >= 0"),
    (["run", "--op", "relu", "--seeds", "abc"], "--seeds: expected a whole number, got 'abc'"),
    (["run", "--op", "relu", "--baseline", "nope"], "unknown --baseline 'nope'"),
    (["run", "--op", "conv2d", "--pass", "fprop,fprop"], "fprop given twice"),
    (["run", "--op", "relu", "--shapes", "edge", "--shape", "N=1,C=1"], "give one"),
    (["run", "--op", "relu", "--shape", "N=1,N=2,C=1"], "shape key N is given twice"),
    (["run", "--op", "gemm", "--shape", "M=1,N=1,K=1,bias=2"], "bad value '2' for shape key bias"),
    (["compare", "a", "b", "--threshold", "nan"], "--threshold: must be a finite number"),
    (["train-bench", "--warmup", "-1"], "--warmup: must be >= 0"),
    (["train-bench", "--max-seconds", "-1"], "--max-seconds: must be > 0"),
    (["train-bench", "--backends", "nope"], "unknown backend 'nope'"),
    (["train", "--seed", "-1"], "--seed: must be >= 0"),
])
def test_bad_numbers_names_and_conflicts_are_one_line_and_exit_2(tmp_path, capsys, argv, problem):
    code = main([*argv, "--out", str(tmp_path / "x")] if argv[0] != "compare" else argv)
    err = capsys.readouterr().err
    assert code == 2 and problem in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


def test_a_closed_pipe_ends_quietly():
    r = subprocess.run(f"{sys.executable} -m harness list | head -1", shell=True, capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.stdout.count("\n") == 1 and "Traceback" not in r.stderr and "Error" not in r.stderr, r.stderr


SLOW = '''
import time
from harness import register


@register("relu", "fwd", name="zz_slow", device="cpu", math="fp32")
def slow(s, x, *, y):
    """y = max(x, 0), slowly."""
    time.sleep(0.3)
    y[...] = x.clip(min=0)
'''


def test_sigterm_keeps_the_rows_names_the_folder_and_builds_the_report(tmp_path):
    import signal
    import time

    (tmp_path / "slow.py").write_text(SLOW)
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", "--op", "relu", "--pass", "fwd", "--plugin",
                          "slow.py", "--impl", "numpy_ref,zz_slow", "--check-only", "--out", "run"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    csv = tmp_path / "run" / "results.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or csv.read_text().count("\n") < 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert f"rows measured so far are in {Path('run') / 'results.csv'}" in err
    assert (tmp_path / "run" / "report.html").exists()
    assert len(load_run(tmp_path / "run")[0]) >= 2


@pytest.mark.parametrize("content, meta, problem", [
    (bytes(range(256)) * 4, None, "not a results table"),
    (b"a,b\n1,2\n", None, "no column op, pass, impl, shape, status"),
    (None, b"{corrupt", "meta.json: damaged"),
])
def test_damaged_run_folders_are_one_line_in_report_and_compare(tmp_path, capsys, content, meta, problem):
    good = tmp_path / "good"
    assert main([*RUN, "--out", str(good)]) == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.csv").write_bytes(content if content is not None else (good / "results.csv").read_bytes())
    if meta is not None:
        (bad / "meta.json").write_bytes(meta)
    capsys.readouterr()
    for argv in (["report", str(bad)], ["compare", str(bad), str(good)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, problem", [
    (["--save", "/proc/x.ckpt"], "--save /proc/x.ckpt: cannot write a file in /proc"),
    (["--save", "."], "is a folder; give a file name"),
    (["--model", "mlp1", "--use", "conv2d=nope"], "this network has no conv2d"),
    (["--gpus", "0"], "--gpus: must be >= 1"),
])
def test_training_refuses_before_the_first_epoch(tmp_path, capsys, argv, problem):
    out = tmp_path / "t"
    assert main(["train", "--epochs", "1", "--no-progress", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1, err
    assert not (out / "history.csv").exists()  # nothing trained


def test_resume_keeps_the_rows_and_runs_only_the_missing_cases(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", "--op", "relu", "--pass", "fwd", "--check-only", "--no-report", "--out", str(out)]
    assert main([*base, "--impl", "numpy_ref"]) == 0
    first = load_run(out)[0]
    csv = out / "results.csv"
    csv.write_text(csv.read_text()[:-5])  # killed while writing its last row
    capsys.readouterr()
    assert main([*base, "--impl", "numpy_ref,numpy_opt", "--resume"]) == 0
    assert "rows kept" in capsys.readouterr().out
    df = load_run(out)[0]
    assert not df.duplicated(["op", "pass", "impl", "shape"]).any()
    assert set(df.impl) == {"numpy_ref", "numpy_opt"}
    assert (df.impl == "numpy_ref").sum() == len(first)  # the cut row was run again, the others kept
    assert set(df.status) == {"pass", "oracle"}


@pytest.fixture
def other_relu():
    """A second CPU relu that is always available (torch_cpu needs PyTorch), registered for one test."""
    from harness.registry import register, unregister

    @register("relu", "fwd", name="zz_other_relu", device="cpu", math="fp32")
    def other(s, x, *, y):
        """y = max(x, 0)."""
        y[...] = x.clip(min=0)
    yield "zz_other_relu"
    unregister("relu", "fwd", "zz_other_relu")


def test_resume_with_other_impls_takes_speedups_from_the_kept_baseline(tmp_path, other_relu):
    out = tmp_path / "run"
    base = ["run", "--op", "relu", "--pass", "fwd", "--shapes", "smoke", "--budget", "0.01", "--no-report",
            "--out", str(out)]
    assert main([*base, "--impl", "numpy_opt"]) == 0  # the CPU baseline of relu, timed first
    assert main([*base, "--impl", other_relu, "--resume"]) == 0  # then another implementation alone
    df = load_run(out)[0]
    new = df[df.impl == other_relu]
    assert len(new) and (new.baseline == "numpy_opt").all()
    base_ms = df[df.impl == "numpy_opt"].set_index("shape").median_ms
    for _, r in new.iterrows():
        assert r.speedup == pytest.approx(base_ms[r["shape"]] / r.median_ms)


def test_resume_needs_out(capsys):
    assert main(["run", "--op", "relu", "--resume"]) == 2
    assert "--resume goes on with the run in --out" in capsys.readouterr().err
