"""The PyTorch peer runs in strict FP32 and leaves torch's TF32 switches as it found them."""

import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install .[torch])")

from nets.bench import BenchConfig, bench_peer  # noqa: E402
from nets.models import get_model  # noqa: E402
from nets.peer import strict_fp32  # noqa: E402


def _flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_strict_fp32_switches_tf32_off_and_restores_it(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    with strict_fp32():
        assert _flags() == (False, False)
    assert _flags() == (True, True)


def test_the_peer_trains_and_leaves_the_flags(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    before = _flags()
    row, times = bench_peer(get_model("thesis-0"), BenchConfig(steps=3, warmup=1, max_s=5))
    assert row["status"] == "ok" and len(times) >= 3 and all(t > 0 for t in times)
    assert "TF32 off" in row["implementations"]
    assert _flags() == before
