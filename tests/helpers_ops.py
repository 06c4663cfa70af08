"""Helpers to run one OP on a list of samples, the way a run applies it (``apply_op``)."""

from __future__ import annotations

from dj_ops.core.batch import Batch
from dj_ops.core.registry import load_all_ops
from dj_ops.engine import Applied, apply_op
from dj_ops.ops.base import Deduplicator


def make_op(name: str, **params):
    return load_all_ops()[name](**params)


def apply_to(op, samples: list[dict], **kwargs) -> Applied:
    """``apply_op`` on ``samples``; an exception in the OP propagates (as in Data-Juicer's tests)
    unless ``skip_errors=True``."""
    return apply_op(op, Batch.from_rows([dict(s) for s in samples]), **{"skip_errors": False, **kwargs})


def run_op(op, samples: list[dict]) -> tuple[list[dict], Batch]:
    """Apply ``op`` to ``samples``: the rows it keeps (a deduplicator's decided by its index, in
    order) and the batch with their stats (a filter's: every row it scored, kept or not)."""
    res = apply_to(op, samples)
    if not isinstance(op, Deduplicator):
        return res.batch.rows(), res.scored if res.scored is not None else res.batch
    batch, index = res.batch, op.new_index()
    if index.streaming:
        dup_of = index.check(batch.row_ids.tolist(), res.keys)
        batch = batch.take([d is None for d in dup_of])
    else:
        index.add(batch.row_ids.tolist(), res.keys)
        removed = index.finalize()
        batch = batch.take([rid not in removed for rid in batch.row_ids.tolist()])
    return batch.rows(), batch
