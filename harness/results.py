"""Tidy results: one row per (op, pass, impl, shape), appended to results.csv as each case finishes, plus meta.json.

An interrupted run keeps every row it wrote. `load_run` reads a run folder back into a DataFrame and its metadata,
`load_runs` several into one table (what the notebooks use), `runs_from_env` finds the folders a notebook should read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path

import pandas as pd

from harness.errors import UsageError, one_line
from harness.registry import RENAMED

COLUMNS = [
    "op", "pass", "impl", "device", "math", "shape_set", "shape", "status", "reason",
    "err", "viol", "rtol", "seeds",
    "median_ms", "iqr_ms", "min_ms", "reps", "rel_iqr", "host_ms", "host_ref_ms", "host_wait", "timing",
    "flops", "bytes", "gflops", "gbps", "busbw_gbps", "peak_kind", "pct_peak",
    "baseline", "speedup", "flags", "sm_clock_mhz", "clock_reasons",
    "kernel_regs", "kernel_smem", "kernel_spill", "kernel_occupancy", "note",
]


def new_run_dir(out: str | os.PathLike | None = None, prefix: str = "", root: str | os.PathLike = "reports") -> Path:
    """`out` when given (--out), else a new, unique <root>/[<prefix>-]<UTC timestamp>: every command's run folder."""
    if out:
        return Path(out)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"{prefix}-{stamp}" if prefix else stamp
    path, n = Path(root) / name, 1
    while path.exists():
        n += 1
        path = Path(root) / f"{name}-{n}"
    return path


class ResultWriter:
    """Appends rows to `<run_dir>/results.csv`, flushing after each so that nothing measured is lost."""

    def __init__(self, run_dir: Path, resume: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "results.csv"
        self.rows: list[dict] = self._kept() if resume and self.path.is_file() else []
        self._file = self.path.open("a" if self.rows else "w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="raise")
        if not self.rows:
            self._csv.writeheader()
        self._file.flush()

    def _kept(self) -> list[dict]:
        """The rows of an interrupted run, to go on from (a last line cut off mid-row is dropped)."""
        text = self.path.read_text()
        if text.split("\n", 1)[0] != ",".join(COLUMNS):
            raise UsageError(f"{self.path}: written by another version of the harness (other columns); cannot "
                             "resume it, choose another --out")
        complete = _complete_lines(self.path)
        if complete != text:
            self.path.write_text(complete)
        df, _ = load_run(self.run_dir)
        return [{c: ("" if pd.isna(v) else v) for c, v in r.items()} for r in df.to_dict("records")]

    def write(self, row: dict) -> None:
        full = {c: row.get(c, "") for c in COLUMNS}
        self._csv.writerow(full)
        self._file.flush()
        self.rows.append(full)

    def close(self) -> None:
        self._file.close()


REQUIRED = ("op", "pass", "impl", "shape", "status")  # the columns a results table cannot do without
RUN_FILES = ("results.csv", "meta.json", "history.csv", "train_bench.csv", "scaling.csv")  # what marks a run folder


def check_out(out: str | os.PathLike | None, force: bool = False) -> None:
    """Refuse, before any work, an --out that would lose data or cannot be written: a file, a folder that already
    holds a run (unless `force`), a place this user cannot create folders in. One-line UsageErrors."""
    if not out:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: is a file, not a folder")
    held = [f for f in RUN_FILES if (path / f).exists()] if path.is_dir() else []
    if held and not force:
        raise UsageError(f"--out {path} holds a run already ({held[0]}); choose another folder, or --force to "
                         "replace it")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not can_write_in(parent):
        raise UsageError(f"--out {path}: cannot create or write a folder under {parent}")


def can_write_in(folder: Path) -> bool:
    """Whether this process can create entries in `folder`, by trying: permissions (and root) say little about
    /proc, read-only mounts or full disks."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".harness-probe-"))
    except OSError:
        return False
    return True


def write_meta(run_dir: Path, meta: dict) -> None:
    """<run_dir>/meta.json: what every command records beside its results (base_meta plus its own settings)."""
    (Path(run_dir) / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def base_meta(argv: list[str]) -> dict:
    """Date, host, CPU and library versions; GPU fields are added by the GPU side when it runs."""
    import matplotlib
    import numpy

    meta = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m harness", *argv]),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "matplotlib": matplotlib.__version__,
    }
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        meta["blas"] = cfg.get("Build Dependencies", {}).get("blas", {}).get("name", "")
    except Exception:  # older NumPy without mode="dicts"
        pass
    return meta


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """The results table and metadata of a run folder; a missing folder or file is a UsageError."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "results.csv"
    if not csv_path.is_file():
        raise UsageError(f"{csv_path}: no such file (is '{run_dir}' a run folder made by 'harness run'?)")
    try:
        df = pd.read_csv(io.StringIO(_complete_lines(csv_path)), keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{csv_path}: not a results table ({one_line(exc, 120)})") from None
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise UsageError(f"{csv_path}: not a results table of 'harness run' (no column {', '.join(missing)})")
    if "impl" in df:  # runs made before a rename read with today's names
        df["impl"] = df["impl"].replace(RENAMED)
    meta_path = run_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{meta_path}: damaged ({one_line(exc, 120)})") from None
    return df, meta


def _complete_lines(csv_path: Path) -> str:
    """The file's text without a last line cut off mid-row (a run killed while writing), saying so on stderr."""
    try:
        text = csv_path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{csv_path}: not a results table (not text)") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        print(f"note: {csv_path}: its last line was cut off (an interrupted run?) and is left out", file=sys.stderr)
    return text


def load_runs(run_dirs) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Several run folders as one table with a `run` column (the folder's name), and their metadata by run."""
    frames, metas = [], {}
    for d in run_dirs:
        df, meta = load_run(d)
        name = Path(d).name
        frames.append(df.assign(run=name))
        metas[name] = meta
    if not frames:
        raise UsageError("no run folders given")
    return pd.concat(frames, ignore_index=True), metas


def runs_from_env(var: str = "HARNESS_RUN", root: str | os.PathLike = "reports") -> list[Path]:
    """The run folders named in $`var` (separated by os.pathsep or commas), else the run under `root` written last."""
    value = os.environ.get(var, "").strip()
    if value:
        return [Path(p) for p in value.replace(",", os.pathsep).split(os.pathsep) if p]
    results = sorted(Path(root).glob("*/results.csv"), key=lambda p: p.stat().st_mtime)
    if not results:
        raise UsageError(f"no run folder: set {var}=<run folder> or make one with 'python -m harness run'")
    return [results[-1].parent]
