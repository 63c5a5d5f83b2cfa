"""The legacy cuDNN binding without a GPU: finding the library, availability reasons and status → message.

A fake library object stands in for libcudnn: its attributes are Python callables, so the binding's restype /
argtypes assignments and calls work on it exactly as on a ctypes.CDLL.
"""

import ctypes

import pytest

from impls.nvidia import cudnn_ctypes as cl

ERRORS = {0: b"CUDNN_STATUS_SUCCESS", 2000: b"CUDNN_STATUS_BAD_PARAM", 3000: b"CUDNN_STATUS_NOT_SUPPORTED"}


class FakeLib:
    """Every symbol of cl.SIGNATURES (minus `missing`); calls return `status` and log themselves in `calls`."""

    def __init__(self, version: int = 91900, status: int = 0, missing: tuple[str, ...] = ()):
        self.calls: list[str] = []
        for name in cl.SIGNATURES:
            if name not in missing:
                setattr(self, name, self._make(name, version, status))

    def _make(self, name, version, status):
        def fn(*args):
            self.calls.append(name)
            if name == "cudnnGetVersion":
                return version
            if name == "cudnnGetErrorString":
                return ERRORS[args[0]]
            if name.startswith("cudnnCreate") and status == 0:
                args[0]._obj.value = 0x1234  # the handle/descriptor written through the out-pointer
            return status
        return fn


def test_library_absent_gives_reason():
    def loader(name):
        raise OSError(f"{name}: cannot open shared object file")

    with pytest.raises(cl.CudnnUnavailable, match="libcudnn not found"):
        cl.load(loader=loader, candidates=[])


def test_unavailable_reason_names_the_missing_library(monkeypatch):
    monkeypatch.setattr(cl, "gpu_unavailable_reason", lambda: None)

    def missing():
        raise cl.CudnnUnavailable("libcudnn not found: no nvidia-cudnn wheel")

    monkeypatch.setattr(cl, "library", missing)
    assert cl.unavailable_reason() == "libcudnn not found: no nvidia-cudnn wheel"


def test_unavailable_reason_without_gpu_comes_first(monkeypatch):
    monkeypatch.setattr(cl, "gpu_unavailable_reason", lambda: "no CUDA device")
    monkeypatch.setattr(cl, "library", lambda: pytest.fail("the library must not be probed without a GPU"))
    assert cl.unavailable_reason() == "no CUDA device"


def test_status_becomes_cudnn_message():
    lib = cl.Cudnn([FakeLib(status=2000)])
    with pytest.raises(cl.CudnnError, match=r"cudnnSetStream failed: CUDNN_STATUS_BAD_PARAM \(status 2000\)") as e:
        lib.set_stream(0x1234, 0)
    assert e.value.status == 2000 and e.value.function == "cudnnSetStream"


def test_failed_create_raises_instead_of_returning_a_null_handle():
    lib = cl.Cudnn([FakeLib(status=3000)])
    with pytest.raises(cl.CudnnError, match="CUDNN_STATUS_NOT_SUPPORTED"):
        lib.tensor_4d(1, 2, 3, 4)


def test_success_returns_the_created_objects():
    fake = FakeLib()
    lib = cl.Cudnn([fake])
    assert lib.create_handle() == 0x1234
    assert lib.max_pooling_2d(2, 2, 0, 0, 2, 2) == 0x1234
    assert fake.calls[-2:] == ["cudnnCreatePoolingDescriptor", "cudnnSetPooling2dDescriptor"]
    assert fake.cudnnSetPooling2dDescriptor.argtypes[1] is ctypes.c_int  # typed: argtypes were bound


def test_pooling_descriptor_takes_window_padding_and_stride_per_axis():
    fake = FakeLib()
    seen = []

    def set_pooling(*args):
        seen.append(args)
        return 0

    fake.cudnnSetPooling2dDescriptor = set_pooling
    cl.Cudnn([fake]).max_pooling_2d(3, 2, 1, 0, 2, 1)
    # desc, mode, NaN option, window h, w, padding h, w, stride h, w
    assert seen[0][1:] == (cl.CUDNN_POOLING_MAX, cl.CUDNN_PROPAGATE_NAN, 3, 2, 1, 0, 2, 1)


def test_symbols_missing_from_the_shim_come_from_libcudnn_ops():
    shim = FakeLib(missing=("cudnnPoolingForward", "cudnnSoftmaxBackward"))
    ops = FakeLib()
    lib = cl.Cudnn([shim, ops])
    lib.pooling_forward(1, 2, 3, 4, 5, 6)
    assert ops.calls == ["cudnnPoolingForward"]


def test_missing_symbol_is_unavailable():
    with pytest.raises(cl.CudnnUnavailable, match="no symbol cudnnSoftmaxForward"):
        cl.Cudnn([FakeLib(missing=("cudnnSoftmaxForward",))])


def test_too_old_version_is_unavailable(tmp_path):
    path = tmp_path / "libcudnn.so.7"
    with pytest.raises(cl.CudnnUnavailable, match=r"cuDNN 7\.6\.5 .* too old"):
        cl.load(loader=lambda name: FakeLib(version=7605), candidates=[path])


def test_wheel_layout_is_found_with_its_ops_sibling(tmp_path):
    lib_dir = tmp_path / "nvidia" / "cudnn" / "lib"
    lib_dir.mkdir(parents=True)
    for name in ("libcudnn.so.9", "libcudnn_ops.so.9"):
        (lib_dir / name).touch()
    candidates = cl.wheel_candidates([str(tmp_path)])
    assert candidates == [lib_dir / "libcudnn.so.9"]
    opened = []
    lib = cl.load(loader=lambda name: opened.append(name) or FakeLib(), candidates=candidates)
    assert opened == [str(lib_dir / "libcudnn.so.9"), str(lib_dir / "libcudnn_ops.so.9")]
    assert lib.origin == str(lib_dir / "libcudnn.so.9")


def test_unloadable_wheel_falls_back_to_the_system_loader(tmp_path):
    def loader(name):
        if name.startswith("/"):
            raise OSError("wrong ELF class")
        return FakeLib()

    lib = cl.load(loader=loader, candidates=[tmp_path / "libcudnn.so.9"])
    assert lib.origin == "libcudnn.so.9"


@pytest.mark.parametrize("v,text", [(91900, "9.19.0"), (90100, "9.1.0"), (8902, "8.9.2"), (7605, "7.6.5")])
def test_version_str(v, text):
    assert cl.version_str(v) == text
