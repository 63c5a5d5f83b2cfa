"""Implementations from outside the package: a user's module is imported before a run, and its `@register`
functions run beside the built-in ones, with the same checks, timing, rows and report.

Three ways to name plugins, all loaded by `load()`:
- `--plugin my_kernels.py` or `--plugin my_pkg.kernels` on `run`, `list`, `train`, `train-bench` (repeatable);
- $KERNEL_HARNESS_PLUGINS: paths or module names separated by the OS path separator (':' on Linux);
- installed packages that declare an entry point in the group "kernel_harness.impls" (pyproject.toml:
  `[project.entry-points."kernel_harness.impls"] mine = "my_pkg.kernels"`).

A plugin that is missing or fails to import is a UsageError naming it and the error: one line, exit 2, nothing run.
A file plugin is imported under its own name with its folder on sys.path, so it can import its sibling modules.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from harness.errors import UsageError, one_line
from harness.registry import discover

ENV = "KERNEL_HARNESS_PLUGINS"
GROUP = "kernel_harness.impls"
LOADED: dict[str, str] = {}  # what was asked for -> the module it was imported as


def env_plugins() -> list[str]:
    """The plugins named in $KERNEL_HARNESS_PLUGINS."""
    return [p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]


def load(names: list[str] | None = None) -> list[str]:
    """Import the built-in implementations, then every plugin in `names`, $KERNEL_HARNESS_PLUGINS and the
    entry points, each once; returns the module names imported. UsageError when one is missing or fails."""
    discover()
    for name in [*(names or []), *env_plugins()]:
        if name not in LOADED:
            LOADED[name] = _import(name.strip())
    for ep in importlib.metadata.entry_points(group=GROUP):
        key = f"entry point {ep.name}"
        if key not in LOADED:
            try:
                LOADED[key] = ep.load().__name__
            except Exception as exc:
                raise UsageError(f"plugin {key} ({ep.value}) failed to import: {one_line(exc)}") from None
    return list(LOADED.values())


def _is_path(name: str) -> bool:
    return name.endswith(".py") or os.sep in name or Path(name).exists()


def _import(name: str) -> str:
    if _is_path(name):
        return _import_file(Path(name))
    try:
        return importlib.import_module(name).__name__
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise UsageError(f"plugin {name}: no such file or importable module") from None
        raise UsageError(f"plugin {name} failed to import: {one_line(exc)}") from None
    except Exception as exc:
        raise UsageError(f"plugin {name} failed to import: {one_line(exc)}") from None


def _import_file(path: Path) -> str:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"plugin {path}: no such file")
    module_name = f"harness_plugin_{path.stem}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(path):
        return module_name
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UsageError(f"plugin {path} failed to import: {one_line(exc)}") from None
    return module_name
