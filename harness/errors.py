"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class UsageError(ValueError):
    """Bad input from the user: an unknown name, an impossible shape, a missing file.

    The message is one line that names the problem and, where there are any, the valid choices.
    """


def choices_error(kind: str, given: str, valid) -> UsageError:
    """`unknown op 'foo'; valid: conv2d, gemm, ...` as a UsageError."""
    return UsageError(f"unknown {kind} '{given}'; valid: {', '.join(sorted(valid))}")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`RuntimeError: first line of the message`, at most `limit` characters: how a failed call is reported in a
    result row, a skip reason or a note (tracebacks and multi-line library messages would break tables)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:limit]
