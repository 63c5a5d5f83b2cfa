"""harness.cuda.occupancy: resident blocks per SM from registers, shared memory and threads (no GPU needed)."""

from harness.cuda import LIMIT_DEFAULTS, occupancy

H100 = dict(LIMIT_DEFAULTS)  # 64K registers, 2048 threads, 32 blocks, 228 KB shared memory, 1 KB reserved per block


def test_register_bound():
    assert occupancy(128, 50688, 256, H100) == 2  # 4096 registers per warp: 16 warps of 64
    assert occupancy(167, 51200, 128, H100) == 3  # 167 rounds to 168 per thread: 12 warps
    assert occupancy(255, 0, 256, H100) == 1


def test_thread_and_block_bound():
    assert occupancy(32, 8320, 1024, H100) == 2  # 2048 threads per SM
    assert occupancy(16, 0, 32, H100) == 32  # the block limit
    assert occupancy(0, 0, 64, H100) == 32  # no registers reported


def test_shared_memory_bound_with_reserved_bytes():
    # 113 KB + 1 KB reserved fits twice into 228 KB; 114 KB does not
    assert occupancy(32, 113 * 1024, 128, H100) == 2
    assert occupancy(32, 114 * 1024 - 1, 128, H100) == 1
    assert occupancy(32, 300 * 1024, 128, H100) == 0


def test_runner_puts_occupancy_in_its_column_and_the_note():
    from harness.registry import Impl
    from harness.results import COLUMNS
    from harness.runner import Run

    kernels = {"k1": {"regs": 128, "smem": 50688, "spill": 0, "dyn_smem": 50688, "occupancy": 2},
               "k2": {"regs": 32, "smem": 0, "spill": 0}}
    impl = Impl("gemm", "fwd", "x", lambda *a, **k: None, "gpu", "fp32",
                details=lambda s: {"kernels": kernels, "note": "nn: b128x128k16s3 (tuned over 4)"})
    out = Run.details(impl, None)
    assert "kernel_occupancy" in COLUMNS
    assert out["kernel_occupancy"] == 2 and out["kernel_smem"] == 50688
    assert out["note"] == ("k1: 128 regs, 50688 B smem, 0 B spill, 2 blocks/SM, k2: 32 regs, 0 B smem, 0 B spill; "
                           "nn: b128x128k16s3 (tuned over 4)")
