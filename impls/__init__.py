"""Implementations, grouped by family:

    reference/  the float64 NumPy oracle and the optimised CPU path
    cuda/       from-scratch CUDA kernels (.cu files beside their CuPy wrappers)
    nvidia/     the vendor libraries, cuBLAS and cuDNN (graph API through the cuDNN Frontend, legacy API through ctypes)
    peers/      PyTorch

Every module under this package is imported by `harness.registry.discover()`; each registers its callables with
`@register`. Modules that need optional libraries import them lazily or guard the import, so that discovery never
fails on a machine without them (availability checks then say why). The folders are for readers: nothing in the
harness knows them."""
