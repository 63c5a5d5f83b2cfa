"""report.html: self-contained, every section present, failures first, consistent colours, CPU-only and one-shape
runs, and the figures' scales and labels."""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from fake_runs import CEILINGS, gpu_like_rows, gpu_meta, write_run

from harness.cli import main
from harness.errors import UsageError
from harness.report import figures
from harness.report.html import build_report
from harness.report.screenshot import find_browser, screenshot
from harness.results import load_run, load_runs, runs_from_env

SECTIONS = ["env", "correctness", "performance", "roofline", "kernels", "timing"]


def _html(run_dir: Path) -> str:
    return build_report(run_dir).read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """One GPU-like run with its report built once, for the tests that only read it."""
    run = write_run(tmp_path_factory.mktemp("built") / "gpu_run", gpu_like_rows())
    return run, _html(run)


def test_report_is_self_contained_with_pngs_beside_it(built):
    run, html = built
    pngs = sorted(run.glob("fig_*.png"))
    assert len(pngs) >= 5 + 5 + 2 + 1  # throughput and speedup per (op, pass), a roofline per op, timing quality
    embedded = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(embedded) == len(pngs)
    assert {base64.b64decode(e) for e in embedded} == {p.read_bytes() for p in pngs}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    # nothing fetched from anywhere: no remote URLs, scripts or stylesheets
    assert not re.search(r"(src|href)=['\"](https?:|//)", html)
    assert "<script" not in html and "<link" not in html


def test_report_has_every_section_and_the_environment(built):
    _, html = built
    for anchor in SECTIONS:
        assert f"id='{anchor}'" in html
    for fact in ("NVIDIA H100 80GB HBM3", "13.0", "14.2.0", "python -m harness run --op conv2d,maxpool2d",
                 "2026-11-22T18:00:00", "2,900", "51,000"):
        assert fact in html, fact


def test_at_a_glance_gives_geometric_mean_speedups(built):
    run, html = built
    df, _ = load_run(run)
    rows = df[(df["op"] == "conv2d") & (df["pass"] == "fprop") & (df["impl"] == "cupy_opt")]
    expected = math.exp(np.log(rows["speedup"]).mean())
    glance = html[html.index("id='glance'"):html.index("id='env'")]
    assert f"{expected:.2f}x ({len(rows)})" in glance
    assert "cudnn_tf32</th>" not in glance  # a baseline is not compared with itself


def test_failures_come_first_with_their_reasons(built):
    _, html = built
    failures = html.index("Failures (2)")
    assert failures < html.index("class='matrix'")
    assert "cudaErrorLaunchFailure" in html and "40.0x its bound" in html
    # in the dgrad matrix the failing implementation is the first row
    dgrad = html[html.index("conv2d / dgrad</h3>"):]
    first_row = re.search(r"<tr><th class='impl'>(\w+) <span", dgrad).group(1)
    assert first_row == "cupy_opt"
    assert "<td class='fail'" in dgrad


def test_noisy_cases_and_spills_are_marked(built):
    run, html = built
    df, _ = load_run(run)
    n_noisy = int((df["rel_iqr"] > figures.NOISY_REL_IQR).sum())
    assert n_noisy > 0
    assert f"{n_noisy} of " in html and "are noisy" in html
    timing = html[html.index("id='timing'"):]
    assert timing.count("class='num noisy'") == n_noisy
    kernels = html[html.index("id='kernels'"):html.index("id='timing'")]
    assert "class='num spill'" in kernels and "cupy_opt" in kernels and "cupy_naive" in kernels


def test_colours_are_fixed_per_implementation_across_figures(gpu_like_run):
    df, meta = load_run(gpu_like_run)
    figs = [figures.throughput_figure(df, meta, "conv2d", "fprop"), figures.speedup_figure(df, "conv2d", "fprop"),
            figures.throughput_figure(df, meta, "maxpool2d", "bwd"), figures.roofline_figure(df, meta, "conv2d"),
            figures.timing_quality_figure(df)]
    seen = 0
    for fig in figs:
        legend = fig.axes[0].get_legend()
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            name = text.get_text()
            if name in figures.PALETTE:
                assert mcolors.to_hex(handle.get_facecolor()) == figures.impl_color(name), name
                seen += 1
    assert seen >= 15
    assert figures.impl_color("someone_new") == figures.impl_color("someone_new")


def test_figures_use_log_scales_and_labelled_units(gpu_like_run):
    df, meta = load_run(gpu_like_run)
    ax = figures.throughput_figure(df, meta, "conv2d", "fprop").axes[0]
    assert ax.get_yscale() == "log" and "GFLOP/s" in ax.get_ylabel()
    assert "GB/s" in figures.throughput_figure(df, meta, "maxpool2d", "fwd").axes[0].get_ylabel()
    sp = figures.speedup_figure(df, "conv2d", "fprop").axes[0]
    assert sp.get_yscale() == "log" and "cudnn" in sp.get_title()
    roof = figures.roofline_figure(df, meta, "conv2d").axes[0]
    assert roof.get_xscale() == roof.get_yscale() == "log"
    assert "FLOP per" in roof.get_xlabel() and "GFLOP/s" in roof.get_ylabel()
    roof_tops = sorted(max(line.get_ydata()) for line in roof.get_lines())
    assert roof_tops == pytest.approx(sorted(c["gemm_fp32_gflops"] for c in CEILINGS.values()))
    tq = figures.timing_quality_figure(df).axes[0]
    assert "ms" in tq.get_xlabel() and "IQR" in tq.get_ylabel()


def test_shape_labels_keep_only_what_varies():
    shapes = ["N=32,C=3,H=12,W=12,K=16,R=3,S=3,stride=1,pad=1", "N=32,C=16,H=6,W=6,K=32,R=3,S=3,stride=1,pad=1"]
    labels, caption = figures.shape_labels(shapes)
    assert labels[shapes[0]] == "C=3 HxW=12x12 K=16"
    assert caption == "N=32, RxS=3x3, stride=1, pad=1"
    one, no_caption = figures.shape_labels(shapes[:1])
    assert "N=32" in one[shapes[0]] and no_caption == ""


def test_shape_labels_name_only_the_keys_each_shape_has():
    # conv geometry: one layer has a single pad and dilation, another per-axis ones; no label invents a key
    shapes = ["N=16,C=64,H=64,W=64,K=64,R=3,S=3,stride=1,pad=8,dilation=8",
              "N=16,C=32,H=56,W=56,K=32,R=3,S=3,stride=1,pad_h=2,pad_w=1,dilation_h=2,dilation_w=1"]
    labels, caption = figures.shape_labels(shapes, per_line=9)
    assert labels[shapes[0]] == "C=64 HxW=64x64 K=64 pad=8 dilation=8"
    assert labels[shapes[1]] == "C=32 HxW=56x56 K=32 pad_h=2 pad_w=1 dilation_h=2 dilation_w=1"
    assert caption == "N=16, RxS=3x3, stride=1"


def test_one_shape_run(tmp_path):
    run = write_run(tmp_path / "one", gpu_like_rows(n_shapes=1))
    html = _html(run)
    assert "HxW=12x12" in html and len(list(run.glob("fig_*.png"))) >= 10


def test_cpu_only_run_has_no_gpu_columns(tmp_path):
    rows = [r for r in gpu_like_rows() if r["device"] == "cpu"]
    for r in rows:
        r.pop("baseline", None), r.pop("speedup", None)
    meta = {k: v for k, v in gpu_meta().items() if not k.startswith(("gpu", "cuda", "cupy"))}
    meta["ceilings"] = {"cpu": CEILINGS["cpu"]}
    run = write_run(tmp_path / "cpu", rows, meta)
    df, _ = load_run(run)
    assert df["kernel_regs"].isna().all() and df["speedup"].isna().all()
    html = _html(run)
    assert "No compiled-kernel attributes" in html and "id='glance'" not in html
    assert not list(run.glob("fig_speedup_*.png"))
    assert list(run.glob("fig_roofline_*.png")) and list(run.glob("fig_throughput_*.png"))


def test_check_only_run_has_correctness_and_no_figures(tmp_path):
    rows = [{k: v for k, v in r.items() if k in ("op", "pass", "impl", "device", "math", "shape_set", "shape",
                                                  "status", "reason", "err", "viol", "rtol", "seeds")}
            for r in gpu_like_rows()]
    meta = {**gpu_meta(), "ceilings": {}, "check_only": True}
    run = write_run(tmp_path / "check", rows, meta)
    html = _html(run)
    assert "Failures (2)" in html and "Nothing was timed" in html
    assert not list(run.glob("fig_*.png"))


def test_a_new_report_removes_figures_it_no_longer_draws(tmp_path):
    run = write_run(tmp_path / "one", gpu_like_rows(n_shapes=1))
    build_report(run)
    assert list(run.glob("fig_*maxpool2d*.png"))
    df = pd.read_csv(run / "results.csv")
    df[df["op"] == "conv2d"].to_csv(run / "results.csv", index=False)
    build_report(run)
    assert not list(run.glob("fig_*maxpool2d*.png"))


def test_runs_from_env_names_folders_or_takes_the_latest(tmp_path, monkeypatch):
    old = write_run(tmp_path / "sample-old", gpu_like_rows(n_shapes=1))
    new = write_run(tmp_path / "20261122-180000", gpu_like_rows(n_shapes=1))
    os.utime(old / "results.csv", (1, 1))
    monkeypatch.delenv("HARNESS_RUN", raising=False)
    assert runs_from_env(root=tmp_path) == [new]
    monkeypatch.setenv("HARNESS_RUN", f"{old},{new}")
    assert runs_from_env(root=tmp_path) == [old, new]
    df, metas = load_runs(runs_from_env(root=tmp_path))
    assert set(df["run"]) == set(metas) == {"sample-old", "20261122-180000"}
    monkeypatch.delenv("HARNESS_RUN")
    with pytest.raises(UsageError, match="HARNESS_RUN"):
        runs_from_env(root=tmp_path / "empty")


def test_cli_report_and_a_missing_folder(tmp_path, capsys):
    run = write_run(tmp_path / "one", gpu_like_rows(n_shapes=1))
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    with pytest.raises(UsageError):
        build_report(tmp_path / "nope")
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_real_cpu_run_report(tmp_path):
    """A run made by the harness itself on this machine (CPU implementations; GPU ones skipped)."""
    run = tmp_path / "real"
    code = main(["run", "--op", "maxpool2d", "--impl", "numpy_ref,numpy_opt", "--shapes", "smoke",
                 "--budget", "0.02", "--out", str(run)])
    assert code == 0
    html = (run / "report.html").read_text()
    assert "maxpool2d / fwd" in html and list(run.glob("fig_throughput_maxpool2d_*.png"))


@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH (apt-get install chromium)")
def test_screenshot_renders_the_report(built, tmp_path):
    from PIL import Image

    png = screenshot(built[0] / "report.html", tmp_path / "shot.png", width=1400, height=2000)
    with Image.open(png) as im:
        assert im.size == (1400, 2000)
        colours = im.convert("RGB").resize((140, 200)).getcolors(maxcolors=100_000)
    assert len(colours) > 50  # text, tables and figures, not a blank page


def test_screenshot_without_a_browser_is_a_usage_error(built, monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="no Chromium"):
        screenshot(built[0] / "report.html", tmp_path / "x.png")
