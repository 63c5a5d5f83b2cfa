"""compare: a planted 2x slowdown is flagged (exit 1); a run against itself is quiet (exit 0); changes within the
runs' spread are noise; --threshold decides the exit code; a case that stops passing fails the comparison."""

from __future__ import annotations

import pandas as pd
import pytest
from fake_runs import gpu_like_rows, write_run

from harness.cli import main
from harness.report.compare import compare_runs
from harness.results import load_run

CASE = {"op": "conv2d", "pass": "fprop", "impl": "cupy_opt"}


def _variant(tmp_path, name: str, change) -> tuple:
    """Run A (the fixture) and run B (the fixture with `change` applied to the first CASE row)."""
    a = write_run(tmp_path / "a", gpu_like_rows())
    rows = gpu_like_rows()
    target = next(r for r in rows if all(r[k] == v for k, v in CASE.items()))
    change(target)
    return a, write_run(tmp_path / name, rows), target["shape"]


def _verdicts(a, b) -> pd.DataFrame:
    return compare_runs(load_run(a)[0], load_run(b)[0])


def _slower(factor: float):
    def change(row):  # a real slowdown moves the fastest call as well as the median
        row["median_ms"] *= factor
        row["min_ms"] *= factor
    return change


def test_planted_2x_slowdown_is_flagged(tmp_path, capsys):
    a, b, shape = _variant(tmp_path, "b", _slower(2.0))
    table = _verdicts(a, b)
    hit = table[(table["impl"] == "cupy_opt") & (table["pass"] == "fprop") & (table["shape"] == shape)
                & (table["op"] == "conv2d")]
    assert hit["verdict"].tolist() == ["regression"] and hit["ratio"].iloc[0] == pytest.approx(2.0)
    assert (table["verdict"] == "regression").sum() == 1
    # the fixture's own failures stay failing; its CPU cases under 0.1 ms are not judged
    assert set(table["verdict"]) == {"regression", "same", "failing", "short"}
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr()
    assert "regression !" in out.out and "FAIL" in out.err


def test_a_run_against_itself_is_quiet(tmp_path, capsys):
    a = write_run(tmp_path / "a", gpu_like_rows())
    table = _verdicts(a, a)
    timed = table[table["verdict"] != "failing"]
    assert set(timed["verdict"]) == {"same", "short"} and (timed["ratio"] == 1.0).all()
    assert set(table.loc[table["verdict"] == "failing", "a_status"]) == {"fail", "error"}
    assert main(["compare", str(a), str(a)]) == 0
    assert "FAIL" not in capsys.readouterr().err


def test_a_2x_speedup_is_an_improvement_and_passes(tmp_path):
    a, b, _ = _variant(tmp_path, "b", _slower(0.5))
    assert (_verdicts(a, b)["verdict"] == "improvement").sum() == 1
    assert main(["compare", str(a), str(b)]) == 0


def test_a_change_within_the_spread_is_noise(tmp_path):
    def noisy_and_slower(row):
        row["median_ms"] *= 1.15
        row["min_ms"] *= 1.15
        row["rel_iqr"] = 0.2  # A's 0.02 + B's 0.2: a 15 % change is inside the spread
    a, b, _ = _variant(tmp_path, "b", noisy_and_slower)
    assert set(_verdicts(a, b)["verdict"]) == {"same", "failing", "short"}
    assert main(["compare", str(a), str(b)]) == 0


def test_threshold_decides_the_exit_code(tmp_path):
    a, b, _ = _variant(tmp_path, "b", _slower(1.3))
    assert (_verdicts(a, b)["verdict"] == "regression").sum() == 1
    assert main(["compare", str(a), str(b)]) == 1
    assert main(["compare", str(a), str(b), "--threshold", "1.5"]) == 0
    assert main(["compare", str(a), str(b), "--threshold", "0.5"]) == 2


def test_a_case_that_stops_passing_fails_the_comparison(tmp_path):
    def broken(row):
        row.update(status="fail", reason="rel err 1e-2", median_ms="", rel_iqr="")
    a, b, _ = _variant(tmp_path, "b", broken)
    table = _verdicts(a, b)
    assert table["verdict"].tolist().count("broken") == 1
    assert main(["compare", str(a), str(b)]) == 1


def test_cases_skipped_in_both_runs_are_left_out(tmp_path):
    a = write_run(tmp_path / "a", gpu_like_rows())
    table = _verdicts(a, a)
    assert not ((table["a_status"] == "skipped") & (table["b_status"] == "skipped")).any()


def test_missing_run_folder_is_a_usage_error(tmp_path, capsys):
    a = write_run(tmp_path / "a", gpu_like_rows(n_shapes=1))
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def test_two_real_back_to_back_cpu_runs_of_the_same_code_are_quiet(tmp_path, capsys):
    args = ["run", "--op", "conv2d", "--impl", "numpy_ref,numpy_opt", "--shapes", "edge", "--budget", "0.05",
            "--no-report"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    code = main(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    table = compare_runs(load_run(tmp_path / "a")[0], load_run(tmp_path / "b")[0])
    assert (table["verdict"] == "same").sum() >= 5  # judged, not only too short to judge


def test_a_slow_mode_whose_fastest_calls_did_not_move_is_not_a_regression(tmp_path):
    def slow_mode(row):  # e.g. BLAS threads competing for a shared CPU during one whole run
        row["median_ms"] *= 2.0
    a, b, _ = _variant(tmp_path, "b", slow_mode)
    assert "regression" not in set(_verdicts(a, b)["verdict"])
    assert main(["compare", str(a), str(b)]) == 0


CPU_CASE = {"op": "conv2d", "pass": "fprop", "impl": "numpy_ref"}


def _cpu_variant(tmp_path, factor: float, host: float, wait: float = 0.003) -> pd.DataFrame:
    """Verdicts when run B's first CPU_CASE row is `factor` times slower, its host reference `host` times, and its
    threads waited for a CPU `wait` of the time."""
    a = write_run(tmp_path / "a", gpu_like_rows())
    rows = gpu_like_rows()
    target = next(r for r in rows if all(r[k] == v for k, v in CPU_CASE.items()))
    _slower(factor)(target)
    target["host_ref_ms"] *= host
    target["host_wait"] = wait
    table = _verdicts(a, write_run(tmp_path / "b", rows))
    return table[(table["shape"] == target["shape"]) & (table[list(CPU_CASE)] == pd.Series(CPU_CASE)).all(axis=1)]


def test_a_cpu_case_timed_in_a_slow_stretch_of_the_host_is_not_a_regression(tmp_path):
    # 1.3x slower, median and fastest call, and the host reference timed beside it 1.3x slower too: the host
    hit = _cpu_variant(tmp_path, 1.3, host=1.3)
    assert hit["verdict"].tolist() == ["same"]
    assert hit["ratio"].iloc[0] == pytest.approx(1.0) and hit["host"].iloc[0] == pytest.approx(1.3)
    # a machine that ran 2x slower in one run is not a basis for a verdict on its CPU cases either way
    assert _cpu_variant(tmp_path / "x", 2.0, host=2.0)["verdict"].tolist() == ["disturbed"]
    assert _cpu_variant(tmp_path / "y", 1.0, host=0.5)["verdict"].tolist() == ["disturbed"]


def test_a_cpu_slowdown_the_host_reference_did_not_see_is_a_regression(tmp_path):
    hit = _cpu_variant(tmp_path, 2.0, host=1.0)
    assert hit["verdict"].tolist() == ["regression"] and hit["ratio"].iloc[0] == pytest.approx(2.0)
    # and a slowdown larger than the host's is judged on what remains after dividing by it
    hit = _cpu_variant(tmp_path / "x", 4.0, host=1.25)
    assert hit["verdict"].tolist() == ["regression"] and hit["ratio"].iloc[0] == pytest.approx(3.2)


def test_a_cpu_case_timed_while_another_program_held_a_core_is_not_judged(tmp_path, capsys):
    # what a busy loop beside a 2-core run did to numpy_opt's threaded BLAS: 14x, the host reference far less
    hit = _cpu_variant(tmp_path, 14.0, host=1.2, wait=0.55)
    assert hit["verdict"].tolist() == ["disturbed"]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "1 disturbed" in capsys.readouterr().out
    # the same slowdown with the threads never kept waiting and the host at its usual speed is the code's
    assert _cpu_variant(tmp_path / "x", 14.0, host=1.2)["verdict"].tolist() == ["regression"]


def test_the_summary_gives_the_ratio_spread_per_device(tmp_path, capsys):
    a, b, _ = _variant(tmp_path, "b", _slower(2.0))
    main(["compare", str(a), str(b)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("gpu ratios B/A"))
    assert "median 1.000" in line and "within 10 %:" in line
