"""The coordinator of one pass: chunk results in input order -> decisions, outputs, report.

It receives every chunk's result strictly in input order, feeds the deduplicators' keys to their
indexes (so the first occurrence in input order survives, exactly as a sequential run decides),
writes the kept rows, bad rows and traces, and adds up the per-OP metrics.  With ``hold_back``
(the position of a near-duplicate deduplicator that ends the chain) that deduplicator's index
only collects keys and every row is written: :class:`Held` says which, for the barrier
(:mod:`dj_ops.engine.dedup`) to decide afterwards.
"""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dj_ops.core.heap import release_free_memory
from dj_ops.core.recipe import Recipe
from dj_ops.ops.base import OP, DedupIndex, Deduplicator

from .chain import ChunkResult
from .report import OpMetrics, RunReport, op_row
from .sinks import BadRowSink, Outputs, TraceCollector


#: the coordinator hands freed memory back to the system every this many chunks (the rows it
#: received and wrote leave freed blocks behind that the allocators would otherwise keep)
RELEASE_EVERY_CHUNKS = 32


@dataclass
class Held:
    """What a pass held back at its last (near-duplicate) deduplicator: the index holding every
    key, and per input file the ids of the rows written, in order (one key per row)."""

    index: DedupIndex
    row_ids: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return sum(len(ids) for ids in self.row_ids.values())


@dataclass
class PassResult:
    report: RunReport
    held: Held | None = None


def coordinate(recipe: Recipe, ops: list[OP], order: list[int], results: Iterable[ChunkResult],
               sinks: Outputs | None, bad_rows: BadRowSink, tracer: TraceCollector | None, progress: bool,
               hold_back: int | None = None) -> PassResult:
    """Consume ``results`` (in input order) into ``sinks`` (None: the rows are not written);
    ``order`` is the plan's execution order of ``ops`` (rows left after each OP are reported in
    that order)."""
    t_start = time.perf_counter()
    release_free_memory()  # what earlier work freed, before the workers start
    report = RunReport(recipe=recipe.project_name)
    n_ops = len(ops)
    dedup_pos = [k for k, op in enumerate(ops) if isinstance(op, Deduplicator)]
    indexes = {k: ops[k].new_index() for k in dedup_pos}
    held: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    drop_hist = np.zeros(n_ops + 1, dtype=np.int64)
    totals = [OpMetrics() for _ in ops]
    chunks = 0
    bar = progress_bar(progress, recipe.project_name)
    try:
        for res in results:
            report.rows_in += res.n_records
            bad_rows.write(res.bad)
            for tot, m in zip(totals, res.metrics):
                tot.add(m)
            drop_of: dict[int, int] = dict(zip(res.dropped_ids.tolist(), res.dropped_at.tolist()))
            dedup_dropped: dict[int, int] = {}
            for k in dedup_pos:
                ids, keys, texts = res.dedup.get(k, (np.zeros(0, np.int64), [], None))
                sel = [i for i, rid in enumerate(ids.tolist()) if rid not in dedup_dropped]
                sel_ids = [int(ids[i]) for i in sel]
                if k == hold_back:
                    indexes[k].add(sel_ids, [keys[i] for i in sel])
                    continue
                dup_of = indexes[k].check(sel_ids, [keys[i] for i in sel])
                for j, (rid, d) in enumerate(zip(sel_ids, dup_of)):
                    if d is not None:
                        dedup_dropped[rid] = k
                    if tracer is not None and k in tracer.ops:
                        tracer.dedup_seen(k, rid, d, texts[sel[j]] if texts is not None else None)
            for rid, k in dedup_dropped.items():
                drop_of[rid] = min(k, drop_of.get(rid, n_ops))
            report.rows_valid += len(res.cand_ids) + len(res.dropped_ids)
            if drop_of:
                drop_hist += np.bincount(np.fromiter(drop_of.values(), dtype=np.int64, count=len(drop_of)),
                                         minlength=n_ops + 1)
            keep_pos = [i for i, rid in enumerate(res.cand_ids.tolist()) if rid not in dedup_dropped]
            if sinks is not None:
                sinks.write(res, keep_pos)
            report.rows_out += len(keep_pos)
            if hold_back is not None:
                held[res.source].append(res.cand_ids[keep_pos])
            if tracer is not None:
                tracer.add(res.traces, drop_of)
            if bar is not None:
                bar.update(res.n_records)
                bar.set_postfix(kept=report.rows_out, bad=bad_rows.count, refresh=False)
            chunks += 1
            if chunks % RELEASE_EVERY_CHUNKS == 0:
                release_free_memory()
    except BaseException:
        if sinks is not None:
            sinks.abort()
        bad_rows.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    report.outputs, stats_files = sinks.close() if sinks is not None else ([], [])
    release_free_memory()
    report.stats_file = stats_files[0] if stats_files else None
    report.bad_rows = bad_rows.count
    report.bad_rows_file = bad_rows.close()
    if tracer is not None:
        report.trace_dir = tracer.write()
    # rows left after each OP, exactly as a sequential run applies them (in execution order:
    # a fused group may run its filters in another order than the recipe lists them)
    prev = report.rows_valid
    for k in order:
        remaining = prev - int(drop_hist[k])
        report.ops.append(op_row(ops[k], prev, remaining, totals[k]))
        prev = remaining
    report.dedup = {ops[k].name: indexes[k].summary() for k in dedup_pos if k != hold_back}
    report.seconds = round(time.perf_counter() - t_start, 3)
    if hold_back is None:
        return PassResult(report)
    row_ids = {src: np.concatenate(parts) if parts else np.zeros(0, np.int64) for src, parts in held.items()}
    return PassResult(report, Held(indexes[hold_back], row_ids))


def progress_bar(enabled: bool, desc: str):
    """A tqdm bar counting input rows on stderr, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=" rows", mininterval=0.5, file=sys.stderr)
