"""A small, typed ctypes binding to cuDNN's legacy descriptor API: pooling, softmax and activation.

The cuDNN Frontend graph API has no pooling, softmax or standalone activation node, and no maintained Python
package exposes cuDNN's legacy calls any more (CuPy 14 removed `cupy.cudnn`), so this module binds exactly the
calls cudnn_legacy.py needs and nothing else. Every call's status is checked; a failure raises CudnnError whose
message is cuDNN's own (cudnnGetErrorString) plus the name of the call.

Where the library comes from: the nvidia-cudnn wheels (PyTorch's `nvidia/cudnn/lib`, or `nvidia/*/lib`) in any
site-packages directory first, then the system loader (`libcudnn.so.9`, `.8`). In cuDNN 9 `libcudnn.so` is a shim
that forwards to its sub-libraries; a symbol it does not export is looked up in `libcudnn_ops` beside it.
"""

from __future__ import annotations

import ctypes
import functools
import site
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.device import gpu_unavailable_reason

MIN_VERSION = 8000  # cudnnGetVersion() encoding: major·1000 + minor·100 + patch (8.x), major·10000 + ... (9.x)
SYSTEM_NAMES = ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so")

# Enum values from cudnn_ops.h / cudnn_graph.h (stable since cuDNN 7).
CUDNN_TENSOR_NCHW = 0
CUDNN_DATA_FLOAT = 0
CUDNN_POOLING_MAX = 0
CUDNN_PROPAGATE_NAN = 1
CUDNN_ACTIVATION_SIGMOID = 0
CUDNN_ACTIVATION_RELU = 1
CUDNN_SOFTMAX_LOG = 2
CUDNN_SOFTMAX_MODE_INSTANCE = 0

_status = ctypes.c_int  # cudnnStatus_t
_ptr = ctypes.c_void_p  # handles, descriptors, device pointers and host scaling-factor pointers alike
_int = ctypes.c_int
_out = ctypes.POINTER(ctypes.c_void_p)

# name -> (restype, argtypes): the only calls this binding makes.
SIGNATURES: dict[str, tuple[object, list]] = {
    "cudnnGetVersion": (ctypes.c_size_t, []),
    "cudnnGetErrorString": (ctypes.c_char_p, [_status]),
    "cudnnCreate": (_status, [_out]),
    "cudnnSetStream": (_status, [_ptr, _ptr]),
    "cudnnCreateTensorDescriptor": (_status, [_out]),
    "cudnnSetTensor4dDescriptor": (_status, [_ptr, _int, _int, _int, _int, _int, _int]),
    "cudnnDestroyTensorDescriptor": (_status, [_ptr]),
    "cudnnCreatePoolingDescriptor": (_status, [_out]),
    "cudnnSetPooling2dDescriptor": (_status, [_ptr, _int, _int, _int, _int, _int, _int, _int, _int]),
    "cudnnDestroyPoolingDescriptor": (_status, [_ptr]),
    "cudnnCreateActivationDescriptor": (_status, [_out]),
    "cudnnSetActivationDescriptor": (_status, [_ptr, _int, _int, ctypes.c_double]),
    "cudnnDestroyActivationDescriptor": (_status, [_ptr]),
    # (handle, desc, alpha, xDesc, x, beta, yDesc, y)
    "cudnnPoolingForward": (_status, [_ptr] * 8),
    "cudnnActivationForward": (_status, [_ptr] * 8),
    # (handle, desc, alpha, yDesc, y, dyDesc, dy, xDesc, x, beta, dxDesc, dx)
    "cudnnPoolingBackward": (_status, [_ptr] * 12),
    "cudnnActivationBackward": (_status, [_ptr] * 12),
    # (handle, algo, mode, alpha, xDesc, x, beta, yDesc, y)
    "cudnnSoftmaxForward": (_status, [_ptr, _int, _int] + [_ptr] * 6),
    # (handle, algo, mode, alpha, yDesc, y, dyDesc, dy, beta, dxDesc, dx)
    "cudnnSoftmaxBackward": (_status, [_ptr, _int, _int] + [_ptr] * 8),
}

_ONE = ctypes.c_float(1.0)  # alpha/beta are float for float tensors: out = 1·op(in) + 0·out
_ZERO = ctypes.c_float(0.0)
ONE, ZERO = ctypes.addressof(_ONE), ctypes.addressof(_ZERO)


class CudnnError(RuntimeError):
    """A cuDNN call returned a status other than CUDNN_STATUS_SUCCESS."""

    def __init__(self, function: str, status: int, message: str):
        super().__init__(f"{function} failed: {message} (status {status})")
        self.function, self.status = function, status


class CudnnUnavailable(RuntimeError):
    """libcudnn could not be found or loaded, or lacks a needed call; the message says why."""


def _symbol(libs: Iterable, name: str) -> Callable:
    for lib in libs:
        try:
            return getattr(lib, name)
        except AttributeError:
            continue
    raise CudnnUnavailable(f"libcudnn has no symbol {name}")


class Cudnn:
    """The bound calls of one loaded libcudnn (plus libcudnn_ops when the shim does not export a symbol).

    `libs` are ctypes library objects (or anything with the same attributes: the tests pass a fake). Each method
    is one cuDNN call with its status checked; descriptors and handles are plain integers.
    """

    def __init__(self, libs: list, origin: str = ""):
        self.origin = origin
        self._fn: dict[str, Callable] = {}
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = _symbol(libs, name)
            fn.restype, fn.argtypes = restype, argtypes
            self._fn[name] = fn

    # ------------------------------------------------------------------ status and version
    def error_string(self, status: int) -> str:
        text = self._fn["cudnnGetErrorString"](status)
        return text.decode() if isinstance(text, bytes) else str(text)

    def call(self, name: str, *args) -> None:
        """Call `name` and raise CudnnError (cuDNN's message) unless it returns CUDNN_STATUS_SUCCESS (0)."""
        status = int(self._fn[name](*args))
        if status != 0:
            raise CudnnError(name, status, self.error_string(status))

    def version(self) -> int:
        return int(self._fn["cudnnGetVersion"]())

    def _create(self, name: str) -> int:
        out = ctypes.c_void_p()
        self.call(name, ctypes.byref(out))
        return int(out.value or 0)

    # ------------------------------------------------------------------ handle
    def create_handle(self) -> int:
        return self._create("cudnnCreate")

    def set_stream(self, handle: int, stream: int) -> None:
        self.call("cudnnSetStream", handle, stream)

    # ------------------------------------------------------------------ descriptors
    def tensor_4d(self, n: int, c: int, h: int, w: int) -> int:
        """A packed NCHW float32 tensor descriptor."""
        desc = self._create("cudnnCreateTensorDescriptor")
        self.call("cudnnSetTensor4dDescriptor", desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w)
        return desc

    def max_pooling_2d(self, r: int, s: int, pad_h: int, pad_w: int, stride_h: int, stride_w: int) -> int:
        """Max pooling over r×s windows, padding and stride per axis (cudnnSetPooling2dDescriptor's order: window,
        padding, stride, each vertical then horizontal), NaNs propagated. CUDNN_POOLING_MAX leaves the padding
        out of every window (as −inf would be): it is never the maximum and gets no gradient."""
        desc = self._create("cudnnCreatePoolingDescriptor")
        self.call("cudnnSetPooling2dDescriptor", desc, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN, r, s, pad_h, pad_w,
                  stride_h, stride_w)
        return desc

    def activation(self, mode: int) -> int:
        """An activation descriptor (CUDNN_ACTIVATION_RELU or _SIGMOID; the coefficient is unused by both)."""
        desc = self._create("cudnnCreateActivationDescriptor")
        self.call("cudnnSetActivationDescriptor", desc, mode, CUDNN_PROPAGATE_NAN, 0.0)
        return desc

    # ------------------------------------------------------------------ operations (y = 1·op + 0·y)
    def pooling_forward(self, handle: int, pool: int, x_desc: int, x: int, y_desc: int, y: int) -> None:
        self.call("cudnnPoolingForward", handle, pool, ONE, x_desc, x, ZERO, y_desc, y)

    def pooling_backward(self, handle: int, pool: int, y_desc: int, y: int, dy: int, x_desc: int, x: int,
                         dx: int) -> None:
        self.call("cudnnPoolingBackward", handle, pool, ONE, y_desc, y, y_desc, dy, x_desc, x, ZERO, x_desc, dx)

    def activation_forward(self, handle: int, act: int, desc: int, x: int, y: int) -> None:
        self.call("cudnnActivationForward", handle, act, ONE, desc, x, ZERO, desc, y)

    def activation_backward(self, handle: int, act: int, desc: int, y: int, dy: int, x: int, dx: int) -> None:
        self.call("cudnnActivationBackward", handle, act, ONE, desc, y, desc, dy, desc, x, ZERO, desc, dx)

    def softmax_forward(self, handle: int, algo: int, desc: int, x: int, y: int) -> None:
        """Softmax (or log-softmax with CUDNN_SOFTMAX_LOG) over C·H·W of each n."""
        self.call("cudnnSoftmaxForward", handle, algo, CUDNN_SOFTMAX_MODE_INSTANCE, ONE, desc, x, ZERO, desc, y)

    def softmax_backward(self, handle: int, algo: int, desc: int, y: int, dy: int, dx: int) -> None:
        """The gradient through softmax (log-softmax with CUDNN_SOFTMAX_LOG, `y` then being log p)."""
        self.call("cudnnSoftmaxBackward", handle, algo, CUDNN_SOFTMAX_MODE_INSTANCE, ONE, desc, y, desc, dy,
                  ZERO, desc, dx)


def wheel_candidates(dirs: Iterable[str] | None = None) -> list[Path]:
    """libcudnn.so.* files of nvidia-cudnn wheels under the site-packages directories (PyTorch's among them)."""
    if dirs is None:
        dirs = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    found: list[Path] = []
    for d in dict.fromkeys(str(x) for x in dirs if x):
        root = Path(d) / "nvidia"
        if root.is_dir():
            found += sorted(root.glob("cudnn/lib/libcudnn.so.*")) + sorted(root.glob("*/lib/libcudnn.so.*"))
    return list(dict.fromkeys(found))


def _open_all(loader: Callable[[str], object], candidates: list[Path]) -> tuple[list, str]:
    """Open the first loadable libcudnn (wheels first, then the system loader) and its libcudnn_ops sibling."""
    errors = []
    for path in candidates:
        try:
            lib = loader(str(path))
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        libs = [lib]
        for ops in sorted(path.parent.glob("libcudnn_ops.so.*")):
            try:
                libs.append(loader(str(ops)))
                break
            except OSError:
                continue
        return libs, str(path)
    for name in SYSTEM_NAMES:
        try:
            lib = loader(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        libs = [lib]
        for ops in ("libcudnn_ops.so.9", "libcudnn_ops.so"):
            try:
                libs.append(loader(ops))
                break
            except OSError:
                continue
        return libs, name
    raise CudnnUnavailable("libcudnn not found: no nvidia-cudnn wheel in site-packages and the system loader has "
                           f"none (pip install nvidia-cudnn-cu13 or -cu12); tried {len(errors)} paths")


def load(loader: Callable[[str], object] = ctypes.CDLL, candidates: list[Path] | None = None) -> Cudnn:
    """Find, load and bind libcudnn; raise CudnnUnavailable (with the reason) when it is absent or too old."""
    libs, origin = _open_all(loader, wheel_candidates() if candidates is None else candidates)
    lib = Cudnn(libs, origin)
    v = lib.version()
    if v < MIN_VERSION:
        raise CudnnUnavailable(f"cuDNN {version_str(v)} at {origin} is too old (need >= {version_str(MIN_VERSION)})")
    return lib


def version_str(v: int) -> str:
    """cudnnGetVersion()'s integer as major.minor.patch (9.x: 91900 -> 9.19.0; 8.x: 8902 -> 8.9.2)."""
    if v >= 90000:
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return f"{v // 1000}.{v // 100 % 10}.{v % 100}"


@functools.cache
def library() -> Cudnn:
    """The process's bound libcudnn (loaded once)."""
    return load()


def unavailable_reason() -> str | None:
    """None when a CUDA device and a usable libcudnn are present; otherwise why not."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        return reason
    try:
        library()
    except CudnnUnavailable as exc:
        return str(exc)
    return None
