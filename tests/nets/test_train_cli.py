"""`python -m harness train` and `train-bench` end to end (through harness/cli.py), on small CPU cases."""

from __future__ import annotations

import csv

import pytest

from harness import registry
from harness.cli import main


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_csv_plot_and_meta(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "lenet", "--epochs", "2", "--train-size", "256", "--test-size", "64",
                 "--out", str(out), "--no-progress", "--lr", "0.05"])
    assert code == 0
    text = capsys.readouterr().out
    assert "conv2d: fprop=numpy_opt dgrad=numpy_opt wgrad=numpy_opt" in text
    rows = _rows(out / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert all(0 <= float(r["test_acc"]) <= 1 and float(r["images_per_s"]) > 0 for r in rows)
    assert (out / "history.png").stat().st_size > 1000 and (out / "meta.json").is_file()


def test_train_synthetic_any_size(tmp_path):
    out = tmp_path / "syn"
    assert main(["train", "--model", "mlp2-bce", "--dataset", "synthetic", "--synthetic-shape", "3x5x7",
                 "--synthetic-count", "200", "--epochs", "3", "--hidden", "16,8", "--out", str(out),
                 "--no-progress"]) == 0
    rows = _rows(out / "history.csv")
    assert float(rows[-1]["train_acc"]) > float(rows[0]["train_acc"])


@pytest.mark.parametrize(("argv", "problem"), [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--backend", "cudnn9"], "unknown backend 'cudnn9'"),
    (["--dataset", "mnist"], "needs --data-dir"),
    (["--use", "gemm"], "expected OP=IMPLEMENTATION"),
    (["--synthetic-shape", "3x5", "--dataset", "synthetic"], "expected CxHxW"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--resume", "/nonexistent/ck.npz"], "/nonexistent/ck.npz: checkpoint file does not exist"),
    (["--gpus", "2", "--bucket-mb", "0"], "--bucket-mb must be > 0 and --nccl-channels >= 1"),
    (["--gpus", "2", "--nccl-channels", "0"], "--bucket-mb must be > 0 and --nccl-channels >= 1"),
    (["--gpus", "2", "--timeout", "0"], "--timeout: must be > 0"),
])
def test_train_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, problem):
    code = main(["train", "--epochs", "1", "--out", str(tmp_path / "x"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert problem in err and err.count("\n") == 1, err


def test_train_bench_table(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["train-bench", "--models", "thesis-0", "--backends", "numpy_ref,numpy_opt,cudnn", "--steps", "3",
                 "--warmup", "1", "--out", str(out), "--accuracy-epochs", "1"])
    assert code == 0
    rows = {r["backend"]: r for r in _rows(out / "train_bench.csv")}
    assert set(rows) == {"numpy_ref", "numpy_opt", "cudnn", "pytorch-eager", "pytorch-graph"}
    assert rows["pytorch-graph"]["status"] == "ok" or rows["pytorch-graph"]["reason"]  # no CUDA: skipped, why
    assert rows["numpy_ref"]["status"] == "ok" and float(rows["numpy_ref"]["speedup_vs_oracle"]) == 1.0
    ok = rows["numpy_opt"]
    assert ok["status"] == "ok" and int(ok["steps"]) == 3
    assert abs(float(ok["images_per_s"]) * float(ok["ms_per_step"]) / 1e3 - 32) < 1e-6
    assert 0 < float(ok["test_acc"]) <= 1
    if rows["cudnn"]["status"] != "ok":
        assert rows["cudnn"]["reason"]
    assert (out / "train_bench.png").stat().st_size > 1000
    assert "thesis-0  numpy_opt" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "problem"), [
    (["--rounds", "0"], "--rounds: must be >= 1"),
    (["--nccl-channels", "-1"], "--bucket-mb must be > 0 and --nccl-channels >= 1"),
    (["--backends", "cudnn,cupy_opt"], "times one backend"),
    (["--gpus", "1,x"], "bad --gpus '1,x'"),
])
def test_train_bench_gpus_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, problem):
    code = main(["train-bench", "--gpus", "1,2", "--models", "vgg-small", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert problem in err and err.count("\n") == 1, err


def test_train_bench_unknown_peer_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train-bench", "--models", "thesis-0", "--peers", "eager,jax", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown --peers value 'jax'" in err and "compile, eager, graph" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()  # refused before any work


def test_train_bench_fuse_on_and_off_are_rows_of_one_table(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["train-bench", "--models", "thesis-0", "--backends", "numpy_opt", "--fuse", "on,off", "--steps", "3",
                 "--warmup", "1", "--no-peer", "--use", "maxpool2d_relu=numpy_ref", "--accuracy-epochs", "1",
                 "--out", str(out)])
    assert code == 0
    rows = {r["fuse"]: r for r in _rows(out / "train_bench.csv")}
    assert set(rows) == {"on", "off"} and all(r["status"] == "ok" for r in rows.values())
    assert all(0 < float(r["test_acc"]) <= 1 for r in rows.values())  # the accuracy runs take the override too
    assert "maxpool2d_relu: fwd=numpy_ref (override)" in rows["on"]["implementations"]  # the override where it applies
    assert "maxpool2d_relu" not in rows["off"]["implementations"] and "relu: fwd=numpy_opt" in rows["off"][
        "implementations"]
    assert "numpy_opt unfused" in capsys.readouterr().out


def test_train_bench_bad_fuse_value_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train-bench", "--models", "thesis-0", "--fuse", "on,maybe", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown --fuse value 'maybe'" in err and err.count("\n") == 1


def test_train_bench_compile_peer_is_a_row_on_request(tmp_path):
    out = tmp_path / "bench"
    assert main(["train-bench", "--models", "thesis-0", "--backends", "numpy_opt", "--steps", "3", "--warmup", "1",
                 "--peers", "compile", "--out", str(out)]) == 0
    rows = {r["backend"]: r for r in _rows(out / "train_bench.csv")}
    assert set(rows) == {"numpy_opt", "pytorch-compile"}
    compiled = rows["pytorch-compile"]
    assert compiled["status"] == "ok" or "CUDA" in compiled["reason"] or "torch not installed" in compiled["reason"]


def test_old_names_still_run_with_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "_noted", set())  # the note is printed once per process
    # cupy_tiled/numpy_im2col became cupy_opt/numpy_opt and train's --impl became --use: kept for one release
    out = tmp_path / "old"
    assert main(["train", "--model", "mlp1", "--epochs", "1", "--train-size", "64", "--test-size", "32",
                 "--backend", "numpy_im2col", "--impl", "gemm=numpy_ref", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "'numpy_im2col' is now 'numpy_opt'" in err and "--impl OP=NAME is now --use" in err
    meta = (out / "meta.json").read_text()
    assert '"gemm/fwd": "numpy_ref"' in meta and '"relu/fwd": "numpy_opt"' in meta
