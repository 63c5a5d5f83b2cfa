"""The float64 NumPy oracle every implementation is checked against (oracle.py) and the optimised CPU path (cpu.py)."""
