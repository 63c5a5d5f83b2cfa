"""kernel-harness: check and time interchangeable implementations of deep-learning operations.

The public API for implementations of your own (see README, "Check your own kernel"):

    from harness import register          # the decorator that adds an implementation
    from harness import cuda              # cuda.kernel("my_conv.cu", "my_conv_fprop"): compile a .cu file
    from harness.testing import assert_matches_oracle
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `import harness` stays cheap and free of cycles
    if name == "register":
        from harness.registry import register

        return register
    if name == "cuda":
        import importlib

        return importlib.import_module("harness.cuda")
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
