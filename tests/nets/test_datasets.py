"""Data loaders on tiny files written in the real MNIST IDX and CIFAR-10 pickle formats; resizing, channel fitting
and normalisation; every bad input is one line that names the file."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from harness.errors import UsageError
from nets.data import fit, fit_channels, load, load_digits, resize, subset, synthetic


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    """The IDX format: magic 0x00000800 | ndim (unsigned bytes), big-endian dims, then the bytes."""
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_mnist(folder, gz: bool, n_train=5, n_test=3, size=4, rng=None):
    rng = rng or np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[prefix] = (images, labels)
    return arrays


def write_cifar(folder, n_batches=2, n=4, rng=None):
    """Batches as CIFAR-10's python version has them: pickled dicts with bytes keys, data n x 3072 uint8."""
    rng = rng or np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i + 1}" for i in range(n_batches)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
        batches[name] = (data, labels)
    return batches


def one_line_naming(exc_info, path) -> None:
    message = str(exc_info.value)
    assert "\n" not in message
    assert str(path) in message, message


# ---------------------------------------------------------------- loaders
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    ds = load("mnist", str(tmp_path))
    assert ds.x_train.shape == (5, 1, 4, 4) and ds.x_test.shape == (3, 1, 4, 4)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays["train"][0] / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1])


def test_mnist_dotted_file_names(tmp_path):
    write_mnist(tmp_path, gz=False)
    for f in tmp_path.iterdir():
        f.rename(tmp_path / f.name.replace("-idx", ".idx"))
    assert load("mnist", str(tmp_path)).x_train.shape == (5, 1, 4, 4)


def test_cifar10_pickles(tmp_path):
    batches = write_cifar(tmp_path)
    ds = load("cifar10", str(tmp_path))
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    # rows are 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    np.testing.assert_array_equal(ds.x_train[4:, 1].reshape(4, -1), data[:, 1024:2048] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train[4:], labels)


def test_cifar10_inside_its_archive_folder(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    write_cifar(tmp_path / "cifar-10-batches-py", n_batches=1)
    assert load("cifar10", str(tmp_path)).x_train.shape == (4, 3, 32, 32)


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_digits(), load_digits()
    assert len(a.y_train) + len(a.y_test) == 1797 and len(a.y_test) == 359
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.min() >= 0 and a.x_train.max() <= 1
    train_rows = {r.tobytes() for r in a.x_train}
    assert sum(r.tobytes() in train_rows for r in a.x_test) < 5  # only a handful of duplicate images exist


def test_synthetic_any_shape_and_count_is_seeded():
    a, b = synthetic(50, (3, 7, 5), seed=4), synthetic(50, (3, 7, 5), seed=4)
    assert a.x_train.shape == (50, 3, 7, 5) and len(a.y_test) == 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, synthetic(50, (3, 7, 5), seed=5).x_train)


# ---------------------------------------------------------------- bad inputs
def _mnist_problem(tmp_path, kind):
    write_mnist(tmp_path, gz=kind != "plain-bad-magic")
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    if kind == "missing":
        os.remove(labels)
        return labels.with_suffix(""), "missing"
    if kind == "corrupt-gzip":
        images.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
        return images, "corrupt gzip"
    if kind == "gz-name-not-gzip":
        images.write_bytes(b"plain bytes")
        return images, "not a gzip file"
    if kind == "plain-bad-magic":
        images = tmp_path / "train-images-idx3-ubyte"
        write_idx(images, np.zeros((2, 4), dtype=np.uint8), gz=False)  # a 2-D file where 3-D images belong
        return images, "bad IDX magic"
    if kind == "truncated":
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[:-3]))
        return images, "bytes of data"
    if kind == "count-mismatch":
        write_idx(labels, np.zeros(4, dtype=np.uint8), gz=True)
        return labels, "4 labels, but train-images-idx3-ubyte.gz has 5 images"
    if kind == "label-range":
        write_idx(labels, np.full(5, 12, dtype=np.uint8), gz=True)
        return labels, "out of range"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "corrupt-gzip", "gz-name-not-gzip", "plain-bad-magic", "truncated",
                                  "count-mismatch", "label-range"])
def test_bad_mnist_files(tmp_path, kind):
    path, problem = _mnist_problem(tmp_path, kind)
    with pytest.raises(UsageError, match=problem) as err:
        load("mnist", str(tmp_path))
    one_line_naming(err, path.parent if kind == "missing" else path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("kind", ["not-pickle", "code", "no-keys", "bad-shape", "count-mismatch", "missing-test"])
def test_bad_cifar_files(tmp_path, kind):
    write_cifar(tmp_path, n_batches=1)
    path = tmp_path / "data_batch_1"
    good = {b"labels": [1, 2], b"data": np.zeros((2, 3072), dtype=np.uint8)}
    payload, problem = {
        "not-pickle": (b"\x00\x01 not a pickle", "not a CIFAR-10 python pickle"),
        "code": (pickle.dumps(Evil()), "forbidden global"),
        "no-keys": (pickle.dumps({b"pixels": 1}), "no 'data' and 'labels'"),
        "bad-shape": (pickle.dumps({**good, b"data": np.zeros((2, 100), dtype=np.uint8)}), "expected uint8"),
        "count-mismatch": (pickle.dumps({**good, b"labels": [1, 2, 3]}), "3 labels, but 2 images"),
        "missing-test": (None, "missing test_batch"),
    }[kind]
    if payload is None:
        path = tmp_path / "test_batch"
        os.remove(path)
        path = tmp_path
    else:
        path.write_bytes(payload)
    with pytest.raises(UsageError, match=problem) as err:
        load("cifar10", str(tmp_path))
    one_line_naming(err, path)


def test_folder_problems_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="needs --data-dir"):
        load("mnist", None)
    with pytest.raises(UsageError, match="does not exist") as err:
        load("cifar10", str(tmp_path / "nope"))
    one_line_naming(err, tmp_path / "nope")
    with pytest.raises(UsageError, match="unknown dataset 'imagenet'"):
        load("imagenet", str(tmp_path))


# ---------------------------------------------------------------- fitting
def test_bilinear_uses_half_pixel_centres():
    x = np.array([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=np.float32)
    y = resize(x, 4, 4, "bilinear")
    np.testing.assert_allclose(y[0, 0, 0], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(y[0, 0, :, 0], [0, 0.5, 1.5, 2])
    const = np.full((2, 3, 5, 7), 0.3, dtype=np.float32)
    np.testing.assert_allclose(resize(const, 12, 9), 0.3, rtol=1e-6)


def test_nearest_picks_the_covering_pixel():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(resize(x, 2, 2, "nearest")[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resize(x[:, :, :2, :2], 4, 4, "nearest")[0, 0, 0], [0, 0, 1, 1])


def test_channel_fitting():
    grey = np.random.default_rng(0).random((2, 1, 3, 3)).astype(np.float32)
    rgb = fit_channels(grey, 3)
    assert rgb.shape == (2, 3, 3, 3) and all(np.array_equal(rgb[:, c], grey[:, 0]) for c in range(3))
    np.testing.assert_allclose(fit_channels(rgb, 1), grey, rtol=1e-6)
    with pytest.raises(UsageError, match="cannot fit 2-channel"):
        fit_channels(np.zeros((1, 2, 3, 3), dtype=np.float32), 3)


def test_fit_standardises_with_training_statistics():
    ds = fit(load_digits(), (3, 12, 12))
    assert ds.x_train.shape[1:] == (3, 12, 12) and ds.x_test.shape[1:] == (3, 12, 12)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert abs(float(ds.x_test.mean())) < 0.1  # test data use the training mean, so only close to 0


def test_subset_is_seeded_and_bounded():
    ds = load_digits()
    a, b = subset(ds, 100, 20), subset(ds, 100, 20)
    assert len(a.y_train) == 100 and len(a.y_test) == 20
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert len(subset(ds, 10**6, None).y_train) == len(ds.y_train)
