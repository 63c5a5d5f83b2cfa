"""Image data sets as float32 NCHW arrays in [0, 1] with int32 labels, and fitting them to a model's input.

- digits:    scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline); a seeded 80/20 split.
- mnist:     the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-..., gzipped or not;
             `train-images.idx3-ubyte` spellings too) in --data-dir; the official train/test split.
- cifar10:   the python-pickle batches (data_batch_1..5, test_batch) in --data-dir or its cifar-10-batches-py/.
- synthetic: random images of any shape and count whose class shifts the mean of a class-specific pattern
             (learnable, so a smoke test can see the loss fall), for throughput measurements.

`fit` resizes (nearest or bilinear, half-pixel centres as in OpenCV/PIL), replicates a grey channel to three or
averages three to one, and standardises every channel with the training set's mean and standard deviation.
Every problem with a file (missing, not gzip, wrong magic or dimensions, truncated, label and image counts that
disagree, labels out of range, a pickle that is not a CIFAR-10 batch) is a one-line UsageError naming the file.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.errors import UsageError, choices_error

DATASETS = ("digits", "mnist", "cifar10", "synthetic")
DIGITS_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the digits split is the same for every training seed, so test accuracies are comparable


@dataclass
class Dataset:
    """Train and test images (N, C, H, W) float32 and labels (N,) int32."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


# ---------------------------------------------------------------- loaders
def load(name: str, data_dir: str | None = None, synthetic_shape: tuple[int, int, int] = (1, 8, 8),
         synthetic_count: int = 1024, seed: int = 0) -> Dataset:
    """Load data set `name` (see the module docstring); `data_dir` is required for mnist and cifar10."""
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return synthetic(synthetic_count, synthetic_shape, seed=seed)
    if name not in DATASETS:
        raise choices_error("dataset", name, DATASETS)
    if not data_dir:
        raise UsageError(f"--dataset {name} needs --data-dir (the folder holding its files)")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UsageError(f"{folder}: data folder does not exist")
    return load_mnist(folder) if name == "mnist" else load_cifar10(folder)


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = round(len(y) * DIGITS_TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test])


def synthetic(count: int, shape: tuple[int, int, int], classes: int = 10, seed: int = 0,
              test_fraction: float = 0.2) -> Dataset:
    """`count` training images of `shape` (plus test_fraction as many for testing): class pattern + noise."""
    if count < 1 or min(shape) < 1:
        raise UsageError(f"synthetic data needs a positive count and shape, got {count} of {shape}")
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 1, size=(classes, *shape))
    n_test = max(1, int(count * test_fraction))
    y = rng.integers(0, classes, size=count + n_test).astype(np.int32)
    x = np.clip(0.5 * patterns[y] + 0.5 * rng.uniform(0, 1, size=(len(y), *shape)), 0, 1).astype(np.float32)
    return Dataset("synthetic", x[:count], y[:count], x[count:], y[count:], classes)


def _open_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip file; UsageError when it cannot be read or unzipped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise UsageError(f"{path}: corrupt gzip file ({str(exc).splitlines()[0]})") from None
    if path.suffix == ".gz":
        raise UsageError(f"{path}: not a gzip file (the name ends in .gz)")
    return raw


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (MNIST: 3 for images, 1 for labels)."""
    data = _open_bytes(path)
    expected = 0x0800 | ndim
    if len(data) < 4 + 4 * ndim:
        raise UsageError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        raise UsageError(f"{path}: bad IDX magic 0x{magic:08x}, expected 0x{expected:08x} "
                         f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = data[4 + 4 * ndim:]
    need = int(np.prod(dims, dtype=np.int64))
    if len(body) != need:
        raise UsageError(f"{path}: {len(body)} bytes of data, the header {dims} says {need}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(folder: Path, stems: tuple[str, ...]) -> Path:
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise UsageError(f"{folder}: missing {stems[0]}[.gz] (MNIST IDX file)")


def load_mnist(folder: Path) -> Dataset:
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_path = _find(folder, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"))
        lab_path = _find(folder, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"))
        images, labels = read_idx(img_path, 3), read_idx(lab_path, 1)
        if len(images) != len(labels):
            raise UsageError(f"{lab_path}: {len(labels)} labels, but {img_path.name} has {len(images)} images")
        _check_labels(labels, lab_path)
        parts[split] = (images[:, None].astype(np.float32) / 255.0, labels.astype(np.int32))
    return Dataset("mnist", *parts["train"], *parts["test"])


def _check_labels(labels: np.ndarray, path: Path, classes: int = 10) -> None:
    if len(labels) and int(labels.max()) >= classes:
        raise UsageError(f"{path}: label {int(labels.max())} out of range 0..{classes - 1}")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds (dicts, lists, bytes, NumPy arrays): a data file must never be
    able to run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
        ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:  # renamed in NumPy 2
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: a pickled dict with b'data' (n x 3072 uint8, RGB planes) and b'labels'."""
    raw = _open_bytes(path)
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:
        raise UsageError(f"{path}: not a CIFAR-10 python pickle ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(batch, dict):
        raise UsageError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, expected a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise UsageError(f"{path}: not a CIFAR-10 batch (no 'data' and 'labels' entries)")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UsageError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (n, 3072)")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(data):
        raise UsageError(f"{path}: {labels.size} labels, but {len(data)} images")
    _check_labels(labels, path)
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int32)


def load_cifar10(folder: Path) -> Dataset:
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train_files = sorted(folder.glob("data_batch_[0-9]"))
    if not train_files:
        raise UsageError(f"{folder}: missing data_batch_1 (CIFAR-10 python batch)")
    if not (folder / "test_batch").is_file():
        raise UsageError(f"{folder}: missing test_batch (CIFAR-10 python batch)")
    train = [read_cifar_batch(f) for f in train_files]
    x_test, y_test = read_cifar_batch(folder / "test_batch")
    x_train = np.concatenate([x for x, _ in train]).astype(np.float32) / 255.0
    y_train = np.concatenate([y for _, y in train])
    return Dataset("cifar10", x_train, y_train, x_test.astype(np.float32) / 255.0, y_test)


# ---------------------------------------------------------------- fitting to a model
def subset(ds: Dataset, train_size: int | None, test_size: int | None, seed: int = SPLIT_SEED) -> Dataset:
    """At most train_size / test_size images of each split, chosen at random (seeded)."""
    rng = np.random.default_rng(seed)

    def take(x, y, n):
        if n is None or n >= len(y):
            return x, y
        if n < 1:
            raise UsageError(f"a subset size must be >= 1, got {n}")
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        return x[idx], y[idx]

    x_train, y_train = take(ds.x_train, ds.y_train, train_size)
    x_test, y_test = take(ds.x_test, ds.y_test, test_size)
    return replace(ds, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _axis_weights(n_in: int, n_out: int, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight of i1 for each output position (half-pixel centres)."""
    centre = (np.arange(n_out) + 0.5) * n_in / n_out
    if method == "nearest":
        i0 = np.clip(np.floor(centre), 0, n_in - 1).astype(np.int64)
        return i0, i0, np.zeros(n_out)
    src = np.clip(centre - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize(x: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """Resize NCHW images to height x width by nearest-neighbour or bilinear interpolation."""
    if method not in ("nearest", "bilinear"):
        raise choices_error("resize method", method, ("nearest", "bilinear"))
    if x.shape[2:] == (height, width):
        return x
    r0, r1, rw = _axis_weights(x.shape[2], height, method)
    c0, c1, cw = _axis_weights(x.shape[3], width, method)
    rows = x[:, :, r0] * (1 - rw)[:, None] + x[:, :, r1] * rw[:, None]
    out = rows[:, :, :, c0] * (1 - cw) + rows[:, :, :, c1] * cw
    return out.astype(x.dtype)


def fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Grey to `channels` by replication, RGB to grey by averaging; anything else is a UsageError."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=1)
    if channels == 1:
        return x.mean(axis=1, keepdims=True).astype(x.dtype)
    raise UsageError(f"cannot fit {c}-channel images to a {channels}-channel model input")


def fit(ds: Dataset, input_shape: tuple[int, int, int] | None, method: str = "bilinear") -> Dataset:
    """Resize and channel-fit both splits to `input_shape` (None keeps them), then standardise every channel with
    the training split's mean and standard deviation."""
    x_train, x_test = ds.x_train, ds.x_test
    if input_shape is not None:
        c, h, w = input_shape
        x_train = fit_channels(resize(x_train, h, w, method), c)
        x_test = fit_channels(resize(x_test, h, w, method), c)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = x_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ((x_test - mean) / std).astype(np.float32)
    return replace(ds, x_train=x_train, x_test=x_test)
