"""The vendor libraries as baselines: cuBLAS (cublas.py, through cupy.matmul), cuDNN's graph API through the
cuDNN Frontend (cudnn_graph.py: conv2d, gemm) and cuDNN's legacy API for the ops the graph API lacks
(cudnn_legacy.py: pooling, activations, softmax; over the ctypes binding cudnn_ctypes.py)."""
