"""The ``lines`` intermediate: ``text.splitlines()`` per row, shared by the line-length filters."""

from __future__ import annotations

from dj_ops.core.batch import Batch
from dj_ops.core.constants import InterVars


def lines_of(batch: Batch, text_key: str) -> list[list[str]]:
    """``str.splitlines()`` of every row's text (as Data-Juicer), computed once per batch."""
    texts = batch.columns.get(text_key) or [None] * len(batch)
    return batch.cached(
        f"{InterVars.lines}-{text_key}",
        lambda: [t.splitlines() if isinstance(t, str) else [] for t in texts],
    )
