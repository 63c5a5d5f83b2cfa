"""From-scratch CUDA kernels run through CuPy RawKernel: each op's `.cu` files beside its Python wrapper
(conv2d.py with conv2d_naive.cu and conv2d_implicit_gemm.cu, ...); common.py compiles and launches them,
bandwidth.py holds the launch arithmetic of the memory-bound kernels."""
