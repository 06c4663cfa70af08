"""Keeps Python's cyclic garbage collector off the objects a process already holds while work runs.

A full collection walks every tracked object of the process: in an orchestrator's process
(Dagster, its GraphQL schema, SQLAlchemy, the recipe's definitions: over a million objects) one
takes 70-100 ms, and a run of a few seconds triggers several.  Objects alive when work starts
(imports, definitions, loaded models) live on anyway: :func:`frozen_heap` moves them to the
collector's permanent generation (``gc.freeze``), so collections during the work only walk what
the work made, and forked workers never touch (and so copy) the pages those objects live on.
Every object returns to the collector when the outermost ``frozen_heap`` exits.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_owner = False  # the outermost frozen_heap froze the heap, so it unfreezes it


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Objects alive on entry are out of the collector's reach until the outermost exit.  Nested
    uses also freeze what was made since; a heap frozen by someone else (``gc.freeze`` called
    outside) is left as it is."""
    global _depth, _owner
    with _lock:
        if _depth == 0:
            _owner = gc.get_freeze_count() == 0
        _depth += 1
        if _owner:
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _owner:
                gc.unfreeze()
