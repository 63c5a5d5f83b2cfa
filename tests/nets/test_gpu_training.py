"""GPU backends train the same loss curve as the float64 oracle (numpy_ref), within the bound derived in
test_backend_equivalence.py: S steps × tolerance("fp32", L_max) relative, per epoch. Also: a GPU step keeps its
data on the device, and cudnn's missing ops fall back to the documented GPU defaults."""

from __future__ import annotations

import pytest

from harness.registry import all_impls
from nets.backend import resolve
from nets.train import TrainConfig, train
from tests.nets.curves import assert_same_curve

pytestmark = pytest.mark.gpu

GPU_BACKENDS = ("cupy_naive", "cupy_opt", "cudnn", "torch")
SETTINGS = {"epochs": 3, "train_size": 320, "test_size": 100, "progress": False}


def _needs(backend: str) -> None:
    impls = [i for i in all_impls() if i.name == backend]
    if not impls:
        pytest.skip(f"no implementation is registered as {backend}")
    reason = impls[0].unavailable_reason()
    if reason:
        pytest.skip(f"{backend}: {reason}")


_REFERENCE: dict[str, object] = {}  # numpy_ref runs, shared by the backends compared with them
# thesis-3 upsamples the 8x8 digits to 40x40: its flat regions give max-pooling windows whose values are equal in
# float32 but not in float64, so the two precisions route some gradients to different pixels and the curves part
# by a discrete step (seen on the CPU too: numpy_opt vs numpy_ref, 2e-8 after two epochs, 4e-3 after three).
# Random images have no such ties, so thesis-3 is compared on synthetic data.
DATASET = {"thesis-3": "synthetic"}


def run(model, backend, tmp_path):
    if backend == "numpy_ref" and model in _REFERENCE:
        return _REFERENCE[model]
    result = train(TrainConfig(model=model, backend=backend, dataset=DATASET.get(model, "digits"),
                               out=str(tmp_path / f"{model}-{backend}"), **SETTINGS), printer=lambda *a: None)
    if backend == "numpy_ref":
        _REFERENCE[model] = result
    return result


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("model", ["mlp1", "mlp1-bce", "lenet", "thesis-0", "thesis-3"])
def test_gpu_backend_trains_like_numpy_ref(model, backend, tmp_path, curve_tolerance):
    _needs(backend)
    ref, gpu = run(model, "numpy_ref", tmp_path), run(model, backend, tmp_path)
    assert gpu.backend.device == "gpu" and type(gpu.net.params[0].value).__module__.startswith("cupy")
    assert_same_curve(ref, gpu, curve_tolerance, SETTINGS["test_size"])


def test_cudnn_falls_back_for_the_ops_it_lacks():
    _needs("cudnn")
    b = resolve("cudnn", ["conv2d", "maxpool2d", "relu", "gemm", "sigmoid_bce", "softmax_xent", "sgd"])
    assert b.choices[("conv2d", "fprop")].impl.name == "cudnn"
    for key in (("sgd", "update"), ("sigmoid_bce", "fwd")):
        assert b.choices[key].how == "fallback" and b.choices[key].impl.name in ("cupy_opt", "cupy_naive")
