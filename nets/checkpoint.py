"""--save / --resume: everything a run needs to continue as if it had never stopped.

A checkpoint is one .npz file: every parameter (exactly, in the network's dtype) under `param/<name>`, and a JSON
document under `meta` with the model, data and backend settings, the completed epoch count, the optimiser's step
count, the shuffling RNG's full state (NumPy PCG64) and the per-epoch history. Checkpoints are written at the end
of an epoch, to a temporary file first and then renamed, so an interrupted save never leaves a broken file.
Resuming restores all of it; since every step is deterministic given the weights and the shuffling order, the
resumed run ends with bit-identical weights to an uninterrupted one (tests/nets/test_checkpoint.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UsageError

FORMAT = 1


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    meta: dict  # format, config, epoch, step, rng_state, history


def save(path: str | os.PathLike, params: dict[str, np.ndarray], meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {f"param/{name}": value for name, value in params.items()}
    with tmp.open("wb") as f:
        np.savez(f, meta=np.array(json.dumps({"format": FORMAT, **meta})), **arrays)
    os.replace(tmp, path)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; a missing, foreign or damaged file is a one-line UsageError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: checkpoint file does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"])) if "meta" in z.files else None
            params = {k[len("param/"):]: z[k] for k in z.files if k.startswith("param/")}
    except Exception as exc:  # any failure to parse a user's file is that file's problem, reported in one line
        raise UsageError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: not a training checkpoint (no 'meta' entry)")
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path}: checkpoint format {meta.get('format')!r}, this version reads {FORMAT}")
    return Checkpoint(params, meta)
