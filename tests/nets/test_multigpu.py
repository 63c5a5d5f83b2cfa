"""Launching ranks: results come back in rank order; a failing, dying or silent rank ends the job, bounded in time.

CPU only: the ranks here run plain Python targets (no NCCL), which is what the supervisor sees of any rank.
"""

import os
import time

import pandas as pd
import pytest

from nets.distributed import Exchange
from nets.multigpu import launch
from nets.scaling import add_derived, plot, rows_of


def no_uid():
    return None


def ok(rank, world, uid, beat, factor):
    beat()
    return rank * factor


def fails(rank, world, uid, beat):
    if rank == 1:
        raise ValueError("boom\nsecond line")
    while True:  # rank 0 would wait forever for its peer in a collective
        beat()
        time.sleep(0.1)


def dies(rank, world, uid, beat):
    if rank == 1:
        os._exit(3)
    while True:
        beat()
        time.sleep(0.1)


def hangs(rank, world, uid, beat):
    while True:
        if rank == 0:
            beat()
        time.sleep(0.1)


def test_results_in_rank_order():
    assert launch(3, ok, (10,), timeout_s=60, make_uid=no_uid) == [0, 10, 20]


@pytest.mark.parametrize("target, message", [
    (fails, "rank 1 failed: ValueError: boom; stopped all 2 ranks"),
    (dies, "rank 1 died (exit code 3); stopped all 2 ranks"),
    (hangs, "rank 1 made no progress for 4 s"),
])
def test_a_failed_rank_ends_the_job_with_a_message(target, message):
    t0 = time.time()
    with pytest.raises(RuntimeError) as info:
        launch(2, target, (), timeout_s=4, make_uid=no_uid)
    assert message in str(info.value)
    assert time.time() - t0 < 40  # spawn start-up + timeout + the stop grace, never forever


def test_rows_take_the_slowest_rank_per_round_then_the_median_round():
    fast = {"none": [8.0, 8.0, 8.0], "off": [10.0, 11.0, 30.0], "on": [9.0, 9.5, 9.0], "comm": [2.0, 2.0, 2.0]}
    slow = {"none": [7.0, 9.0, 7.5], "off": [12.0, 11.0, 10.0], "on": [9.0, 10.0, 8.0], "comm": [1.0, 3.0, 2.5]}
    off, on = rows_of("m", "b", 2, 8, [fast, slow])
    assert (off["overlap"], on["overlap"]) == ("off", "on")
    assert off["ms_per_step"] == 12.0 and (off["ms_min"], off["ms_max"]) == (11.0, 30.0)  # rounds: 12, 11, 30
    assert on["ms_per_step"] == 9.0 and on["rounds"] == 3  # rounds: 9, 10, 9
    assert off["comm_ms"] == on["comm_ms"] == 2.5  # rounds: 2, 3, 2.5
    assert off["compute_ms"] == 8.0  # rounds: 8, 9, 8
    assert on["images_per_s"] == pytest.approx(16 / 9.0e-3)


def test_scaling_efficiency_overlap_gain_and_hidden_communication(tmp_path):
    df = pd.DataFrame([
        {"model": "m", "gpus": 1, "overlap": "off", "ms_per_step": 10.0, "images_per_s": 100.0, "comm_ms": 0.0,
         "compute_ms": 10.0},
        {"model": "m", "gpus": 1, "overlap": "on", "ms_per_step": 10.0, "images_per_s": 100.0, "comm_ms": 0.0,
         "compute_ms": 10.0},
        {"model": "m", "gpus": 2, "overlap": "off", "ms_per_step": 12.5, "images_per_s": 160.0, "comm_ms": 5.0,
         "compute_ms": 9.0},
        {"model": "m", "gpus": 2, "overlap": "on", "ms_per_step": 10.0, "images_per_s": 200.0, "comm_ms": 5.0,
         "compute_ms": 9.0},
    ])
    out = add_derived(df)
    assert out.efficiency.tolist() == pytest.approx([1.0, 1.0, 0.8, 1.0])
    assert out[out.overlap == "on"].overlap_gain.tolist() == pytest.approx([1.0, 1.25])
    assert out[out.overlap == "off"].overlap_gain.isna().all()
    assert out.comm_share.tolist() == pytest.approx([0.0, 0.0, 0.4, 0.4])
    # without overlap the exchange added 12.5 - 9 = 3.5 ms to the step; overlap took 2.5 ms of it back
    assert out.comm_hidden.iloc[3] == pytest.approx(2.5 / 3.5)
    assert out.comm_hidden.isna().tolist() == [True, True, True, False]
    out["batch_per_gpu"] = 1
    out["ms_min"], out["ms_max"] = out.ms_per_step * 0.9, out.ms_per_step * 1.1
    plot(out, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 1000


def test_run_scaling_writes_the_table_and_plot_from_the_ranks_timings(tmp_path, monkeypatch):
    """The GPU-free part of `train-bench --gpus`: planted per-rank block times in, scaling.csv and scaling.png out."""
    import nets.scaling as scaling

    def fake_launch(n, target, args, timeout_s):
        base = {"none": [10.0] * 3, "off": [10.0 + 2 * (n - 1)] * 3, "on": [10.0 + 0.5 * (n - 1)] * 3,
                "comm": [2.0 * (n - 1)] * 3}
        return [base] * n
    monkeypatch.setattr(scaling, "_check_gpus", lambda n: None)
    monkeypatch.setattr(scaling, "launch", fake_launch)
    monkeypatch.setattr(scaling, "scaling_meta", lambda cfg: {"planted": True})
    cfg = scaling.ScalingConfig(models=["thesis-0"], gpus=[1, 2], rounds=3, exchange=Exchange(nccl_channels=4))
    df = scaling.run_scaling(cfg, tmp_path, printer=lambda *a: None)
    on2 = df[(df.gpus == 2) & (df.overlap == "on")].iloc[0]
    assert on2.ms_per_step == 10.5 and on2.efficiency == pytest.approx(10 / 10.5)
    assert on2.overlap_gain == pytest.approx(12 / 10.5) and on2.comm_hidden == pytest.approx(1.5 / 2)
    assert on2.nccl_channels == 4 and on2.batch_per_gpu == 32
    assert pd.read_csv(tmp_path / "scaling.csv").shape == df.shape
    assert (tmp_path / "scaling.png").stat().st_size > 1000 and (tmp_path / "meta.json").is_file()
