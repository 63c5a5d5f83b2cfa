"""The all-reduce benchmark: size parsing, the nccl-tests bandwidth definitions, and the GPU run itself."""

import pandas as pd
import pytest

from harness.cli import main
from harness.comm.allreduce import bus_factor, parse_bytes, sizes
from harness.errors import UsageError


def test_sizes_and_units():
    assert parse_bytes("1K") == 1024 and parse_bytes("64MiB") == 64 << 20 and parse_bytes("4096") == 4096
    assert sizes(1024, 8192) == [1024, 2048, 4096, 8192]
    assert len(sizes(parse_bytes("1K"), parse_bytes("1G"))) == 21
    with pytest.raises(UsageError, match="bad size '12Q'"):
        parse_bytes("12Q")
    with pytest.raises(UsageError):
        sizes(4096, 1024)


def test_bus_bandwidth_factor_is_nccl_tests():
    assert bus_factor(1) == 1.0
    assert bus_factor(2) == 1.0
    assert bus_factor(4) == pytest.approx(1.5)
    assert bus_factor(8) == pytest.approx(1.75)


@pytest.mark.gpu
def test_allreduce_runs_checks_and_reports(tmp_path):
    assert main(["allreduce", "--min-bytes", "1K", "--max-bytes", "1M", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    assert len(df) == 11 and (df.status == "pass").all()
    assert (df.gbps > 0).all() and (df.busbw_gbps >= df.gbps * 0.999).all()
