"""cupy_opt's configuration table and autotune cache (impls/cuda/gemm_tune.py), without a GPU: the table matches
gemm_warptile.cu, candidates and the fallback rule fit the shape, keys separate what must be tuned apart, and the
cache file survives a round trip (and a damaged file)."""

import json
from pathlib import Path

import pytest
from sgemm_table import sgemm_table

from impls.cuda import gemm_tune as tune

H200 = {"sms": 132, "smem_limit": 232448}  # multiprocessors and opt-in shared memory per block of an H200


def test_table_matches_the_kernel_source():
    cu = sgemm_table()  # as compiled for sm_90, the H100 / H200 the tuner's TILES describe
    assert set(cu) == set(tune.TILES) and set(tune.V6_TILES) < set(tune.TILES)
    for name, (bm, bn, bk, wm, wn, tm, tn, stages, threads, min_blocks) in cu.items():
        t = tune.TILES[name]
        assert (t.bm, t.bn, t.bk, t.stages, t.threads, t.min_blocks) == (bm, bn, bk, stages, threads, min_blocks)
        assert (bm // wm) * (bn // wn) * 32 == threads  # warp tiles cover the block tile
        assert (wm // tm) * (wn // tn) == 32  # lane tiles cover the warp tile
        assert t.smem == stages * bk * (bm + 4 + bn + 4) * 4


def test_config_names_round_trip():
    for t in tune.TILES.values():
        for s in tune.SPLITS:
            c = tune.Config(t, s)
            assert tune.parse(c.name) == c
    with pytest.raises(KeyError):
        tune.parse("b1x1k1s1")


@pytest.mark.parametrize("k,splits,bk", [(3200, 8, 16), (1, 4, 16), (129, 2, 8), (2048, 16, 16), (333, 3, 16)])
def test_k_per_split_covers_k_in_whole_steps(k, splits, bk):
    per = tune.k_per_split(k, splits, bk)
    assert per % bk == 0 and per > 0
    used = -(-k // per)
    assert used <= splits and (used - 1) * per < k <= used * per  # every split is non-empty


def test_large_square_products_try_every_tile_and_no_split():
    cands = tune.candidates(4096, 4096, 4096, **H200)
    assert {c.tile.name for c in cands} == set(tune.TILES)
    assert all(c.splits == 1 for c in cands)
    v6 = tune.candidates(4096, 4096, 4096, **H200, names=tune.V6_TILES)
    assert {c.tile.name for c in v6} == set(tune.V6_TILES)
    assert tune.heuristic(4096, 4096, 4096, **H200).tile.name == "b128x128k16s3"


def test_tiny_products_use_the_smallest_tile_only():
    cands = tune.candidates(1, 1, 1, **H200)
    assert [c.name for c in cands] == ["b64x64k16s4"]
    assert tune.heuristic(7, 5, 3, **H200).name == "b64x64k16s4"


def test_thesis_dense_layer_gets_split_k_candidates():
    # M = 32, N = 100, K = 3200: 2 output tiles of 64x64 for 132 SMs, so K is split
    cands = tune.candidates(32, 100, 3200, **H200)
    splits = sorted(c.splits for c in cands)
    assert splits[0] == 1 and 16 in splits
    assert all(c.tile.name == "b64x64k16s4" for c in cands if c.splits > 1)
    assert all(c.splits * tune.MIN_K_PER_SPLIT <= 3200 for c in cands)
    assert tune.heuristic(32, 100, 3200, **H200).splits == 16
    # a short K is not split
    assert all(c.splits == 1 for c in tune.candidates(32, 10, 100, **H200))


def test_a_grid_short_of_one_wave_of_resident_blocks_gets_split_candidates():
    # ResNet-50's res5 3x3 fprop at batch 32 as an implicit GEMM: 512 x 1568 x 4608, 200 tiles of 64x64 where an
    # H200 holds 132 x 4 = 528: more blocks than SMs, fewer than one wave
    cands = tune.candidates(512, 1568, 4608, **H200)
    assert sorted(c.splits for c in cands if c.splits > 1) == [2, 4]  # up to two waves (1056 blocks)
    assert tune.heuristic(512, 1568, 4608, **H200).splits == 1  # the untuned rule: a whole tile per SM first
    # a full wave is not split
    assert all(c.splits == 1 for c in tune.candidates(2048, 2048, 4608, **H200))


def test_wave_fill_and_the_notes_grid_line(monkeypatch):
    from impls.cuda import gemm

    assert tune.wave_fill(132, 132) == 1.0 and tune.wave_fill(133, 132) == pytest.approx(133 / 264)
    assert tune.wave_fill(98, 132) == pytest.approx(0.742, abs=1e-3)  # res3 3x3 at batch 32 on 128x256
    monkeypatch.setattr(gemm, "device", lambda: (0, "H200", 132, 232448))
    cfg = tune.Config(tune.TILES["b128x64k16s4"])
    # 128 x 25088 on 128x64 tiles: 392 blocks, 4 per SM
    assert gemm.grid_note(cfg, 128, 25088, 1, {"occupancy": 4}) == ", 392 blocks for 528 slots: 74% of 1 wave"
    split = tune.Config(tune.TILES["b128x64k16s4"], 4)
    assert gemm.grid_note(split, 128, 25088, 1, {"occupancy": 4}) == ", 1568 blocks for 528 slots: 99% of 3 waves"
    assert gemm.grid_note(cfg, 128, 25088, 2, {"occupancy": 4}).startswith(", 784 blocks")  # a batch of 2
    assert gemm.grid_note(cfg, 128, 25088, 1, {}) == ""  # no occupancy known: no claim


def test_a_small_shared_memory_limit_drops_the_large_configs():
    cands = tune.candidates(4096, 4096, 4096, sms=108, smem_limit=48 * 1024)
    assert cands and all(c.tile.smem <= 48 * 1024 for c in cands)


def test_keys_separate_layout_shape_epilogue_and_alignment():
    base = ("nn", 129, 333, 7, True, False, (True, False, True))
    k0 = tune.key(*base)
    variants = [("nt", *base[1:]), ("nn", 129, 333, 8, True, False, base[6]), ("nn", 129, 333, 7, False, False,
                base[6]), ("nn", 129, 333, 7, True, True, base[6]), (*base[:6], (True, True, True))]
    assert len({k0, *(tune.key(*v) for v in variants)}) == 6


def test_cache_round_trip_by_device(tmp_path: Path):
    path = tmp_path / "sub" / "gemm-tune.json"
    c = tune.TuneCache(path)
    cfg = tune.Config(tune.TILES["b128x64k16s4"], 4)
    c.put("NVIDIA H200", "nn 1x2x3", cfg)
    c.put("NVIDIA A100", "nn 1x2x3", tune.Config(tune.TILES["b64x64k16s4"]))
    again = tune.TuneCache(path)
    assert again.get("NVIDIA H200", "nn 1x2x3") == cfg
    assert again.get("NVIDIA A100", "nn 1x2x3").name == "b64x64k16s4"
    assert again.get("NVIDIA H200", "nn 9x9x9") is None
    assert json.loads(path.read_text())["NVIDIA H200"]["nn 1x2x3"] == "b128x64k16s4_split4"


def test_cache_merges_with_another_process(tmp_path: Path):
    path = tmp_path / "gemm-tune.json"
    a, b = tune.TuneCache(path), tune.TuneCache(path)
    a.put("dev", "k1", tune.Config(tune.TILES["b64x64k16s4"]))
    b.put("dev", "k2", tune.Config(tune.TILES["b128x128k8s3"]))
    merged = tune.TuneCache(path)
    assert merged.get("dev", "k1") is not None and merged.get("dev", "k2") is not None


def test_damaged_or_stale_cache_entries_are_ignored(tmp_path: Path):
    path = tmp_path / "gemm-tune.json"
    path.write_text("{not json")
    assert tune.TuneCache(path).choices == {}
    path.write_text(json.dumps({"dev": {"k": "b999x1k1s1", "k2": 5, "k3": "b64x64k16s4"}, "bad": []}))
    c = tune.TuneCache(path)
    assert c.get("dev", "k") is None and c.get("dev", "k2") is None and c.get("dev", "k3").name == "b64x64k16s4"


def test_memory_only_cache_writes_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", "")
    assert tune.cache_path() is None
    c = tune.TuneCache(None)
    c.put("dev", "k", tune.Config(tune.TILES["b64x64k16s4"]))
    assert c.get("dev", "k").name == "b64x64k16s4" and not list(tmp_path.iterdir())


def test_env_switches(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("KH_GEMM_TUNE", raising=False)
    monkeypatch.delenv("KH_GEMM_TUNE_CACHE", raising=False)
    assert tune.enabled() and tune.cache_path() == tune.DEFAULT_CACHE.expanduser()
    monkeypatch.setenv("KH_GEMM_TUNE", "0")
    monkeypatch.setenv("KH_GEMM_TUNE_CACHE", str(tmp_path / "t.json"))
    assert not tune.enabled() and tune.cache_path() == tmp_path / "t.json"


def test_fastest_takes_the_smallest_median():
    a, b = tune.Config(tune.TILES["b64x64k16s4"]), tune.Config(tune.TILES["b128x128k16s3"])
    assert tune.fastest({a: [1.0, 9.0, 1.1], b: [1.2, 1.2, 1.2]}) == a
    assert tune.fastest({a: [2.0, 2.0, 2.0], b: [1.0, 5.0, 1.5]}) == b


def test_ladder_steps_are_never_picked_for_training():
    """The ladder (cupy_v2 .. cupy_v6) is for the report only: no fallback rank and no backend of that name, so
    nets/backend.py never picks one; cupy_naive and cupy_opt keep theirs."""
    from harness.registry import impls_for
    from nets.backend import BACKENDS

    impls = {(i.pass_, i.name): i for i in impls_for("gemm")}
    ladder = [i for i in impls.values() if i.name.startswith("cupy_v")]
    assert {i.name for i in ladder} == {"cupy_v2_smem", "cupy_v3_regblock1d", "cupy_v4_regblock2d",
                                        "cupy_v5_vec_dbuf", "cupy_v6_warptile"}
    assert all(i.fallback is None and i.name not in BACKENDS and i.family == "own" and i.pass_ == "fwd"
               for i in ladder)
    assert impls[("fwd", "cupy_opt")].fallback == 1 and impls[("bwd", "cupy_opt")].fallback == 1
    assert impls[("fwd", "cupy_naive")].fallback == 2
    assert all(i.doc for i in ladder)  # the one-line description the report shows


def test_batched_kernels_are_never_split_even_for_one_product():
    # ResNet-50's res5 1x1 reduce at batch 1: 8 tiles of 64x64 on 132 SMs and K = 2048 would be split, but the
    # batched (bnn, btn) kernels have no split-K: such a candidate failed _wt_launch's assertion on the GPU
    assert any(c.splits > 1 for c in tune.candidates(512, 49, 2048, **H200))
    assert all(c.splits == 1 for c in tune.candidates(512, 49, 2048, **H200, splittable=False))
    assert tune.heuristic(512, 49, 2048, **H200, splittable=False).splits == 1


def test_the_planner_offers_the_batched_layouts_no_split(monkeypatch):
    from launch_recorder import FakeArray, record

    from impls.cuda import gemm

    plan = gemm._plan
    record(monkeypatch)
    monkeypatch.setattr(gemm, "_plan", plan)  # the real planner, with the recorder's cupy and device
    monkeypatch.setattr(gemm, "_cache", lambda: tune.TuneCache(None))
    monkeypatch.setattr(tune, "enabled", lambda: True)
    offered = {}

    def fake_tune(cands, launch):
        offered[len(offered)] = cands
        launch(cands[0])
        return cands[0], {}
    monkeypatch.setattr(tune, "tune", fake_tune)
    a, b, c = (FakeArray(1 << 22) for _ in range(3))
    for layout in ("bnn", "btn"):
        gemm.batched_gemm(layout, a, b, c, None, 512, 49, 2048, 2048, 49, 1, (0, 0, 0))
    gemm._wt_gemm("nn", a, b, c, None, 512, 49, 2048, 2048, 49, False, True, False)
    assert [any(x.splits > 1 for x in cands) for cands in offered.values()] == [False, False, True]


@pytest.mark.parametrize("tuning, capturing, cached, expect", [
    (True, False, None, "tuned over 2"),  # first call: timed, stored, the winner launched last
    (True, False, "b", "cached"),  # a stored choice: launched, nothing timed
    (True, True, None, "heuristic"),  # a graph capture: no timing (it would break the capture), nothing stored
    (False, False, None, "heuristic"),  # KH_GEMM_TUNE=0
])
def test_choose_tunes_caches_or_falls_back(monkeypatch, tuning, capturing, cached, expect):
    import sys
    import types

    stream = types.SimpleNamespace(is_capturing=lambda: capturing)
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(get_current_stream=lambda: stream))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(tune, "enabled", lambda: tuning)

    def fake_tune(cands, launch):  # the last candidate wins, and is launched last
        launch(cands[-1])
        return cands[-1], dict.fromkeys(cands, 1.0)
    monkeypatch.setattr(tune, "tune", fake_tune)
    cache = tune.TuneCache(None, parse=str)
    if cached:
        cache.put("dev", "k", cached)
    launched = []
    choice, how = tune.choose(cache, "dev", "k", lambda: ("a", "b"), launched.append, lambda: ("a", "heuristic"))
    assert how == expect and launched[-1] == choice and len(launched) == 1
    assert choice == ("b" if expect in ("tuned over 2", "cached") else "a")
    assert cache.get("dev", "k") == ("b" if expect != "heuristic" else None)


def test_named_choices_parse_and_describe(tmp_path: Path):
    """one_of: a cache of named variants keeps known names and drops others; with_times names each median."""
    path = tmp_path / "tune.json"
    path.write_text(json.dumps({"dev": {"a": "f4", "b": "f9"}}))
    cache = tune.TuneCache(path, parse=tune.one_of(("f2", "f4")))
    assert cache.get("dev", "a") == "f4" and cache.get("dev", "b") is None
    assert tune.with_times({"f2": 0.1234, "f4": 0.05}) == "tuned: f2 0.123 ms, f4 0.050 ms"


def test_keep_tuned_keeps_the_tuning_note_for_the_same_choice():
    tuned = ("f4", "tuned: f2 0.2 ms, f4 0.1 ms")
    assert tune.keep_tuned(tuned, ("f4", "cached")) == tuned
    assert tune.keep_tuned(tuned, ("f2", "cached")) == ("f2", "cached")  # another choice: its own how
    assert tune.keep_tuned(None, ("f4", "cached")) == ("f4", "cached")
    assert tune.keep_tuned(tuned, ("f4", "untuned")) == ("f4", "untuned")
