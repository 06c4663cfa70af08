"""Columnar batch passed through an OP chain.

A batch holds the user columns as Python lists (one entry per row), the stats computed by
filters (also columnar: stat key -> list), and a cache of intermediates (words, lines, decoded
images ...) that several OPs share (the contract: :mod:`dj_ops.ops.base.intermediates`).  Rows are only ever selected as a whole with ``take``, which
keeps columns, stats, cache and the input row ids aligned.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np


class Batch:
    __slots__ = ("columns", "stats", "cache", "row_ids", "bad", "shared_slice")

    def __init__(
        self,
        columns: dict[str, list],
        row_ids: Sequence[int] | np.ndarray | None = None,
        stats: dict[str, list] | None = None,
        cache: dict[str, list] | None = None,
    ):
        self.columns = columns
        n = len(next(iter(columns.values()))) if columns else 0
        self.row_ids = np.arange(n, dtype=np.int64) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
        self.stats = stats if stats is not None else {}
        self.cache = cache if cache is not None else {}
        #: rows an OP could not process (position -> reason), set aside by the executor after the OP
        self.bad: dict[int, str] = {}
        #: this batch is one slice of a fused group: OPs share its slice-lived intermediates
        #: instead of slicing it again (see :mod:`dj_ops.ops.base.intermediates`)
        self.shared_slice = False

    @classmethod
    def from_rows(cls, rows: list[dict], row_ids: Sequence[int] | None = None) -> "Batch":
        keys: dict[str, None] = {}
        for r in rows:
            for k in r:
                keys.setdefault(k, None)
        columns = {k: [r.get(k) for r in rows] for k in keys}
        if not rows:
            return cls({}, row_ids=np.zeros(0, dtype=np.int64))
        return cls(columns, row_ids=row_ids)

    def __len__(self) -> int:
        return len(self.row_ids)

    def rows(self) -> list[dict]:
        """Rows as dicts (user columns only)."""
        keys = list(self.columns)
        cols = [self.columns[k] for k in keys]
        return [dict(zip(keys, vals)) for vals in zip(*cols)] if keys else [{} for _ in range(len(self))]

    def row_stats(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.stats.items()}

    def take(self, selector: np.ndarray | Sequence[int] | Sequence[bool]) -> "Batch":
        """Rows where ``selector`` is True (bool mask) or at the given positions (int array)."""
        sel = np.asarray(selector)
        idx = np.flatnonzero(sel) if sel.dtype == bool else sel.astype(np.int64)
        if len(idx) == len(self) and (len(idx) == 0 or (idx == np.arange(len(self))).all()):
            return self
        pick = idx.tolist()

        def sub(d: dict[str, list]) -> dict[str, list]:
            return {k: [v[i] for i in pick] for k, v in d.items()}

        return Batch(sub(self.columns), self.row_ids[idx], sub(self.stats), sub(self.cache))

    def cached(self, key: str, compute: Callable[[], list]) -> list:
        """Intermediate ``key`` for every row, computed once per batch and shared by all OPs."""
        val = self.cache.get(key)
        if val is None:
            val = compute()
            self.cache[key] = val
        return val

    def mark_bad(self, position: int, reason: str) -> None:
        """Report that row ``position`` is bad input (a missing or corrupt image, ...).

        The OP still writes a placeholder value for that row; the executor removes the row after
        the OP and writes it to the bad-rows file with the reason, and the run goes on.
        """
        self.bad.setdefault(position, reason)

    def set_column(self, key: str, values: list) -> None:
        self.columns[key] = values

    def invalidate_cache(self) -> None:
        self.cache.clear()


def get_nested(row_value: Any, path: Iterable[str]) -> Any:
    """Value at a dotted path inside nested dicts; None when absent."""
    cur = row_value
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def column_path(batch: Batch, dotted_key: str) -> list:
    """Per-row values for a dotted key such as ``meta.suffix`` (Data-Juicer's nested access)."""
    if dotted_key in batch.columns:
        return batch.columns[dotted_key]
    head, *rest = dotted_key.split(".")
    col = batch.columns.get(head)
    if col is None:
        return [None] * len(batch)
    return [get_nested(v, rest) for v in col]


def concat_batches(parts: list[Batch]) -> Batch:
    """Rows of ``parts`` in order; a stat or cache entry missing from any part is dropped."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Batch({}, row_ids=np.zeros(0, dtype=np.int64))
    if len(parts) == 1:
        return parts[0]

    def merge(dicts: list[dict[str, list]], fill_missing: bool) -> dict[str, list]:
        keys: dict[str, None] = {}
        for d in dicts:
            keys.update(dict.fromkeys(d))
        out = {}
        for k in keys:
            if not fill_missing and not all(k in d for d in dicts):
                continue
            vals: list = []
            for d, p in zip(dicts, parts):
                vals.extend(d[k] if k in d else [None] * len(p))
            out[k] = vals
        return out

    return Batch(
        merge([p.columns for p in parts], fill_missing=True),
        np.concatenate([p.row_ids for p in parts]),
        merge([p.stats for p in parts], fill_missing=False),
        merge([p.cache for p in parts], fill_missing=False),
    )
