"""train-bench: how long one training step of each thesis model takes on every backend, PyTorch eager as the peer.

For each model and backend it builds the network, gathers batches of synthetic images of the model's input size
(nets.data.synthetic, standardised, already on the device; models without a fixed input get 1x28x28), runs `warmup`
steps, then times `steps` steps one by one (each ends with a device synchronisation), stopping early once `max_s`
seconds were spent and at least MIN_STEPS were timed. A step is the whole of training: batch gather, forward, loss,
backward, SGD update. The table reports the median ms per step, its IQR, images/s, and speedups over the backend of
family oracle (numpy_ref, the thesis's CPU baseline) and of family vendor (cudnn) on the same model. The peer,
"pytorch-eager", trains the same architecture from the same initial weights with torch.nn and torch.optim.SGD in
strict FP32 (TF32 off), on CUDA when it has a GPU; it is skipped, with the reason, when torch is absent. The other
peers (`peers`, nets.peer): "pytorch-graph", the step captured in one CUDA graph (timed where graphs are on), and
"pytorch-compile", torch.compile's reduce-overhead mode (opt-in: compiling takes seconds per model and batch). A backend
that cannot run (unavailable, an op it lacks without a fallback, a kernel error) gets a row saying why instead of
stopping the benchmark.

With accuracy_epochs > 0, each backend that ran also trains the model on digits for that many epochs (the model's
default lr and batch) and the table gets its test accuracy.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.device import gpu_unavailable_reason, synchronize
from harness.errors import UsageError, one_line
from harness.measure.timing import stats
from harness.results import write_meta
from nets import peer
from nets.backend import BACKENDS, resolve
from nets.data import fit, synthetic
from nets.layers import Layer, Loss
from nets.models import THESIS_MODELS, ModelSpec, get_model
from nets.network import SGD, Network, ops_of
from nets.peer import peer_step, strict_fp32, torch_unavailable_reason
from nets.train import TrainConfig, train

PEERS = dict(zip(peer.KINDS, [(peer.NAME, peer_step), (peer.GRAPH_NAME, peer.peer_graph_step),
                              (peer.COMPILE_NAME, peer.peer_compile_step)], strict=True))  # kind -> (backend, maker)
# Timed steps before the spread may stop timing. 10 (harness.measure.timing's min_reps) let two runs of the same
# graphed row differ by up to 10 % on the H200 (sample of 2026-12-03, medians of 10 steps of ~0.2 ms each); 50 cost
# ~10 ms per graphed row and ~0.1 s per eager one.
MIN_STEPS = 50
TARGET_REL_IQR = 0.05  # stop once IQR / median is this small (harness.measure.timing's stopping rule)
COLUMNS = ["device", "model", "backend", "graph", "fuse", "run", "status", "reason", "batch", "steps", "ms_per_step",
           "iqr_ms", "rel_iqr", "repeat_ratio",
           "images_per_s", "speedup_vs_oracle", "speedup_vs_vendor", "test_acc", "implementations", "family"]


@dataclass
class BenchConfig:
    models: list[str] = field(default_factory=lambda: list(THESIS_MODELS))
    backends: list[str] = field(default_factory=lambda: list(BACKENDS))
    impl: dict[str, str] = field(default_factory=dict)
    steps: int = 20
    warmup: int = 3
    batch: int = 32  # the batch of the rows being timed (run_bench sets it from `batches`)
    batches: list[int] = field(default_factory=lambda: [32])
    graphs: list[str] = field(default_factory=lambda: ["on"])
    fuse: str = "on"  # fused layers (nets.fusion) in the rows being timed (run_bench sets it from `fuses`)
    fuses: list[str] = field(default_factory=lambda: ["on"])  # the peers always run the plain model
    repeat: int = 1
    max_s: float = 30.0
    seed: int = 0
    peers: tuple[str, ...] = peer.DEFAULT_KINDS  # keys of PEERS; () for none
    accuracy_epochs: int = 0


def input_shape(spec: ModelSpec) -> tuple[int, int, int]:
    """The thesis models' fixed input; models that take the dataset's own size get MNIST's 1x28x28."""
    return spec.input_shape or (1, 28, 28)


def _device_name(device: str, cpu_name: str) -> str:
    if device != "gpu":
        return cpu_name
    import cupy

    return cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()


def model_parts(spec: ModelSpec, fuse: str, impl: dict[str, str]) -> tuple[list[Layer], Loss, list[str],
                                                                             dict[str, str]]:
    """A row's layers and loss (fused where `fuse` is "on", nets.fusion), their ops, and the overrides that apply to
    them: an override of an op the network lacks (maxpool2d_relu with fusion off) is left out rather than refused."""
    on = fuse == "on"
    layers, loss = spec.layers(10, fuse=on), spec.loss_layer(on)
    ops = ops_of(layers, loss)
    return layers, loss, ops, {op: name for op, name in impl.items() if op in ops}


def _time_steps(step, device: str, cfg: BenchConfig) -> list[float]:
    """Warm up, then per-step milliseconds until the relative IQR is <= TARGET_REL_IQR, cfg.steps are done or
    cfg.max_s is spent, with at least MIN_STEPS (or cfg.steps, if fewer) timed."""
    for i in range(cfg.warmup):
        step(i)
    synchronize(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < cfg.steps:
        t0 = time.perf_counter()
        step(len(times))
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min(MIN_STEPS, cfg.steps) and (time.perf_counter() - start > cfg.max_s
                                                         or stats(times).rel_iqr <= TARGET_REL_IQR):
            break
    return times


def bench_backend(spec: ModelSpec, backend_name: str, cfg: BenchConfig, graph: str = "off",
                  capturer=None) -> tuple[dict, list[float] | None]:
    """One (model, backend, graph mode) row and its step times; the row says why when the backend cannot run.
    With graph "on", a GPU backend's steps replay a CUDA graph (nets.graph); one that cannot capture gets the
    reason in the `graph` column and is timed eagerly; CPU backends are timed once, eagerly, under "off"."""
    from nets.graph import GraphTrainer, make_trainer

    row = {"model": spec.name, "backend": backend_name, "batch": cfg.batch, "graph": graph, "fuse": cfg.fuse}
    layers, loss, ops, impl = model_parts(spec, cfg.fuse, cfg.impl)
    try:
        backend = resolve(backend_name, ops, impl)
    except UsageError as exc:
        return {**row, "status": "skipped", "reason": str(exc)}, None
    row["implementations"] = "; ".join(backend.describe())
    row["family"] = backend.family
    row["device_kind"] = backend.device
    try:
        net = Network(layers, loss, backend, input_shape(spec))
        net.init(cfg.seed)
        ds = fit(synthetic(4 * cfg.batch, input_shape(spec), seed=cfg.seed), None)
        make, row["graph"] = make_trainer(graph, backend, capturer=capturer)
        trainer = make(net, SGD(net, spec.lr), ds, cfg.batch, cfg.seed)
        batches = [backend.xp.arange(i * cfg.batch, (i + 1) * cfg.batch) for i in range(4)]
        last = {}

        def step(i: int) -> None:
            last["loss"] = trainer.step(batches[i % 4])[0]

        times = _time_steps(step, backend.device, cfg)
        if isinstance(trainer, GraphTrainer):
            row["graph"] = trainer.status()
        if not math.isfinite(float(last["loss"])):
            return {**row, "status": "error", "reason": f"loss became {float(last['loss'])}"}, None
    except Exception as exc:  # a failing kernel must not stop the other backends
        return {**row, "status": "error", "reason": one_line(exc)}, None
    return {**row, "status": "ok"}, times


def bench_peer(spec: ModelSpec, cfg: BenchConfig, kind: str = "eager") -> tuple[dict, list[float] | None]:
    """PyTorch training of the same model, from the same initial weights, in strict FP32 (nets.peer): `kind` is
    a key of PEERS (eager; graph: the whole step captured in a CUDA graph; compile: torch.compile)."""
    name, make = PEERS[kind]
    row = {"model": spec.name, "backend": name, "batch": cfg.batch, "family": "peer",
           "graph": "off" if kind == "eager" else "on"}
    reason = torch_unavailable_reason()
    if reason:
        return {**row, "status": "skipped", "reason": reason}, None
    layers, loss = spec.layers(10), spec.loss_layer()
    ref = Network(layers, loss, resolve("numpy_ref", ops_of(layers, loss)), input_shape(spec))
    ref.init(cfg.seed)
    with strict_fp32():
        try:
            step, device, row["implementations"] = make(ref, spec, cfg.batch, cfg.seed)
        except Exception as exc:
            return {**row, "status": "skipped", "reason": one_line(exc)}, None
        row["device_kind"] = "gpu" if device == "cuda" else "cpu"
        try:
            times = _time_steps(step, "cpu", cfg)  # each step ends with its own device synchronisation
        except Exception as exc:
            return {**row, "status": "error", "reason": one_line(exc)}, None
    return {**row, "status": "ok"}, times


def _finish(row: dict, times: list[float] | None, device_names: dict[str, str]) -> dict:
    row["device"] = device_names.get(row.pop("device_kind", ""), "")
    if times:
        st = stats(times)
        row.update(steps=st.reps, ms_per_step=st.median_ms, iqr_ms=st.iqr_ms, rel_iqr=st.rel_iqr,
                   images_per_s=row["batch"] * 1e3 / st.median_ms)
    return row


def add_speedups(rows: list[dict]) -> None:
    """speedup_vs_F = ms of the backend of family F (oracle: the float64 NumPy baseline of the thesis; vendor:
    cuDNN) / ms of this row, for the same model (empty when no such backend ran)."""
    first = {}
    for r in rows:
        if r.get("ms_per_step"):
            key = (r["model"], r["backend"], r["graph"], r.get("fuse"), r["batch"])
            first.setdefault(key, r["ms_per_step"])
            r["repeat_ratio"] = r["ms_per_step"] / first[key]
    for family in ("oracle", "vendor"):
        ms: dict = {}
        for r in rows:
            if r.get("family") == family and r.get("ms_per_step") and r.get("run", 1) == 1:
                ms.setdefault((r["model"], r["batch"]), r["ms_per_step"])  # the first (eager) row of the family
        for r in rows:
            if r.get("ms_per_step") and (r["model"], r["batch"]) in ms:
                r[f"speedup_vs_{family}"] = ms[(r["model"], r["batch"])] / r["ms_per_step"]


def accuracy(spec: ModelSpec, backend: str, cfg: BenchConfig, run_dir: Path, graph: str = "off") -> float | str:
    """Test accuracy on digits after cfg.accuracy_epochs epochs, trained with the row's graph mode (so a graph row's
    accuracy is the captured path's), or the one-line reason it failed."""
    impl = model_parts(spec, cfg.fuse, cfg.impl)[3]  # the overrides the row's network has ops for
    try:
        result = train(TrainConfig(model=spec.name, backend=backend, impl=impl, epochs=cfg.accuracy_epochs,
                                   seed=cfg.seed, graph=graph, fuse=cfg.fuse,
                                   out=str(run_dir / f"train-{spec.name}-{backend}-graph-{graph}-fuse-{cfg.fuse}"),
                                   progress=False), printer=lambda *a: None)
    except Exception as exc:
        return one_line(exc)
    return result.history[-1]["test_acc"]


def run_bench(cfg: BenchConfig, run_dir: Path, printer=print) -> list[dict]:
    """Time every (model, backend) and the peer; write train_bench.csv, train_bench.png and meta.json."""
    from harness.results import base_meta

    specs = [get_model(m) for m in cfg.models]
    meta = base_meta(["train-bench"])
    gpu = None if gpu_unavailable_reason() else _device_name("gpu", meta["cpu"])
    device_names = {"cpu": meta["cpu"], "gpu": gpu or ""}
    run_dir.mkdir(parents=True, exist_ok=True)
    rows, described = [], set()

    def add(row: dict, times, run: int) -> None:
        row["run"] = run
        rows.append(_finish(row, times, device_names))
        printer(_line(rows[-1]))

    for batch in cfg.batches:
        bcfg = replace(cfg, batch=batch)
        for spec in specs:
            for run in range(1, cfg.repeat + 1):
                for name in cfg.backends:
                    for fuse in dict.fromkeys(cfg.fuses):
                        for graph in _graph_modes(name, cfg.graphs):
                            row, times = bench_backend(spec, name, replace(bcfg, fuse=fuse), graph)
                            if row.get("implementations") and (name, fuse) not in described:
                                described.add((name, fuse))
                                printer(f"{name} (fuse {fuse}): {row['implementations']}")
                            add(row, times, run)
                for kind in cfg.peers:
                    if kind != "graph" or "on" in cfg.graphs:
                        add(*bench_peer(spec, bcfg, kind), run)
    add_speedups(rows)
    if cfg.accuracy_epochs > 0:
        for r in rows:
            if r["status"] == "ok" and r.get("family") != "peer" and r.get("run") == 1:
                r["test_acc"] = accuracy(get_model(r["model"]), r["backend"], replace(cfg, fuse=r["fuse"]), run_dir,
                                         r["graph"])
                printer(f"{r['model']:<9} {_label(r):<20} graph {r['graph']:<3} digits test accuracy after "
                        f"{cfg.accuracy_epochs} epochs: {r['test_acc']}")
    with (run_dir / "train_bench.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    plot_bench(rows, run_dir / "train_bench.png")
    meta.update(config=asdict(cfg), gpu=gpu)
    write_meta(run_dir, meta)
    printer("\n" + format_table(rows))
    return rows


def _graph_modes(backend: str, graphs: list[str]) -> list[str]:
    """The graph modes to time `backend` under: CPU backends once (graphs do not apply to them)."""
    from nets.backend import _registered

    impls = _registered(backend)
    if impls and impls[0].device == "cpu":
        return ["off"]
    return list(dict.fromkeys(graphs))


def _line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['model']:<9} {r['backend']:<14} b{r['batch']} {r['status']}: {r['reason']}"
    note = "" if r.get("graph") in ("on", "off") else f"  graph {r.get('graph')}"
    return (f"{r['model']:<9} {_label(r):<20} b{r['batch']:<4} {r['ms_per_step']:10.3f} ms/step  "
            f"IQR {r['rel_iqr']:5.1%}  {r['images_per_s']:12,.0f} img/s  ({r['steps']} steps, run {r['run']}){note}")


def _label(r: dict) -> str:
    """backend+graph for a GPU backend's graph-replayed row; " unfused" marks a row with fusion off."""
    label = f"{r['backend']}+graph" if r.get("graph") == "on" and r.get("family") != "peer" else r["backend"]
    return label + " unfused" if r.get("fuse") == "off" else label


def format_table(rows: list[dict]) -> str:
    """A plain-text table of the rows that ran."""
    head = (f"{'model':<9} {'backend':<20} {'batch':>5} {'run':>3} {'ms/step':>9} {'IQR':>6} {'vs run1':>7} "
            f"{'img/s':>11} {'vs oracle':>9} {'vs vendor':>9} {'acc':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            continue
        acc = r.get("test_acc", "")
        lines.append(f"{r['model']:<9} {_label(r):<20} {r['batch']:>5} {r['run']:>3} {r['ms_per_step']:9.3f} "
                     f"{r['rel_iqr']:6.1%} {_x(r.get('repeat_ratio')):>7} {r['images_per_s']:11,.0f} "
                     f"{_x(r.get('speedup_vs_oracle')):>9} {_x(r.get('speedup_vs_vendor')):>9} "
                     f"{f'{acc:.2%}' if isinstance(acc, float) else '':>7}")
    return "\n".join(lines)


def _x(v) -> str:
    return f"{v:.2f}x" if isinstance(v, float) else ""


def plot_bench(rows: list[dict], path: Path) -> None:
    """Images/s per model (groups) and backend (bars), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    ok = [r for r in ok if r.get("run", 1) == 1 and r["batch"] == ok[0]["batch"]] if ok else ok
    backends = list(dict.fromkeys(_label(r) for r in ok))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(models) * max(1, len(backends)) / 3), 3.6))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        vals = {r["model"]: r["images_per_s"] for r in ok if _label(r) == b}
        xs = [i + j * width for i, m in enumerate(models) if m in vals]
        ax.bar(xs, [vals[m] for m in models if m in vals], width, label=b)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models)
    ax.set(ylabel="training images / s", yscale="log" if ok else "linear")
    ax.set_title("training throughput, batch " + str(rows[0]["batch"] if rows else ""), fontsize=10)
    if backends:
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
