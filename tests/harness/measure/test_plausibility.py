"""Plausibility flags: rows above a physical ceiling, or far ahead of their baseline, are named, never hidden."""

from harness.measure.ceilings import hardware_ceilings
from harness.measure.plausibility import flags

H200 = {**hardware_ceilings(132, (9, 0), 1_980_000, 3_201_000, 6144), "copy_gbps": 4164.0,
        "gemm_fp32_gflops": 51_100.0}


def _row(**kw):
    return {"device": "gpu", "math": "fp32", "impl": "mine", "baseline": "cudnn", "gflops": 1000.0, "gbps": 100.0,
            "speedup": 1.0, **kw}


def test_hardware_ceilings_by_arithmetic():
    assert round(H200["fp32_fma_gflops"]) == 66_908  # 132 SMs x 128 lanes x 2 x 1.98 GHz
    assert round(H200["hbm_gbps"]) == 4917  # 3.2 GHz x 2 x 6144 bits
    assert round(H200["tf32_tensor_gflops"] / 1e3) == 535
    assert "assumed" in hardware_ceilings(10, (99, 0), 1_000_000, 1_000_000, 128)["hardware_how"]
    assert "tf32_tensor_gflops" not in hardware_ceilings(10, (7, 5), 1_000_000, 1_000_000, 128)


def test_a_plausible_row_has_no_flags():
    assert flags(_row(), H200, warm=False) == []
    assert flags(_row(gflops=60_000.0, gbps=4000.0, speedup=9.0), H200, warm=False) == []


def test_above_the_fp32_fma_peak_is_flagged_and_winograd_is_named():
    (f,) = flags(_row(gflops=70_000.0), H200, warm=False)
    assert f.startswith("above the FP32 FMA peak (66.9 TFLOP/s") and "fewer FLOPs" in f
    (f,) = flags(_row(gflops=70_000.0, note="plan eng3: WINOGRAD 4x4"), H200, warm=False)
    assert "Winograd: fewer FLOPs than the direct count" in f
    (f,) = flags(_row(gflops=120_000.0, note="dx: eng50 (plan 28 of 36); no Winograd numerical note"), H200, False)
    assert "Winograd:" not in f and "possible only with fewer FLOPs" in f  # cuDNN said it is not Winograd
    assert flags(_row(math="tf32", gflops=70_000.0), H200, warm=False) == []  # TF32 has its own, higher peak
    assert "TF32 tensor-core peak" in flags(_row(math="tf32", gflops=600_000.0), H200, warm=False)[0]


def test_bandwidth_above_the_ceilings_cold_and_warm():
    assert "copy bandwidth (4,164 GB/s measured)" in flags(_row(gbps=4500.0), H200, warm=False)[0]
    assert "HBM bandwidth (4,917 GB/s by arithmetic)" in flags(_row(gbps=9000.0), H200, warm=False)[0]
    assert flags(_row(gbps=4500.0), H200, warm=True) == []  # between copy and HBM with a warm L2: plausible
    assert "served from the warm L2" in flags(_row(gbps=9000.0), H200, warm=True)[0]


def test_far_ahead_of_the_baseline_is_flagged_but_not_the_baseline_itself():
    assert flags(_row(speedup=25.0), H200, warm=False) == ["25.0x faster than cudnn"]
    assert flags(_row(impl="cudnn", speedup=25.0), H200, warm=False) == []


def test_missing_figures_or_ceilings_flag_nothing():
    assert flags({"device": "gpu", "math": "fp32"}, {}, warm=False) == []
    assert flags(_row(gflops=float("nan"), gbps="", speedup=""), H200, warm=False) == []
    assert flags(_row(device="cpu", gflops=500.0), {"gemm_fp32_gflops": 100.0}, warm=False)[0].startswith("above 1.5x")
