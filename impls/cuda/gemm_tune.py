"""cupy_opt's tile configurations (gemm_warptile.cu) and the per-shape autotuner that picks one.

The first call for a key (device name, layout, M, N, K, bias, ReLU, operand alignment) times every configuration
that applies on the call's own buffers (CUDA events behind a stream hold, a few repetitions each, median), keeps
the fastest, and writes the choice to an in-memory table and to a JSON file (~/.cache/kernel-harness/gemm-tune.json,
one section per device name), so later calls, and later processes on the same kind of device, launch it directly.
The final launch of a tuning call is the chosen one, so its outputs are that configuration's. Timed calls never
tune: the harness's checker makes the first call of every shape.

Environment: KH_GEMM_TUNE=0 turns tuning off (a fixed rule picks the configuration, `heuristic`);
KH_GEMM_TUNE_CACHE=<path> moves the cache file ("" keeps choices in memory only).

Everything here but `tune` and `choose` runs without a GPU, so the selection logic is tested on the CPU.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

PAD = 4  # gemm_warptile.cu's row padding of the shared tiles, in floats
REPS = 5  # timed launches per configuration while tuning (after one warm-up launch)
HOLD_S = 1.0  # the stream hold's timeout while they are enqueued
DEFAULT_CACHE = Path("~/.cache/kernel-harness/gemm-tune.json")


@dataclass(frozen=True)
class Tile:
    """One CONFIG line of gemm_warptile.cu's SGEMM_WT_TABLE: block tile, K slice, pipeline depth, threads and the
    blocks per SM its __launch_bounds__ guarantees."""

    name: str
    bm: int
    bn: int
    bk: int
    stages: int
    threads: int
    min_blocks: int

    @property
    def smem(self) -> int:
        """Dynamic shared memory of one block: STAGES × BK × ((BM + PAD) + (BN + PAD)) floats."""
        return self.stages * self.bk * (self.bm + PAD + self.bn + PAD) * 4


TILES = {t.name: t for t in (
    Tile("b128x128k16s3", 128, 128, 16, 3, 256, 2),
    Tile("b128x128k8s3", 128, 128, 8, 3, 256, 2),
    Tile("b128x64k16s4", 128, 64, 16, 4, 128, 4),
    Tile("b64x64k16s4", 64, 64, 16, 4, 128, 4),
    Tile("b128x256k16s3", 128, 256, 16, 3, 256, 1),  # v7
    Tile("b128x256k32s2", 128, 256, 32, 2, 256, 1),  # v7
)}
V6_TILES = ("b128x128k16s3", "b128x128k8s3", "b128x64k16s4", "b64x64k16s4")  # cupy_v6_warptile's table
SPLITS = (1, 2, 4, 8, 16)  # split-K factors tried when the output's tiles leave resident-block slots idle
WIDE_SPLITS = (*SPLITS, 32, 64, 128)  # ... for a long reduction onto few tiles (conv2d wgrad: over the pixels)
MIN_K_PER_SPLIT = 128  # each K slice keeps at least 8 BK = 16 steps of pipeline


@dataclass(frozen=True)
class Config:
    """A tile and a split-K factor: what one launch plan of cupy_opt is."""

    tile: Tile
    splits: int = 1

    @property
    def name(self) -> str:
        return self.tile.name if self.splits == 1 else f"{self.tile.name}_split{self.splits}"


def parse(name: str) -> Config:
    """The Config named `name` (as Config.name writes it); KeyError for an unknown one."""
    tile, _, split = name.partition("_split")
    return Config(TILES[tile], int(split) if split else 1)


def tiles(tile: Tile, m: int, n: int) -> int:
    """Output tiles of an m×n product."""
    return -(-m // tile.bm) * -(-n // tile.bn)


def wave_fill(blocks: int, slots: int) -> float:
    """The share of the resident-block slots (SMs × blocks per SM) that `blocks` keep busy over their waves: a grid
    of 98 blocks on 132 SMs at one block each fills 74 % of its one wave (wave quantization)."""
    return blocks / (-(-blocks // slots) * slots)


def k_per_split(k: int, splits: int, bk: int) -> int:
    """K elements per split, a multiple of BK so that every slice but the last is whole BK steps."""
    per = -(-k // splits)
    return -(-per // bk) * bk


def candidates(m: int, n: int, k: int, sms: int, smem_limit: int,
               names: tuple[str, ...] | None = None, batch: int = 1, splittable: bool = True,
               splits: Sequence[int] = SPLITS) -> list[Config]:
    """The configurations worth timing for an m×n×k product on a device with `sms` SMs and `smem_limit` bytes of
    opt-in shared memory per block (only the tiles in `names` when given).

    A tile applies when it fits the shared memory and is not larger than the problem in both directions (except
    the smallest tile, which always applies). Split-K applies when the smallest tile's blocks fill less than one
    wave (SMs × the blocks per SM its launch bounds guarantee: 528 of 64×64 on an H200, where ResNet-50's 7² layers
    have 200) and each split keeps at least MIN_K_PER_SPLIT of K, up to two waves of blocks; it is only combined
    with the smallest tile, and the tuner times it against the unsplit tiles. The batched kernels (`splittable`
    False; `batch` products on grid.z) are never split, also for a batch of one (a 1x1 layer at batch 1). `splits`:
    the factors to try (WIDE_SPLITS for conv2d wgrad's long reductions)."""
    fitting = [t for t in TILES.values() if t.smem <= smem_limit and (names is None or t.name in names)]
    smallest = min(fitting, key=lambda t: t.bm * t.bn)
    out = [Config(t) for t in fitting if t is smallest or t.bm <= m or t.bn <= n]
    wave = sms * smallest.min_blocks
    if splittable and batch == 1 and tiles(smallest, m, n) < wave:
        for s in splits[1:]:
            if k >= s * MIN_K_PER_SPLIT and tiles(smallest, m, n) * s <= 2 * wave:
                out.append(Config(smallest, s))
    return out


def heuristic(m: int, n: int, k: int, sms: int, smem_limit: int, batch: int = 1, splittable: bool = True) -> Config:
    """The configuration used without tuning: the largest v6 tile of at most 128×128 that still gives every SM a
    block, else the smallest tile with the split-K factor that brings the block count closest to one wave."""
    cands = candidates(m, n, k, sms, smem_limit, names=V6_TILES, batch=batch, splittable=splittable)
    whole = [c for c in cands if c.splits == 1 and tiles(c.tile, m, n) * batch >= sms]
    if whole:
        return max(whole, key=lambda c: c.tile.bm * c.tile.bn)
    return min(cands, key=lambda c: (abs(tiles(c.tile, m, n) * c.splits - sms), -c.tile.bm * c.tile.bn))


def key(layout: str, m: int, n: int, k: int, bias: bool, relu: bool, vec: tuple[bool, ...], batch: int = 1) -> str:
    """The cache key of one product: layout (nn, nt, tn; bnn, btn batched), sizes, epilogue and operand alignment
    flags, and the batch of products where there is one."""
    batched = f" batch={batch}" if batch > 1 else ""
    return f"{layout} {m}x{n}x{k}{batched} bias={int(bias)} relu={int(relu)} vec={''.join(str(int(v)) for v in vec)}"


def enabled() -> bool:
    """Whether first calls tune (KH_GEMM_TUNE, default on)."""
    return os.environ.get("KH_GEMM_TUNE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_path() -> Path | None:
    """The JSON file of tuned choices (KH_GEMM_TUNE_CACHE; empty: none, memory only)."""
    value = os.environ.get("KH_GEMM_TUNE_CACHE")
    if value is None:
        return DEFAULT_CACHE.expanduser()
    return Path(value).expanduser() if value.strip() else None


class TuneCache:
    """Tuned choices by device name and key, in memory and in the JSON file at `path` (None: memory only).

    The file holds {device name: {key: choice name}}; it is read once, and rewritten (merged with what another
    process may have added meanwhile, through a temporary file and a rename) after every new choice. A file that
    does not parse, or names a choice this source does not have, is ignored entry by entry. `parse` turns a stored
    name into the choice (KeyError or ValueError: not one of them): a gemm Config by default; other tuners
    (conv2d_winograd.py's algorithm per layer) keep their own keys in the same file."""

    def __init__(self, path: Path | None, parse: Callable[[str], object] = parse):
        self.path = path
        self.parse = parse
        self.choices: dict[str, dict[str, str]] = self._read()

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {dev: {k: v for k, v in entries.items() if isinstance(v, str)}
                for dev, entries in data.items() if isinstance(entries, dict)}

    def get(self, device: str, k: str):
        name = self.choices.get(device, {}).get(k)
        if name is None:
            return None
        try:
            return self.parse(name)
        except (KeyError, ValueError):
            return None

    def put(self, device: str, k: str, choice) -> None:
        """Store `choice` (a Config, or a name: its `name` attribute or its string)."""
        self.choices.setdefault(device, {})[k] = getattr(choice, "name", choice)
        if self.path is None:
            return
        merged = self._read()
        for dev, entries in self.choices.items():
            merged.setdefault(dev, {}).update(entries)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only home keeps the choice in memory only


C = TypeVar("C")  # what a tuner chooses among: a gemm Config, an algorithm's name


def fastest(times: dict[C, list[float]]) -> C:
    """The candidate with the smallest median time (ties: the first timed)."""
    return min(times, key=lambda c: statistics.median(times[c]))


@functools.cache
def _hold():
    """The harness's stream hold (harness.measure.hold), built once per process."""
    from harness.measure.hold import StreamHold

    return StreamHold()


def tune(cands: Sequence[C], launch: Callable[[C], None]) -> tuple[C, dict[C, float]]:
    """Time launch(c) for every candidate with CUDA events on the current stream (one warm-up, REPS timed, median
    ms), then launch the fastest once more so that the outputs are its own. Returns (choice, median ms each).

    The timed launches are enqueued behind the harness's stream hold, so each interval is the kernels' GPU time:
    without it a launch of ~20 us was timed as Python's time to enqueue it, and the choice on small products was
    noise (an H200 run picked 128×64 tiles for 512³, 1.7x slower than the 64×64 tile the sweep ranks first)."""
    import cupy

    if len(cands) == 1:
        launch(cands[0])
        return cands[0], {}
    stream = cupy.cuda.get_current_stream()
    times: dict[C, list[float]] = {}
    for c in cands:
        launch(c)  # warm-up: module load, shared-memory attribute
        events = [(cupy.cuda.Event(), cupy.cuda.Event()) for _ in range(REPS)]
        _hold().hold(stream, HOLD_S)
        for start, end in events:
            start.record(stream)
            launch(c)
            end.record(stream)
        _hold().release()
        end.synchronize()
        times[c] = [cupy.cuda.get_elapsed_time(s, e) for s, e in events]
    choice = fastest(times)
    launch(choice)
    return choice, {c: statistics.median(t) for c, t in times.items()}


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """A TuneCache parse for choices that are names (conv2d_winograd.py's variants, cupy_opt's conv variants):
    the name itself, KeyError for one not in `choices`."""
    def parse(name: str) -> str:
        if name not in choices:
            raise KeyError(f"unknown choice {name!r}: {', '.join(choices)}")
        return name
    return parse


def with_times(times: dict) -> str:
    """How a choice among named variants was made, for the row's note: each one's median time."""
    return "tuned: " + ", ".join(f"{c} {t:.3f} ms" for c, t in times.items())


def keep_tuned(previous: tuple | None, result: tuple) -> tuple:
    """(choice, how) for a row's note: a "cached" call of the choice this process tuned keeps the tuning's how (its
    times), so that the timed calls' note still says why (the checker's first call is the one that tunes)."""
    if previous is not None and result[1] == "cached" and previous[0] == result[0]:
        return previous
    return result


def _tuned_over(times: dict) -> str:
    return f"tuned over {len(times)}" if times else "only candidate"


def choose(cache: TuneCache, device: str, k: str, cands: Callable[[], Sequence[C]], launch: Callable[[C], None],
           untuned: Callable[[], tuple[C, str]], describe: Callable[[dict[C, float]], str] = _tuned_over,
           ) -> tuple[C, str]:
    """Run launch(choice) once with the choice cached for key `k` on `device`; without one, tune over cands()
    (when tuning is on and the current stream is not being captured into a graph: timing would break the
    capture) and cache the winner, else take untuned() (choice, how). Returns (choice, how it was chosen:
    "cached", describe(the tuner's median ms each), or untuned's how). The tuner's last launch is the choice's,
    so the outputs are its own either way."""
    import cupy

    choice = cache.get(device, k)
    if choice is not None:
        launch(choice)
        return choice, "cached"
    if enabled() and not cupy.cuda.get_current_stream().is_capturing():
        choice, times = tune(list(cands()), launch)
        cache.put(device, k, choice)
        return choice, describe(times)
    choice, how = untuned()
    launch(choice)
    return choice, how
