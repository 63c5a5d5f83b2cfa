"""Graph-captured training steps: one whole step (batch gather, forward, loss, backward, SGD update, and the
epoch's loss and correct-count accumulation) recorded once per batch size into a CUDA graph and replayed.

Why: a training step of a thesis model is dozens of small kernel launches from Python; replaying a graph costs one
launch. How (per batch size n):
1. the first step of size n runs eagerly (it compiles kernels, builds cuDNN plans and fills the memory pool) on
   the trainer's stream, and counts as a training step like any other;
2. the next step of size n first captures the same step body into a graph, with a private memory pool (one per
   graph, kept as long as the graph: blocks freed inside the captured step must never be handed to other code
   while replays still write them), then replays it; every later step of size n only replays.
The body reads its batch indices from a static device buffer per batch size, refilled by a device copy on the
same stream before each replay; the gathered batch, every layer buffer and the loss/logits buffers are the
layers' own per-batch-size buffers (nets.layers), so their addresses are fixed. The loss sum and the correct
count are device scalars the graph adds to; they are read back once per epoch. The last, smaller batch of an
epoch gets its own graph (it recurs every epoch).

A backend whose step cannot be captured says why (graph_unsupported_reason, or the error the capture raised) and
trains eagerly. CPU backends have no graphs and train eagerly without a note. The capture mechanism is passed in
(`CudaCapturer` on the GPU), so the control logic runs on the CPU with a capturer that records the Python body
and replays it by calling it (tests/nets/test_graph.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from harness.device import synchronize
from harness.errors import one_line
from nets.backend import Backend
from nets.data import Dataset
from nets.network import SGD, Network
from nets.train import Trainer

GRAPH_MODES = ("on", "off")


def graph_unsupported_reason(backend: Backend) -> str | None:
    """Why the steps of `backend` cannot be captured into a CUDA graph, or None when they can be tried."""
    if backend.device != "gpu":
        return "a CPU backend (CUDA graphs are for GPU backends)"
    torch_passes = sorted(f"{op}/{p}" for (op, p), c in backend.choices.items() if c.impl.group.startswith("torch"))
    if torch_passes:
        return (f"{', '.join(torch_passes)} run through torch, whose caching allocator does not know of a CuPy "
                "capture: blocks freed inside the captured step would be handed out again while replays still "
                "write them")
    return None


class CudaCapturer:
    """Captures a Python callable's CuPy work on one non-blocking stream into a cupy.cuda.graph.Graph."""

    def __init__(self):
        import cupy

        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def context(self):
        """The stream every graph-mode step runs on (eager ones too, so that the order is the stream's)."""
        return self.stream

    def synchronize(self) -> None:
        """Wait for the stream: it is non-blocking, so a read on the default stream (the epoch's totals, the test
        pass) would not wait for the replays on its own."""
        self.stream.synchronize()

    def capture(self, body: Callable[[], None]) -> Callable[[], None]:
        """Record `body` (nothing runs); return the replay. The private pool lives in the returned closure."""
        cupy = self.cupy
        pool = cupy.cuda.MemoryPool()
        relaxed = getattr(cupy.cuda.runtime, "streamCaptureModeRelaxed", 2)  # the private pool may cudaMalloc
        with cupy.cuda.using_allocator(pool.malloc), self.stream:
            self.stream.begin_capture(relaxed)
            try:
                body()
            finally:
                graph = self.stream.end_capture()
        stream = self.stream

        def replay() -> None:
            graph.launch(stream)
            _ = pool  # the pool must outlive the graph

        return replay


class EagerCapturer:
    """The CPU stand-in: 'capture' records the body, 'replay' calls it (same results, same control flow)."""

    def context(self):
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Nothing runs asynchronously here."""

    def capture(self, body: Callable[[], None]) -> Callable[[], None]:
        return body


class GraphTrainer(Trainer):
    """A Trainer whose steps replay a captured graph per batch size (see the module docstring)."""

    def __init__(self, net: Network, opt: SGD, ds: Dataset, batch: int, seed: int, capturer=None):
        super().__init__(net, opt, ds, batch, seed)
        self.capturer = capturer if capturer is not None else CudaCapturer()
        self.graphs: dict[int, Callable[[], None]] = {}
        self.seen: set[int] = set()
        self.declined: str | None = None  # why capturing failed (then every step is eager)
        self._idx: dict[int, object] = {}
        self.loss_sum = self.xp.zeros((), dtype=np.float64)
        self.correct = self.xp.zeros((), dtype=np.int64)
        synchronize(net.backend.device)  # the data copies above were made on another stream

    def status(self) -> str:
        """'on' or 'declined: <reason>' (what train's log and train-bench's table show)."""
        return f"declined: {self.declined}" if self.declined else "on"

    def _body(self, n: int) -> None:
        """One step on the indices in the static buffer of size n, adding its loss and hits to the epoch totals."""
        xb, yb = self._batch(self.x_train, self.y_train, self._idx[n])
        loss, logits = self.opt.train_step(xb, yb)
        self.loss_sum += loss * n
        self.correct += (logits.argmax(axis=1) == yb).sum()

    def _run(self, idx) -> None:
        n = len(idx)
        if n not in self._idx:
            self._idx[n] = self.xp.empty(n, dtype=idx.dtype)
        self._idx[n][...] = idx
        if n in self.graphs:
            self._replay(n)
            return
        if n in self.seen and self.declined is None:
            steps = self.opt.steps
            try:
                self.graphs[n] = self.capturer.capture(lambda: self._body(n))
            except Exception as exc:  # a host sync, an allocation the capture refuses, ...: eager from now on
                self.declined = f"capture failed: {one_line(exc)}"
            self.opt.steps = steps  # capturing ran the Python side of a step, not a step
            if n in self.graphs:
                self._replay(n)
                return
        self.seen.add(n)
        self._body(n)

    def _replay(self, n: int) -> None:
        """Replay size n's graph: one step (a CPU stand-in's replay runs the Python body, which counts too)."""
        steps = self.opt.steps
        self.graphs[n]()
        self.opt.steps = steps + 1

    def step(self, idx):
        """One SGD step (graph replay once captured); returns the static (loss, logits, labels) buffers."""
        with self.capturer.context():
            self._run(idx)
        n = len(idx)
        return self.net.loss.at_batch(n)["loss"], self.net.layers[-1].at_batch(n).get("y"), self._bufs[n][1]

    def epoch(self, bar=None) -> tuple[float, float]:
        """One shuffled pass, the totals accumulated on the device by the steps and read back once."""
        xp, n = self.xp, len(self.y_train)
        with self.capturer.context():
            order = xp.asarray(self.rng.permutation(n))
            self.loss_sum.fill(0)
            self.correct.fill(0)
            for start in range(0, n, self.batch):
                self._run(order[start:start + self.batch])
                if bar is not None:
                    bar.update(1)
        self.capturer.synchronize()  # the totals and the next evaluation are read on the default stream
        loss_sum, correct = self.totals(self.loss_sum, self.correct)
        return float(loss_sum) / n, int(correct) / n


def make_trainer(graph: str, backend: Backend, printer=print, capturer=None) -> tuple[Callable, str]:
    """(make_trainer for nets.train.train, what the log says): GraphTrainer where `graph` is "on" and the backend
    can capture, else the eager Trainer with the reason (CPU backends: eager, status "off (CPU)")."""
    if graph == "off":
        return Trainer, "off"
    reason = graph_unsupported_reason(backend) if capturer is None else None
    if reason:
        return Trainer, ("off (CPU)" if backend.device != "gpu" else f"declined: {reason}")

    def build(net, opt, ds, batch, seed):
        return GraphTrainer(net, opt, ds, batch, seed, capturer)

    return build, "on"
