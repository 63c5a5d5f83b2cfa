"""The report's figures: one function per figure, each taking a run's results (and metadata) and returning a Figure.

Every figure colours an implementation the same way (`impl_color`, a fixed palette keyed by name), labels its axes
with units and switches to a log scale when the values span more than a decade, so that figures can be read side
by side. The functions never save or show anything: `harness.report.html` writes the PNGs, a notebook displays them.
They build bare matplotlib Figures, not pyplot ones, so no GUI backend is ever involved: saving renders with Agg,
and a run of many figures keeps no global state.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

NOISY_REL_IQR = 0.1  # a case whose IQR is more than 10 % of its median is marked noisy

# One colour per implementation name, in every figure of every report. Families share a hue: the vendor
# libraries are blues/purples (TF32 twins lighter), the project's own GPU kernels warm colours, the CPU greys/browns.
PALETTE = {
    "numpy_ref": "#7f7f7f",
    "numpy_opt": "#8c564b",
    "torch_cpu": "#c49c94",
    "cupy_naive": "#ff7f0e",
    "cupy_opt": "#2ca02c",
    "cupy_im2col_cublas": "#17becf",
    "cudnn": "#1f77b4",
    "cudnn_tf32": "#9ecae1",
    "cublas": "#6a3d9a",
    "cublas_tf32": "#cab2d6",
    "torch": "#d62728",
    "torch_tf32": "#ff9896",
}
# Names not in PALETTE get one of these, chosen by a hash of the name, so it is stable across figures and runs.
_SPARE = ["#e377c2", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
          "#31a354", "#756bb1", "#636363", "#fd8d3c", "#74c476"]

PASS_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
TIMED_STATUSES = ("pass", "oracle")


def impl_color(name: str) -> str:
    """The colour of implementation `name` in every figure."""
    return PALETTE.get(name) or _SPARE[zlib.crc32(name.encode()) % len(_SPARE)]


def palette_for(names) -> dict[str, str]:
    return {n: impl_color(n) for n in names}


def timed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that were checked and timed (a finite median time)."""
    if "median_ms" not in df:
        return df.iloc[0:0]
    ms = pd.to_numeric(df["median_ms"], errors="coerce")
    return df[df["status"].isin(TIMED_STATUSES) & np.isfinite(ms) & (ms > 0)]


PAIRED_KEYS = (("H", "W"), ("R", "S"), ("P", "Q"))  # written together as HxW=7x9 when both are shown


def shape_labels(shapes: list[str], per_line: int = 3) -> tuple[dict[str, str], str]:
    """Short tick labels for shape strings `K=V,K=V,...`: only the keys that vary (`per_line` of them per line);
    the fixed ones as a caption. With one shape every key is fixed, so its label is the whole shape, no caption.
    """
    parsed = {s: dict(p.split("=", 1) for p in s.split(",") if "=" in p) for s in shapes}
    if len(shapes) <= 1:
        return {s: _wrap(_items(d, list(d)), per_line) for s, d in parsed.items()}, ""
    keys = list(dict.fromkeys(k for d in parsed.values() for k in d))
    varying = [k for k in keys if len({d.get(k) for d in parsed.values()}) > 1]
    fixed = [k for k in keys if k not in varying]
    first = next(iter(parsed.values()))
    labels = {s: _wrap(_items(d, varying), per_line) for s, d in parsed.items()}
    return labels, ", ".join(_items(first, fixed))


def _items(values: dict[str, str], keys: list[str]) -> list[str]:
    """`K=V` items for the `keys` this shape string has (a conv with one stride has `stride`, another `stride_h`
    and `stride_w`: each label shows its own), with each of PAIRED_KEYS merged into one `HxW=7x9` item."""
    keys = [k for k in keys if k in values]
    items, done = [], set()
    for k in keys:
        if k in done:
            continue
        pair = next((p for p in PAIRED_KEYS if k in p and all(x in keys for x in p)), None)
        if pair:
            items.append(f"{pair[0]}x{pair[1]}={values[pair[0]]}x{values[pair[1]]}")
            done.update(pair)
        else:
            items.append(f"{k}={values[k]}")
    return items


def _wrap(items: list[str], per_line: int) -> str:
    return "\n".join(" ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def shape_order(df: pd.DataFrame) -> list[str]:
    """Shapes in the order the run met them (the shape set's own order: model layers, sizes)."""
    return list(dict.fromkeys(df["shape"]))


def impl_order(df: pd.DataFrame) -> list[str]:
    """Implementations in one fixed order everywhere: PALETTE's (oracle, CPU, own GPU kernels, vendors), then by
    name."""
    known = list(PALETTE)
    names = set(df["impl"])
    return [n for n in known if n in names] + sorted(names - set(known))


def throughput_metric(df: pd.DataFrame, op: str) -> tuple[str, str]:
    """("gflops", "GFLOP/s") for compute-bound ops, ("gbps", "GB/s") for memory-bound ones (from the op spec)."""
    try:
        from harness.ops import get_op

        bound = get_op(op).bound
    except Exception:  # an op this checkout does not know: guess from the run's own peak labels
        kinds = " ".join(str(k) for k in df.get("peak_kind", pd.Series(dtype=str)).dropna())
        bound = "memory" if "copy" in kinds else "compute"
    return ("gbps", "GB/s") if bound == "memory" else ("gflops", "GFLOP/s")


def _log_if_wide(ax, values, axis: str = "y") -> None:
    """Log scale when the positive values span more than a decade, with headroom above the largest value
    (for the ceiling labels)."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if not v.size:
        return
    if v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        if axis == "y":
            ax.set_ylim(v.min() / 2, v.max() * 3)
    elif axis == "y":
        ax.set_ylim(0, v.max() * 1.15)


def log_ticks(ax, formatter=None, axis: str = "y") -> None:
    """Label a log axis with `formatter` at the decades, and also at 2 and 5 when it spans under three decades
    (otherwise such an axis would show two labels or fewer)."""
    formatter = formatter or PLAIN
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(formatter)
    if hi / lo < 1000:
        target.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
        target.set_minor_formatter(formatter)
    else:
        target.set_minor_formatter(ticker.NullFormatter())


PLAIN = ticker.FuncFormatter(lambda v, _: f"{v:g}")


def _legend_outside(ax, handles=None, labels=None, title: str = "implementation") -> None:
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _ceilings(meta: dict) -> dict[str, dict]:
    """meta["ceilings"] as {device: {"copy_gbps": float, "gemm_fp32_gflops": float}}, numeric entries only."""
    out = {}
    for dev, c in (meta.get("ceilings") or {}).items():
        if isinstance(c, dict):
            nums = {k: float(v) for k, v in c.items() if isinstance(v, (int, float)) and v > 0}
            if nums:
                out[dev] = nums
    return out


def _bars(ax, data: pd.DataFrame, y: str, shapes: list[str], labels: dict[str, str]) -> None:
    """Grouped bars, one group per shape; a bar whose row carries plausibility flags gets a red '!' on top."""
    impls = impl_order(data)
    import seaborn as sns  # here, not at import: it costs most of a second and only bar charts need it

    sns.barplot(data=data, x="shape", y=y, hue="impl", order=shapes, hue_order=impls,
                palette=palette_for(impls), ax=ax, errorbar=None, saturation=1.0)
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels([labels[s] for s in shapes], fontsize=9)
    flagged = data[flagged_rows(data)]
    width = 0.8 / len(impls)  # seaborn's dodge: the group's 0.8 shared by the hue levels
    for _, r in flagged.iterrows():
        x = shapes.index(r["shape"]) - 0.4 + (impls.index(r["impl"]) + 0.5) * width
        ax.annotate("!", (x, float(r[y])), ha="center", va="bottom", color="#c00000", fontsize=11,
                    fontweight="bold")


def flagged_rows(df: pd.DataFrame) -> pd.Series:
    """True for rows whose `flags` column names a reason (see harness.measure.plausibility)."""
    if "flags" not in df:
        return pd.Series(False, index=df.index)
    return df["flags"].map(lambda v: isinstance(v, str) and v.strip() != "").astype(bool)


def _new(width: float, height: float) -> tuple[Figure, Axes]:
    """A bare Figure (no pyplot: no global state, no GUI backend; saving renders it with Agg)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


MAX_WIDTH_IN = 16.0
COMFORT_WIDTH_IN = 12.5  # about the report page's width at 110 dpi: labels may widen a figure up to this
MARGIN_IN = 2.8  # y axis, its label and the legend


def _bar_figure(shapes: list[str], n_impls: int) -> tuple[Figure, Axes, dict[str, str], str]:
    """A bar-chart figure for one group of `n_impls` bars per shape, with horizontal tick labels wrapped to as
    many `K=V` items per line as fit under their group; wider for more groups, up to MAX_WIDTH_IN."""
    group_in = max(0.9, 0.2 * n_impls + 0.3)
    slot_in = min(max(group_in, (COMFORT_WIDTH_IN - MARGIN_IN) / len(shapes)), (MAX_WIDTH_IN - MARGIN_IN) / len(shapes))
    for per_line in (4, 3, 2, 1):
        labels, caption = shape_labels(shapes, per_line)
        label_in = 0.085 * max(len(line) for t in labels.values() for line in t.split("\n"))
        if label_in <= slot_in:
            break
    width = MARGIN_IN + len(shapes) * max(group_in, label_in)
    fig, ax = _new(min(max(width, 7.5), MAX_WIDTH_IN), 4.8)
    return fig, ax, labels, caption


def throughput_figure(df: pd.DataFrame, meta: dict, op: str, pass_: str) -> Figure | None:
    """Bars: achieved GFLOP/s (compute-bound op) or GB/s (memory-bound) per implementation per shape, with the
    measured ceilings of each device as dashed lines. None when nothing of (op, pass) was timed."""
    rows = timed(df[(df["op"] == op) & (df["pass"] == pass_)])
    if rows.empty:
        return None
    metric, unit = throughput_metric(rows, op)
    shapes = shape_order(rows)
    fig, ax, labels, caption = _bar_figure(shapes, rows["impl"].nunique())
    _bars(ax, rows, metric, shapes, labels)
    values = list(rows[metric])
    key = "copy_gbps" if metric == "gbps" else "gemm_fp32_gflops"
    for dev, c in _ceilings(meta).items():
        if key in c and dev in set(rows["device"]):
            ax.axhline(c[key], color="black", ls="--" if dev == "gpu" else ":", lw=1)
            ax.annotate(f"{dev} ceiling {c[key]:,.0f} {unit}", (0.01, c[key]), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=9)
            values.append(c[key])
    _log_if_wide(ax, values)
    if ax.get_yscale() == "log":
        log_ticks(ax, PLAIN)
    ax.set_ylabel(f"throughput ({unit}, higher is better)")
    ax.set_xlabel(f"shape ({caption})" if caption else "shape")
    ax.set_title(f"{op} / {pass_}: {'FLOP rate' if metric == 'gflops' else 'memory throughput'} per implementation")
    _legend_outside(ax)
    return fig


def speedup_figure(df: pd.DataFrame, op: str, pass_: str) -> Figure | None:
    """Bars: each implementation's speedup over the op's baseline (same math mode) per shape, log scale, 1x line.
    None when the run recorded no speedups for (op, pass)."""
    rows = timed(df[(df["op"] == op) & (df["pass"] == pass_)])
    if rows.empty or "speedup" not in rows:
        return None
    rows = rows[pd.to_numeric(rows["speedup"], errors="coerce") > 0]
    baselines = sorted(set(rows["baseline"].dropna().astype(str)))
    others = rows[rows["impl"] != rows["baseline"]]
    if others.empty:
        return None
    shapes = shape_order(others)
    fig, ax, labels, caption = _bar_figure(shapes, others["impl"].nunique())
    _bars(ax, others, "speedup", shapes, labels)
    ax.axhline(1.0, color="black", lw=1)
    ax.set_yscale("log")
    sp = others["speedup"].astype(float)
    ax.set_ylim(min(sp.min(), 1.0) / 1.6, max(sp.max(), 1.0) * 1.6)
    log_ticks(ax, ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_ylabel("speedup over baseline (x, log; > 1 is faster)")
    ax.set_xlabel(f"shape ({caption})" if caption else "shape")
    ax.set_title(f"{op} / {pass_}: speedup over {', '.join(baselines)} (baseline = 1x)")
    _legend_outside(ax)
    return fig


def roofline_figure(df: pd.DataFrame, meta: dict, op: str) -> Figure | None:
    """Roofline of one op: arithmetic intensity (FLOP per minimal byte) against achieved GFLOP/s, every pass and
    shape a point (colour = implementation, marker = pass), under each device's measured roof
    min(compute ceiling, bandwidth x intensity). None when nothing of `op` was timed with a FLOP count."""
    rows = timed(df[df["op"] == op])
    flops, nbytes = pd.to_numeric(rows["flops"], errors="coerce"), pd.to_numeric(rows["bytes"], errors="coerce")
    rows = rows[(flops > 0) & (nbytes > 0)]
    if rows.empty:
        return None
    rows = rows.assign(ai=rows["flops"] / rows["bytes"])
    fig, ax = _new(10, 6)
    passes = list(dict.fromkeys(rows["pass"]))
    impls = impl_order(rows)
    for (impl, pass_), g in rows.groupby(["impl", "pass"], sort=False):
        ax.scatter(g["ai"], g["gflops"], color=impl_color(impl), marker=PASS_MARKERS[passes.index(pass_) % 7],
                   s=46, edgecolor="black", linewidth=0.4, zorder=3)
    lo, hi = rows["ai"].min() / 3, rows["ai"].max() * 3
    ys = list(rows["gflops"])
    x = np.logspace(math.log10(lo), math.log10(hi), 200)
    roofs = []
    for dev, c in _ceilings(meta).items():
        if dev not in set(rows["device"]) or not ({"copy_gbps", "gemm_fp32_gflops"} & c.keys()):
            continue
        bw, peak = c.get("copy_gbps", math.inf), c.get("gemm_fp32_gflops", math.inf)
        roof = np.minimum(peak, bw * x)
        style = "--" if dev == "gpu" else ":"
        ax.plot(x, roof, color="black", ls=style, lw=1.4, zorder=2)
        ys += [float(roof.min()), float(roof.max())]
        parts = [f"{bw:,.0f} GB/s" if math.isfinite(bw) else "", f"{peak:,.0f} GFLOP/s" if math.isfinite(peak) else ""]
        roofs.append(Line2D([], [], color="black", ls=style, label=f"{dev} roof: {', '.join(p for p in parts if p)}"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ymin, ymax = min(y for y in ys if y > 0), max(ys)
    ax.set_ylim(ymin / 3, ymax * 3)
    ax.set_xlim(lo, hi)
    log_ticks(ax, PLAIN, "x")
    log_ticks(ax, PLAIN, "y")
    ax.set_xlabel("arithmetic intensity (FLOP per minimal byte moved, log)")
    ax.set_ylabel("achieved GFLOP/s (log)")
    ax.set_title(f"{op}: roofline" + (" (measured ceilings)" if roofs else ", no ceilings measured"))
    ax.grid(True, which="major", alpha=0.3)
    handles = [Patch(facecolor=impl_color(i), edgecolor="black", linewidth=0.4, label=i) for i in impls]
    handles += [Line2D([], [], ls="", marker=PASS_MARKERS[k % 7], color="white", markeredgecolor="black", label=p)
                for k, p in enumerate(passes)]
    _legend_outside(ax, handles + roofs, [h.get_label() for h in handles + roofs], title="implementation / pass")
    return fig


def timing_quality_figure(df: pd.DataFrame) -> Figure | None:
    """Relative IQR (IQR / median) of every timed case against its median time, colour = implementation; cases
    above NOISY_REL_IQR fall in the shaded band and get a red ring. None when nothing was timed."""
    rows = timed(df)
    rows = rows[np.isfinite(pd.to_numeric(rows["rel_iqr"], errors="coerce"))]
    if rows.empty:
        return None
    rel = rows["rel_iqr"].clip(lower=1e-4)
    fig, ax = _new(10, 5)
    for impl in impl_order(rows):
        g = rows["impl"] == impl
        ax.scatter(rows.loc[g, "median_ms"], rel[g], color=impl_color(impl), s=30, label=impl, zorder=3,
                   edgecolor="black", linewidth=0.3)
    noisy = rel > NOISY_REL_IQR
    if noisy.any():
        ax.scatter(rows.loc[noisy, "median_ms"], rel[noisy], s=110, facecolor="none", edgecolor="red", linewidth=1.4,
                   zorder=4, label=f"noisy ({int(noisy.sum())})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = max(float(rel.max()) * 2, NOISY_REL_IQR * 3)
    ax.set_ylim(min(float(rel.min()) / 2, NOISY_REL_IQR / 10), top)
    ax.axhspan(NOISY_REL_IQR, top, color="red", alpha=0.07, zorder=1)
    ax.axhline(NOISY_REL_IQR, color="red", lw=1, ls="--")
    ax.annotate(f"noisy: IQR > {NOISY_REL_IQR:.0%} of median", (0.01, NOISY_REL_IQR),
                xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="red")
    log_ticks(ax, ticker.PercentFormatter(xmax=1.0, decimals=None))
    ax.set_xlabel("median time per call (ms, log)")
    ax.set_ylabel("relative IQR (IQR / median, %, log)")
    ax.set_title("Timing quality: spread of the repeated measurements of every case")
    ax.grid(True, which="major", alpha=0.3)
    _legend_outside(ax)
    return fig
