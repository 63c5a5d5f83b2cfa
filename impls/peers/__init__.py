"""Other frameworks as peers: PyTorch's own operators (pytorch.py), on the GPU and the CPU."""
