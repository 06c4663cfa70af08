"""OP registry: name -> class, filled by importing ``dj_ops.ops``."""

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
