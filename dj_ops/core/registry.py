"""OP registry: name -> class, filled by importing the OP modules of ``dj_ops.ops``.

One OP per file, named as the OP (``dj_ops/ops/<mapper|filter|deduplicator>/<name>.py``), so
:func:`op_class` imports just the module of the OP it is asked for; :func:`load_all_ops` imports
them all (listing every OP, or finding one registered under another module name)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

OPERATORS: dict[str, type] = {}

_DJ_NAMES_FILE = Path(__file__).resolve().parent.parent / "assets" / "data_juicer_op_names.txt"


def register(name: str):
    """Class decorator: ``@register("text_length_filter")``."""

    def deco(cls):
        if name in OPERATORS and OPERATORS[name] is not cls:
            raise ValueError(f"OP {name!r} registered twice ({OPERATORS[name]} and {cls})")
        cls.name = name
        OPERATORS[name] = cls
        return cls

    return deco


_loaded = False


def op_modules() -> list[str]:
    """The modules under dj_ops.ops (the OPs, one per file, and what they share), by name."""
    import dj_ops.ops as ops_pkg

    return [info.name for info in pkgutil.walk_packages(ops_pkg.__path__, prefix="dj_ops.ops.") if not info.ispkg]


_KINDS = ("mapper", "filter", "deduplicator")


def op_class(name: str) -> type | None:
    """The class registered as ``name`` (None if none is): its own module is imported on first
    use, every OP module when it has none."""
    if name not in OPERATORS and name.isidentifier():
        for kind in _KINDS:
            module = f"dj_ops.ops.{kind}.{name}"
            try:
                importlib.import_module(module)
                break
            except ModuleNotFoundError as exc:
                if exc.name != module:  # the OP's module exists but lacks a dependency
                    raise
    if name not in OPERATORS:
        load_all_ops()
    return OPERATORS.get(name)


def load_all_ops() -> dict[str, type]:
    """Import every module under dj_ops.ops (one OP per file) and return the registry."""
    global _loaded
    if not _loaded:
        for name in op_modules():
            importlib.import_module(name)
        _loaded = True
    return OPERATORS


def data_juicer_op_names() -> frozenset[str]:
    """Every OP name Data-Juicer registers, to tell 'not implemented here' from 'unknown'."""
    return frozenset(line.strip() for line in _DJ_NAMES_FILE.read_text().splitlines() if line.strip())
