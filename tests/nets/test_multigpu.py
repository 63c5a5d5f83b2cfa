"""Launching ranks: results come back in rank order; a failing, dying or silent rank ends the job, bounded in time.

CPU only: the ranks here run plain Python targets (no NCCL), which is what the supervisor sees of any rank.
"""

import os
import time

import pandas as pd
import pytest

from nets.multigpu import launch
from nets.scaling import add_derived


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


def test_scaling_efficiency_and_overlap_gain():
    df = pd.DataFrame([
        {"model": "m", "gpus": 1, "overlap": "off", "ms_per_step": 10.0, "images_per_s": 100.0},
        {"model": "m", "gpus": 1, "overlap": "on", "ms_per_step": 10.0, "images_per_s": 100.0},
        {"model": "m", "gpus": 2, "overlap": "off", "ms_per_step": 12.5, "images_per_s": 160.0},
        {"model": "m", "gpus": 2, "overlap": "on", "ms_per_step": 10.0, "images_per_s": 200.0},
    ])
    out = add_derived(df)
    assert out.efficiency.tolist() == pytest.approx([1.0, 1.0, 0.8, 1.0])
    assert out[out.overlap == "on"].overlap_gain.tolist() == pytest.approx([1.0, 1.25])
    assert out[out.overlap == "off"].overlap_gain.isna().all()
