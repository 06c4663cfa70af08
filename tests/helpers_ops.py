"""Helpers to run one OP on a list of samples, the way Data-Juicer's unit tests do."""

from __future__ import annotations

from dj_ops.ops.base import Deduplicator, Filter, Mapper
from dj_ops.core.batch import Batch
from dj_ops.core.registry import load_all_ops


def make_op(name: str, **params):
    return load_all_ops()[name](**params)


def run_op(op, samples: list[dict]) -> tuple[list[dict], Batch]:
    """Apply ``op`` to ``samples``; return the surviving/mapped rows and the final batch (with stats)."""
    batch = Batch.from_rows([dict(s) for s in samples])
    if isinstance(op, Mapper):
        batch = op.process_batched(batch)
    elif isinstance(op, Filter):
        op.ensure_stats(batch)
        full = batch
        batch = batch.take(op.keep(batch))
        return batch.rows(), full
    elif isinstance(op, Deduplicator):
        keys = op.compute_hash(batch)
        index = op.new_index()
        if index.streaming:
            dup_of = index.check(batch.row_ids.tolist(), keys)
            batch = batch.take([d is None for d in dup_of])
        else:
            index.add(batch.row_ids.tolist(), keys)
            removed = index.finalize()
            batch = batch.take([rid not in removed for rid in batch.row_ids.tolist()])
    return batch.rows(), batch
