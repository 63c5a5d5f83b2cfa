"""Implementations. Every module here is imported by `harness.registry.discover()`; each registers its
callables with `@register`. Modules that need optional libraries import them lazily or guard the import, so
that discovery never fails on a machine without them (availability checks then say why)."""
