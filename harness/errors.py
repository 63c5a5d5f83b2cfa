"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class UsageError(ValueError):
    """Bad input from the user: an unknown name, an impossible shape, a missing file.

    The message is one line that names the problem and, where there are any, the valid choices.
    """


def choices_error(kind: str, given: str, valid) -> UsageError:
    """`unknown op 'foo'; valid: conv2d, gemm, ...` as a UsageError."""
    return UsageError(f"unknown {kind} '{given}'; valid: {', '.join(sorted(valid))}")
