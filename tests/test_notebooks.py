"""Both notebooks run top to bottom against runs made by the harness on this machine, and are stored without
outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from harness.cli import main  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
THESIS_CONV1 = "N=32,C=3,H=12,W=12,K=16"  # thesis-0's first convolution layer


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory) -> str:
    """Two real CPU runs: one thesis convolution layer, and pooling on the whole thesis shape set."""
    root = tmp_path_factory.mktemp("runs")
    common = ["--impl", "numpy_ref,numpy_opt", "--budget", "0.02", "--no-report"]
    assert main(["run", "--op", "conv2d", "--shape", THESIS_CONV1, "--out", str(root / "conv"), *common]) == 0
    assert main(["run", "--op", "maxpool2d", "--shapes", "thesis", "--out", str(root / "pool"), *common]) == 0
    return os.pathsep.join([str(root / "conv"), str(root / "pool")])


def _execute(name: str, runs: str, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("HARNESS_RUN", runs)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # raises on a failing cell
    return nb


def _outputs(nb, kind: str) -> list[str]:
    return [o["data"][kind] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind in o.get("data", {})]


@pytest.mark.parametrize("name", ["analysis", "thesis"])
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("HARNESS_RUN" in c.source for c in code)


def test_analysis_notebook_runs(cpu_runs, monkeypatch):
    nb = _execute("analysis", cpu_runs, monkeypatch)
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "stream")
    assert "2 run(s)" in streams
    assert "numpy_opt" in "\n".join(_outputs(nb, "text/plain"))
    assert len(_outputs(nb, "image/png")) >= 2 * 2  # per run: throughput and timing quality at least


def test_thesis_notebook_runs(cpu_runs, monkeypatch):
    nb = _execute("thesis", cpu_runs, monkeypatch)
    tables = "\n".join(_outputs(nb, "text/html"))
    for quantity in ("conv forward", "conv backward", "pool forward", "pool backward"):
        assert quantity in tables
    assert "conv1 3-&gt;16 @12x12" in tables  # the measured thesis-0 layer has its row
    assert len(_outputs(nb, "image/png")) == 1
