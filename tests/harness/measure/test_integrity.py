"""Cheating implementations, registered through the public `register` and run through `runner.run_cases`, must not
come out as passing rows: a result cached by address, a result left from the first call, a write into an input
(at once, or only once the checker is done), and one that looks for the checker's NaN poison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.timing import TimerSettings
from harness.runner import RunConfig, run_cases

SHAPE = "N=4,C=8,H=16,W=16"  # relu fwd on the CPU: a fraction of a millisecond a call


def _run(tmp_path, names: list[str]) -> pd.DataFrame:
    cfg = RunConfig(ops=["relu"], passes=["fwd"], impls=["numpy_ref", "numpy_opt", *names], shape=SHAPE,
                    timer=TimerSettings(budget_s=0.2, warmup_s=0.01))
    rows = run_cases(cfg, tmp_path / "run", printer=lambda *_: None)
    return pd.DataFrame(rows).set_index("impl")


def test_result_cached_by_address_goes_stale(cheaters, tmp_path):
    cache: dict[int, tuple] = {}

    def cached(s, x, *, y):
        key = x.ctypes.data
        if key not in cache:  # keeps x alive, so an address is never reused for other data during the check
            cache[key] = (x, np.maximum(x, 0))
        y[...] = cache[key][1]

    cheaters("cheat_cached", cached)
    df = _run(tmp_path, ["cheat_cached"])
    assert df.loc["numpy_opt", "status"] == "pass"
    assert df.loc["cheat_cached", "status"] == "stale", df.loc["cheat_cached", "reason"]
    assert "timed call" in df.loc["cheat_cached", "reason"]
    assert df.loc["cheat_cached", "median_ms"] == ""  # no time is reported for it


def test_first_call_only_result_goes_stale(cheaters, tmp_path):
    seen: dict[int, np.ndarray] = {}

    def first_only(s, x, *, y):
        if y.ctypes.data not in seen:  # later calls on the same buffer do nothing (y is kept alive, so an address
            seen[y.ctypes.data] = y  # is never reused for another seed's buffer during the check)
            np.maximum(x, 0, out=y)

    cheaters("cheat_first", first_only)
    df = _run(tmp_path, ["cheat_first"])
    assert df.loc["cheat_first", "status"] == "stale"
    assert "non-finite" in df.loc["cheat_first", "reason"]


def test_writing_into_an_input_has_its_own_status(cheaters, tmp_path):
    def mutates(s, x, *, y):
        np.maximum(x, 0, out=y)
        x[0, 0, 0, 0] = 0.0

    calls = []

    def mutates_later(s, x, *, y):  # behaves while the checker looks (3 calls), then scales its input
        calls.append(1)
        np.maximum(x, 0, out=y)
        if len(calls) > 3:
            x *= 0.5

    cheaters("cheat_mutate", mutates)
    cheaters("cheat_mutate_later", mutates_later)
    df = _run(tmp_path, ["cheat_mutate", "cheat_mutate_later"])
    assert df.loc["cheat_mutate", "status"] == "input-mutated"
    assert "input x" in df.loc["cheat_mutate", "reason"]
    assert df.loc["cheat_mutate_later", "status"] == "input-mutated"
    assert "timed call" in df.loc["cheat_mutate_later", "reason"]


def test_poison_sniffer_has_to_compute_on_every_timed_call(cheaters, tmp_path):
    """An implementation that computes only while its output still holds the checker's NaN and returns at once
    otherwise: the harness poisons before every call, so it never gets to skip, and its time is honest."""
    counts = {"computed": 0, "skipped": 0}

    def sniffer(s, x, *, y):
        if np.isnan(y).all():
            counts["computed"] += 1
            np.maximum(x, 0, out=y)
        else:
            counts["skipped"] += 1

    cheaters("cheat_sniffer", sniffer)
    df = _run(tmp_path, ["cheat_sniffer"])
    assert df.loc["cheat_sniffer", "status"] == "pass"
    assert counts["skipped"] == 0 and counts["computed"] > df.loc["cheat_sniffer", "reps"] > 0


def test_an_honest_row_records_how_it_was_timed(tmp_path):
    df = _run(tmp_path, [])
    row = df.loc["numpy_opt"]
    assert row["status"] == "pass" and row["timing"] == "perf_counter"
    assert row["host_ms"] == row["median_ms"] > 0
    assert 0 < row["host_ref_ms"] < 10  # the host reference timed beside its calls (two 96x96 products: ~0.1 ms)
    assert row["flags"] == ""
