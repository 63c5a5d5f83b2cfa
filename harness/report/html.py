"""`python -m harness report RUN_DIR`: one self-contained report.html (PNGs embedded) plus the PNGs beside it.

Sections: environment and measured ceilings; correctness (failures first, then an implementation x shape matrix of
error against tolerance per op and pass); per op and pass the throughput and the speedup over the baseline; a
roofline per op; the compiled kernels' registers, shared memory and spills; timing quality (relative IQR, noisy
cases marked). The HTML needs no server and no network: images are base64 data URIs, styles are inline.
Figures come from harness.report.figures; this module only lays out tables and pages.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.measure.check import FAILED_STATUSES
from harness.report import figures
from harness.results import load_run

REPORT_NAME = "report.html"
FIG_PREFIX = "fig_"
ENV_KEYS = ["date_utc", "command", "gpu", "gpu_sms", "gpu_l2_mib", "gpu_mem_gib", "cuda_driver", "cuda_runtime",
            "cupy", "host", "platform", "cpu", "cpu_count", "blas", "python", "numpy", "pandas", "matplotlib",
            "shape_set", "seeds", "check_only", "l2", "timing", "timers", "clocks"]
NOT_ENV = {"ceilings", "summary", "run_dir"}

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1320px;
       padding: 0 20px; color: #1d1d1f; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
h3 { margin-top: 26px; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { background: #e3f4e1 !important; } td.oracle { background: #e8eefc !important; }
td.fail, td.nan, td.bad-shape, td.bad-dtype, td.error, td.input-mutated, td.stale, td.off-stream {
  background: #fbdada !important; font-weight: 600; }
td.flag { background: #fff0c2 !important; }
td.skipped { background: #f3f3f3 !important; color: #777; } td.noisy { background: #fff0c2 !important; }
td.spill { background: #fbdada !important; font-weight: 600; } td.win { background: #e3f4e1 !important; }
.pill { display: inline-block; padding: 1px 9px; border-radius: 10px; margin-right: 6px; font-size: 13px; }
.ok { background: #e3f4e1; } .bad { background: #fbdada; } .meh { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
details { margin: 6px 0 14px; } summary { cursor: pointer; color: #0a58ca; }
.matrix td, .matrix th.impl { white-space: nowrap; } .scroll { overflow-x: auto; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
.note { color: #555; font-size: 13.5px; }
nav a { margin-right: 14px; }
.blocks { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; } .block h3 { margin-top: 14px; }
"""


def build_report(run_dir: str | os.PathLike) -> Path:
    """Write `<run_dir>/report.html` and its PNGs (fig_*.png) from the run's results; return the HTML's path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    df, meta = load_run(run_dir)
    for old in run_dir.glob(f"{FIG_PREFIX}*.png"):
        old.unlink()  # a figure of a previous report that this one may no longer draw
    body = [
        _header(df, meta, run_dir),
        glance_section(df),
        flags_section(df),
        environment_section(meta),
        correctness_section(df),
        performance_section(df, meta, run_dir),
        roofline_section(df, meta, run_dir),
        kernels_section(df),
        timing_section(df, run_dir),
    ]
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(_title(df, run_dir))}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = run_dir / REPORT_NAME
    out.write_text(page, encoding="utf-8")
    return out


# ---------------------------------------------------------------- sections


def _title(df: pd.DataFrame, run_dir: Path) -> str:
    ops = ", ".join(dict.fromkeys(df["op"])) if len(df) else "no cases"
    return f"kernel-harness report: {ops} ({run_dir.name})"


def _header(df: pd.DataFrame, meta: dict, run_dir: Path) -> str:
    counts = df["status"].value_counts() if len(df) else pd.Series(dtype=int)
    pills = []
    for status, n in counts.items():
        cls = "ok" if status in figures.TIMED_STATUSES else "bad" if status in FAILED_STATUSES else "meh"
        pills.append(f"<span class='pill {cls}'>{_e(status)}: {n}</span>")
    device = meta.get("gpu") or meta.get("cpu") or meta.get("host", "")
    nav = " ".join(f"<a href='#{a}'>{t}</a>" for a, t in [("flags", "Flags"), ("env", "Environment"),
                   ("correctness", "Correctness"),
                   ("performance", "Performance"), ("roofline", "Roofline"), ("kernels", "Kernels"),
                   ("timing", "Timing quality")])
    return (f"<h1>{_e(_title(df, run_dir))}</h1>"
            f"<p class='sub'>{_e(meta.get('date_utc', ''))} &middot; {_e(device)} &middot; "
            f"<code>{_e(meta.get('command', ''))}</code></p><p>{''.join(pills)}</p><nav>{nav}</nav>")


def glance_section(df: pd.DataFrame) -> str:
    """Per op and pass, each implementation's geometric-mean speedup over the baseline across the shapes it ran
    ('' when the run has no speedups, e.g. on a CPU-only machine where the baseline is the only fp32 CPU path)."""
    t = figures.timed(df)
    if t.empty or "speedup" not in t:
        return ""
    sp = pd.to_numeric(t["speedup"], errors="coerce")
    t = t[(sp > 0) & (t["impl"] != t["baseline"])]
    if t.empty:
        return ""
    t = t.assign(log=np.log(pd.to_numeric(t["speedup"])))
    impls = figures.impl_order(t)
    rows = []
    for (op, pass_), g in t.groupby(["op", "pass"], sort=False):
        base = ", ".join(sorted(set(g["baseline"].astype(str))))
        cells = []
        for impl in impls:
            x = g.loc[g["impl"] == impl, "log"]
            cells.append((f"{math.exp(x.mean()):.2f}x ({len(x)})", "win" if x.mean() > 0 else "") if len(x) else "")
        rows.append([f"{op} / {pass_}", base, *cells])
    return ("<h2 id='glance'>At a glance</h2><p class='note'>Geometric mean over shapes of each implementation's "
            "speedup over the baseline of the same math mode (number of shapes in brackets); &gt; 1x is faster "
            "than the baseline.</p>"
            + _table(["op / pass", "baseline", *impls], rows, num_cols=set(range(2, 2 + len(impls)))))


def flags_section(df: pd.DataFrame) -> str:
    """Every timed row whose figures a plausibility check or the timer flagged, with the reason, before any figure
    is read: a flagged figure is above a physical ceiling, suspiciously far ahead of the baseline, measured on a
    throttled GPU, or measured in a way that includes host time."""
    t = figures.timed(df)
    bad = t[figures.flagged_rows(t)]
    head = ("<h2 id='flags'>Flags</h2><p class='note'>Each timed row is held against the ceilings of its device "
            "(FP32 FMA and TF32 peaks and HBM bandwidth by arithmetic; copy bandwidth and FP32 GEMM measured), "
            "against its baseline (more than 10x faster is flagged), and against the SM clock while it was timed. "
            "Flagged bars carry a red ! in the figures.</p>")
    if bad.empty:
        return head + (f"<p><span class='pill ok'>no flags</span> none of the {len(t)} timed rows is above a ceiling "
                       "or otherwise flagged.</p>" if len(t) else "<p>No timed rows.</p>")
    rows = [[r["op"], r["pass"], r["impl"], r["math"], r["shape"], _num(r.get("median_ms"), ".4g"),
             _num(r.get("gflops"), ",.0f"), _num(r.get("gbps"), ",.0f"), _num(r.get("speedup"), ".2f", "x"),
             (_text(r.get("flags")), "flag")] for _, r in bad.iterrows()]
    return head + _table(["op", "pass", "impl", "math", "shape", "median ms", "GFLOP/s", "GB/s", "speedup", "flags"],
                         rows, num_cols={5, 6, 7, 8})


def environment_section(meta: dict) -> str:
    """Device, driver, library versions, date, command line, and the measured ceilings, side by side."""
    keys = [k for k in ENV_KEYS if k in meta] + [k for k in meta if k not in ENV_KEYS and k not in NOT_ENV]
    env = _table(["item", "value"], [[k, _fmt_meta(meta[k])] for k in keys])
    ceilings = meta.get("ceilings") or {}
    if ceilings:
        rows = [[dev, _num((c or {}).get("copy_gbps"), ",.0f"), _num((c or {}).get("gemm_fp32_gflops"), ",.0f"),
                 (c or {}).get("how", "")] for dev, c in ceilings.items()]
        ceil = ("<h3>Measured ceilings</h3><p class='note'>The denominators of % of peak and the roofs of the "
                "roofline.</p>" + _table(["device", "copy (GB/s)", "FP32 GEMM (GFLOP/s)", "how measured"], rows,
                                          num_cols={1, 2}))
    else:
        ceil = "<p class='note'>No ceilings were measured (check-only run): no % of peak, no roofs.</p>"
    return (f"<h2 id='env'>Environment</h2><div class='blocks'><div class='block'>{env}</div>"
            f"<div class='block' style='max-width: 640px'>{ceil}</div></div>")


def error_ratio(df: pd.DataFrame) -> pd.Series:
    """How much of its tolerance each case used: max(err / rtol, viol); <= 1 passes the checker."""
    err = pd.to_numeric(df["err"], errors="coerce")
    rtol = pd.to_numeric(df["rtol"], errors="coerce")
    viol = pd.to_numeric(df["viol"], errors="coerce")
    ratio = (err / rtol.where(rtol > 0)).fillna(0.0)
    return pd.concat([ratio, viol.fillna(0.0)], axis=1).max(axis=1).where(err.notna() | viol.notna())


def correctness_section(df: pd.DataFrame) -> str:
    """Failures first (with their reasons), then per op and pass a matrix of status and error / tolerance."""
    out = ["<h2 id='correctness'>Correctness</h2>",
           "<p class='note'>Every case ran on several seeds against the float64 oracle. A cell shows the status and "
           "the share of the tolerance the worst output used, max(rel. error / rtol, worst element / its bound): "
           "&le; 1 passes. Hover a cell for the reason.</p>"]
    if df.empty:
        return "\n".join([*out, "<p>No cases in this run.</p>"])
    failed = df[df["status"].isin(FAILED_STATUSES)]
    if len(failed):
        rows = [[r["op"], r["pass"], r["impl"], r["shape"], (r["status"], r["status"]), _num(r.get("err"), ".2e"),
                 _num(r.get("rtol"), ".1e"), _text(r.get("reason"))] for _, r in failed.iterrows()]
        out += [f"<h3>Failures ({len(failed)})</h3>",
                _table(["op", "pass", "impl", "shape", "status", "error", "rtol", "reason"], rows, num_cols={5, 6})]
    else:
        out.append("<p><span class='pill ok'>no failures</span></p>")
    ratio = error_ratio(df)
    for op, og in df.groupby("op", sort=False):
        blocks = [f"<div class='block'><h3>{_e(op)} / {_e(pass_)}</h3>{_matrix(g, ratio)}</div>"
                  for pass_, g in og.groupby("pass", sort=False)]
        out.append(f"<div class='blocks'>{''.join(blocks)}</div>")
    skipped = df[df["status"] == "skipped"]
    if len(skipped):
        why = skipped.groupby(["impl", "reason"], sort=False).size().reset_index(name="n")
        out.append(f"<details><summary>{len(skipped)} cases skipped (why)</summary>"
                   + _table(["impl", "reason", "cases"], why.values.tolist(), num_cols={2}) + "</details>")
    return "\n".join(out)


def _matrix(g: pd.DataFrame, ratio: pd.Series) -> str:
    """Implementation x shape table of one (op, pass); implementations skipped on every shape are only named."""
    shapes = figures.shape_order(g)
    labels, caption = figures.shape_labels(shapes)
    bad = set(g.loc[g["status"].isin(FAILED_STATUSES), "impl"])
    ran = set(g.loc[g["status"] != "skipped", "impl"])
    order = figures.impl_order(g)
    impls = sorted((i for i in order if i in ran), key=lambda i: i not in bad)  # failing first, stable otherwise
    head = "".join(f"<th>{_e(labels[s]).replace(chr(10), '<br>')}</th>" for s in shapes)
    rows = []
    for impl in impls:
        r = g[g["impl"] == impl]
        kind = f"{r['device'].iloc[0]} {r['math'].iloc[0]}"
        cells = [f"<th class='impl'>{_e(impl)} <span class='note'>{_e(kind)}</span></th>"]
        for s in shapes:
            c = r[r["shape"] == s]
            if c.empty:
                cells.append("<td></td>")
                continue
            row = c.iloc[0]
            status = row["status"]
            q = ratio.get(c.index[0])
            text = status if q is None or pd.isna(q) or status == "oracle" else f"{status} {_share(q)}"
            tip = _text(row.get("reason")) or f"err {_num(row.get('err'), '.2e')}, rtol {_num(row.get('rtol'), '.1e')}"
            cells.append(f"<td class='{_e(status)}' title='{_e(tip)}'>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<p class='note'>fixed: {_e(caption)}</p>" if caption else ""
    table = (f"<div class='scroll'><table class='matrix'><tr><th class='impl'>implementation</th>{head}</tr>"
             f"{''.join(rows)}</table></div>") if rows else ""
    never = [i for i in order if i not in ran]
    skipped = f"<p class='note'>skipped on every shape: {_e(', '.join(never))}</p>" if never else ""
    return cap + table + skipped


def performance_section(df: pd.DataFrame, meta: dict, run_dir: Path) -> str:
    """Per op and pass: throughput and speedup figures, and the timings as a table (folded)."""
    out = ["<h2 id='performance'>Performance</h2>"]
    t = figures.timed(df)
    if t.empty:
        return "\n".join([*out, "<p>Nothing was timed in this run (check-only, or every case failed or was skipped)."
                                "</p>"])
    graph = " replaying the call as a CUDA graph" if meta.get("timing") == "graph" else ""
    out.append("<p class='note'>Median of repeated calls, each on fresh outputs and rotated inputs. GPU: CUDA events "
               f"around the call on a stream held until the call is enqueued (GPU time, no launch latency){graph}"
               f"{', the L2 cache flushed before every call' if meta.get('l2') == 'flushed' else ''}; host ms is the "
               "wall time of one call up to a device-wide synchronisation. Colours are fixed per implementation "
               "across all figures; a red ! marks a flagged row.</p>")
    for (op, pass_), g in t.groupby(["op", "pass"], sort=False):
        out.append(f"<h3>{_e(op)} / {_e(pass_)}</h3>")
        out.append(_figure_html(figures.throughput_figure(df, meta, op, pass_), run_dir, f"throughput_{op}_{pass_}"))
        out.append(_figure_html(figures.speedup_figure(df, op, pass_), run_dir, f"speedup_{op}_{pass_}"))
        out.append(f"<details><summary>timings table ({len(g)} cases)</summary>{_timings_table(g)}</details>")
    return "\n".join(out)


def _timings_table(g: pd.DataFrame) -> str:
    rows = []
    for _, r in g.iterrows():
        noisy = _float(r.get("rel_iqr")) > figures.NOISY_REL_IQR
        flags = _text(r.get("flags"))
        rows.append([r["impl"], r["math"], r["shape"], _num(r.get("median_ms"), ".4g"), _num(r.get("iqr_ms"), ".2g"),
                     (_num(r.get("rel_iqr"), ".1%"), "noisy" if noisy else ""), _num(r.get("host_ms"), ".4g"),
                     _num(r.get("gflops"), ",.1f"), _num(r.get("gbps"), ",.1f"), _num(r.get("pct_peak"), ".1f"),
                     _num(r.get("speedup"), ".2f", "x"), _text(r.get("baseline")), (flags, "flag" if flags else ""),
                     _text(r.get("note"))])
    return _table(["impl", "math", "shape", "median ms", "IQR ms", "rel IQR", "host ms", "GFLOP/s", "GB/s", "% peak",
                   "speedup", "baseline", "flags", "note"], rows, num_cols={3, 4, 5, 6, 7, 8, 9, 10})


def roofline_section(df: pd.DataFrame, meta: dict, run_dir: Path) -> str:
    out = ["<h2 id='roofline'>Roofline</h2>",
           "<p class='note'>Arithmetic intensity = FLOPs / minimal bytes (every input read once, every output "
           "written once). The roof is min(measured FP32 GEMM rate, measured copy bandwidth &times; intensity) of "
           "each device; a point's distance below it is what is left on the table.</p>"]
    ops = list(dict.fromkeys(figures.timed(df)["op"]))
    if not ops:
        return "\n".join([*out, "<p>No timed cases.</p>"])
    out += [_figure_html(figures.roofline_figure(df, meta, op), run_dir, f"roofline_{op}") for op in ops]
    return "\n".join(out)


def kernels_section(df: pd.DataFrame) -> str:
    """Registers, shared memory and spills of each compiled kernel (as reported by the implementation)."""
    out = ["<h2 id='kernels'>Kernels</h2>"]
    cols = ["kernel_regs", "kernel_smem", "kernel_spill"]
    k = df[df[cols].apply(pd.to_numeric, errors="coerce").notna().any(axis=1)] if set(cols) <= set(df) else df[:0]
    if "kernel_occupancy" not in k:  # run folders written before the column existed
        k = k.assign(kernel_occupancy=float("nan"))
    cols = [*cols, "kernel_occupancy"]
    if k.empty:
        return "\n".join([*out, "<p>No compiled-kernel attributes in this run (CPU implementations, or libraries "
                                "that do not expose them).</p>"])
    k = k.assign(note=k["note"].map(_text))
    groups = k.groupby(["op", "pass", "impl", *cols, "note"], sort=False, dropna=False).size().reset_index(name="n")
    rows = []
    for _, r in groups.iterrows():
        spill = _float(r["kernel_spill"])
        rows.append([r["op"], r["pass"], r["impl"], _num(r["kernel_regs"], ".0f"), _num(r["kernel_smem"], ",.0f"),
                     (_num(spill, ",.0f"), "spill" if spill > 0 else ""), _num(r["kernel_occupancy"], ".0f"),
                     int(r["n"]), r["note"]])
    out += ["<p class='note'>Registers per thread, shared memory per block (static, plus dynamic where the "
            "implementation says how it launches), local-memory (spill) bytes per thread and resident blocks per "
            "SM, from the compiled kernel's attributes; the numbers columns describe the first kernel, the "
            "note lists all of them. Spills are marked red.</p>",
            _table(["op", "pass", "impl", "registers", "shared mem (B)", "spill (B)", "blocks/SM", "shapes",
                    "kernels"], rows, num_cols={3, 4, 5, 6, 7})]
    return "\n".join(out)


def timing_section(df: pd.DataFrame, run_dir: Path) -> str:
    out = ["<h2 id='timing'>Timing quality</h2>"]
    t = figures.timed(df)
    if t.empty:
        return "\n".join([*out, "<p>No timed cases.</p>"])
    out.append(_figure_html(figures.timing_quality_figure(df), run_dir, "timing_quality"))
    rel = pd.to_numeric(t["rel_iqr"], errors="coerce")
    noisy = t[rel > figures.NOISY_REL_IQR].assign(rel=rel).sort_values("rel", ascending=False)
    if noisy.empty:
        out.append(f"<p><span class='pill ok'>no noisy cases</span> every timed case has IQR &le; "
                   f"{figures.NOISY_REL_IQR:.0%} of its median.</p>")
        return "\n".join(out)
    rows = [[r["op"], r["pass"], r["impl"], r["shape"], _num(r["median_ms"], ".4g"), _num(r["iqr_ms"], ".2g"),
             (_num(r["rel"], ".1%"), "noisy"), _num(r.get("reps"), ".0f")] for _, r in noisy.iterrows()]
    out += [f"<p>{len(noisy)} of {len(t)} timed cases are noisy (IQR &gt; {figures.NOISY_REL_IQR:.0%} of the median): "
            "treat their differences with care, or time them again with a larger <code>--budget</code>.</p>",
            _table(["op", "pass", "impl", "shape", "median ms", "IQR ms", "rel IQR", "repeats"], rows,
                   num_cols={4, 5, 6, 7})]
    return "\n".join(out)


# ---------------------------------------------------------------- helpers


def _figure_html(fig, run_dir: Path, name: str) -> str:
    """Save `fig` as <run_dir>/fig_<name>.png and return an <img> with the PNG inlined; '' for no figure."""
    if fig is None:
        return ""
    path = run_dir / f"{FIG_PREFIX}{_safe(name)}.png"
    fig.savefig(path, dpi=110)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_e(name)}' src='data:image/png;base64,{data}'>"


def _share(q: float) -> str:
    """A share of the tolerance: 0.05, 0.8, 3.2, 1,200."""
    return f"{q:.2g}" if q < 10 else f"{q:,.0f}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _table(header: list[str], rows: list[list], num_cols: set[int] = frozenset()) -> str:
    """An HTML table; a cell given as (text, css_class) gets that class."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            classes = " ".join(filter(None, ["num" if j in num_cols else "", cls]))
            cells.append(f"<td class='{classes}'>{_e(_text(text))}</td>" if classes else f"<td>{_e(_text(text))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _num(v, fmt: str, suffix: str = "") -> str:
    f = _float(v)
    return f"{f:{fmt}}{suffix}" if math.isfinite(f) else "-"


def _text(v) -> str:
    """A cell's text; NaN (an empty CSV cell) is ''."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _fmt_meta(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt_meta(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt_meta(x) for x in v)
    return _text(v)


# ---------------------------------------------------------------- CLI


def cmd_report(args) -> int:
    print(build_report(args.run_dir))
    return 0


def add_commands(subparsers) -> None:
    """Adds `report RUN_DIR` to the harness CLI."""
    p = subparsers.add_parser("report", help="build report.html (and its PNGs) for a run folder")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by 'python -m harness run'")
    p.set_defaults(func=cmd_report)
