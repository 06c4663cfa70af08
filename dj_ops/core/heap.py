"""Keeps Python's cyclic garbage collector off the objects a process already holds while work runs.

A full collection walks every tracked object of the process: a Dagster step process (Dagster,
SQLAlchemy, the recipe's definitions, the run's context) holds hundreds of thousands, and a run of
a few seconds triggered several full collections (bench/RESULTS.md has the figures).  Objects alive when work starts
(imports, definitions, loaded models) live on anyway: :func:`frozen_heap` moves them to the
collector's permanent generation (``gc.freeze``), so collections during the work only walk what
the work made, and forked workers never touch (and so copy) the pages those objects live on.

The heap stays frozen after the work: most processes do one run and exit (``dj-process``,
``dagster job execute``, Dagster's run and step workers), and unfreezing would only start the
full collection the freeze avoided.  The next ``frozen_heap`` of the process first returns every
object to the collector and collects, so garbage left by one run never outlives the next run's
start; :func:`thaw` does that at once (e.g. a long-lived process done with its runs).
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_owner = False  # the outermost frozen_heap froze the heap (nobody else had)
_kept = False  # an earlier frozen_heap left the heap frozen


def _thaw_kept() -> None:
    global _kept
    if _kept:
        _kept = False
        gc.unfreeze()
        gc.collect()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Objects alive on entry are out of the collector's reach (see the module's doc).  Nested
    uses also freeze what was made since; a heap frozen by someone else (``gc.freeze`` called
    outside) is left as it is."""
    global _depth, _owner, _kept
    with _lock:
        if _depth == 0:
            _thaw_kept()
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
                _kept = True


def thaw() -> None:
    """Every object frozen by :func:`frozen_heap` back to the collector, and a full collection."""
    with _lock:
        if _depth == 0:
            _thaw_kept()


def release_free_memory() -> None:
    """Hand memory this process freed back to the system.  Arrow's allocator and glibc's malloc
    both keep freed blocks for reuse; a coordinator that received and wrote a partition's rows
    held hundreds of MiB of them between passes (bench/RESULTS.md), memory nothing used but that
    counted against the run."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass
