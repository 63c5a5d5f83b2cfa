"""kernel-harness: check and time interchangeable implementations of deep-learning operations."""

__version__ = "0.1.0"
