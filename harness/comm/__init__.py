"""Multi-GPU communication: the NCCL binding (nccl) and its all-reduce bandwidth benchmark (allreduce)."""
