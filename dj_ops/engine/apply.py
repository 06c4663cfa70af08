"""Running one OP on one batch, the way a run does: :func:`apply_op`.

The worker chain, the fusion planner's probe, GPU placement's measurement and the OP tests all
go through here, so an OP behaves the same wherever it runs:

- a **filter** computes its stats once (or reuses stats already present) and, unless
  ``filter_rows=False`` (the analyzer), drops the rows outside its bounds;
- a **mapper** maps (it may change the row count);
- a **deduplicator** only computes one key per row (the coordinator decides, in input order);
- rows the OP marks bad (``batch.mark_bad``), and rows on which it raises, are **set aside** with
  the reason; the batch goes on without them.  When the OP raises on a batch, it is retried row
  by row to find the rows at fault (``skip_op_error: false`` re-raises instead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import orjson

from dj_ops.core.batch import Batch, concat_batches
from dj_ops.ops.base import OP, Deduplicator, Filter, Mapper


@dataclass
class SetAside:
    """A row the OP could not process: its input row id, why, and a preview of the row."""

    row_id: int
    reason: str
    preview: str


@dataclass
class Applied:
    """What applying one OP to a batch gave."""

    #: the rows that go on: a filter's kept rows, a mapper's output, every row of a deduplicator
    batch: Batch
    #: a filter's rows with their stats (bad rows removed) and its keep mask over them
    scored: Batch | None = None
    mask: np.ndarray | None = None
    #: a deduplicator's key of every row of ``batch``
    keys: list | None = None
    #: a mapper's text column before it ran (when it kept the rows in place), to diff for traces
    texts_before: list | None = None
    changed: int = 0
    set_aside: list[SetAside] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def removed(self) -> Batch | None:
        """The rows a filter removed, with their stats."""
        if self.scored is None or self.mask is None or self.mask.all():
            return None
        return self.scored.take(~self.mask)


#: transforms a filter's stat column before the filter decides (Data-Juicer's lossy JSON round trip)
StatsTransform = Callable[[list], list]


def apply_op(op: OP, batch: Batch, *, filter_rows: bool = True, stats_transform: StatsTransform | None = None,
             skip_errors: bool | None = None) -> Applied:
    """Run ``op`` on ``batch`` (see the module docstring).  ``batch`` may be changed in place.

    ``skip_errors``: set aside the rows on which the OP raises (default: the OP's
    ``skip_op_error``); False lets the exception through."""
    t0 = time.perf_counter()
    set_aside: list[SetAside] = []
    skip = op.skip_op_error if skip_errors is None else skip_errors
    if isinstance(op, Filter):
        def score(b: Batch) -> Batch:
            op.ensure_stats(b)
            if stats_transform is not None:
                for key in op.stats_keys:
                    b.stats[key] = stats_transform(b.stats[key])
            return b

        scored = _isolated(op, batch, score, set_aside, skip)
        mask = np.asarray(op.keep(scored), dtype=bool) if filter_rows and len(scored) \
            else np.ones(len(scored), dtype=bool)
        out = Applied(scored.take(mask), scored=scored, mask=mask)
    elif isinstance(op, Mapper):
        before = list(batch.columns.get(op.text_key, []))
        before_ids = batch.row_ids
        mapped = _isolated(op, batch, op.process_batched, set_aside, skip)
        out = Applied(mapped)
        if len(mapped) == len(before) and (before_ids == mapped.row_ids).all():
            after = mapped.columns.get(op.text_key, [])
            out.changed = sum(1 for a, b in zip(before, after) if a is not b and a != b)
            out.texts_before = before
    elif isinstance(op, Deduplicator):
        key_column = f"__dj__dedup_keys:{id(op)}"

        def hash_rows(b: Batch) -> Batch:
            b.cache[key_column] = op.compute_hash(b)
            return b

        hashed = _isolated(op, batch, hash_rows, set_aside, skip)
        out = Applied(hashed, keys=hashed.cache.pop(key_column, []))
    else:
        raise TypeError(f"{op.name}: unsupported OP type {type(op).__name__}")
    out.set_aside = set_aside
    out.seconds = time.perf_counter() - t0
    return out


def _isolated(op: OP, batch: Batch, step: Callable[[Batch], Batch], set_aside: list[SetAside], skip: bool
              ) -> Batch:
    """``step(batch)``; if it raises and ``skip``, retried row by row with the failing rows set
    aside.  Rows the OP itself marked bad are set aside too."""
    try:
        return _without_marked(op, step(batch), set_aside)
    except Exception:
        if not skip:
            raise
    parts = []
    for i in range(len(batch)):
        single = batch.take(np.array([i]))
        try:
            parts.append(_without_marked(op, step(single), set_aside))
        except Exception as exc:  # noqa: BLE001 - any OP failure on a row is reported, not fatal
            set_aside.append(SetAside(int(single.row_ids[0]), f"{op.name} raised {type(exc).__name__}: {exc}",
                                      row_preview(single, 0)))
    return concat_batches(parts)


def _without_marked(op: OP, batch: Batch, set_aside: list[SetAside]) -> Batch:
    if not batch.bad:
        return batch
    marked, batch.bad = batch.bad, {}
    for pos, reason in sorted(marked.items()):
        set_aside.append(SetAside(int(batch.row_ids[pos]), f"{op.name}: {reason}", row_preview(batch, pos)))
    keep = np.ones(len(batch), dtype=bool)
    keep[list(marked)] = False
    return batch.take(keep)


def row_preview(batch: Batch, i: int, limit: int = 2000) -> str:
    """Row ``i`` as JSON, cut at ``limit`` characters (what a bad-rows record shows)."""
    row: dict[str, Any] = {k: v[i] for k, v in batch.columns.items()}
    text = orjson.dumps(row, default=str).decode()
    return text[:limit] + ("..." if len(text) > limit else "")
