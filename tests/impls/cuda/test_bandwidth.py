"""CPU tests of the bandwidth kernels' launch arithmetic (impls/_bandwidth.py): residency and the vector split."""

from types import SimpleNamespace

import pytest

from impls.cuda.bandwidth import resident_blocks, vector_split


def _array_at(address: int):
    """Just enough of a CuPy array for vector_split: its device address."""
    return SimpleNamespace(data=SimpleNamespace(ptr=address))


@pytest.mark.parametrize(("regs", "smem", "blocks"), [
    (10, 0, 8),  # thread-limited: 2048 / 256
    (32, 0, 8),  # 32 regs x 2048 threads = the whole register file
    (40, 0, 6),  # 40 x 32 = 1280 per warp; 51 warps fit -> 6 blocks of 8 warps
    (94, 0, 2),  # rounded to 96 per thread: 21 warps fit -> 2 blocks
    (255, 0, 1),
    (32, 100 * 1024, 2),  # shared-memory-limited: 228 KiB / 100 KiB
])
def test_resident_blocks(regs, smem, blocks):
    assert resident_blocks(regs, smem, 256) == blocks


@pytest.mark.parametrize(("n", "addresses", "split"), [
    (10, (256, 512), (0, 2)),  # aligned: no head, 2 float4, tail of 2
    (10, (260, 516), (3, 1)),  # 4 bytes past a boundary: 3 scalars up to it, 1 float4, tail of 3
    (10, (264, 520), (2, 2)),
    (2, (260, 516), (2, 0)),  # shorter than the head
    (10, (256, 260), (10, 0)),  # different alignments: all scalar
    (10, (258,), (10, 0)),  # not even 4-byte aligned: all scalar
])
def test_vector_split(n, addresses, split):
    head, nvec = vector_split(n, *(_array_at(a) for a in addresses))
    assert (head, nvec) == split
    assert 0 <= n - head - 4 * nvec < 4 or nvec == 0
