"""The per-worker chain: one chunk in, its :class:`ChunkResult` out.

A :class:`ChainRunner` lives in each worker (process or Ray actor) with the recipe's OPs built
once.  For a chunk it parses the records, resolves media paths, runs every step of the plan
(fused groups slice by slice) through :func:`~dj_ops.engine.apply.apply_op`, and serialises what
survives.  Deduplicators only compute keys here; the coordinator decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import orjson
import pyarrow as pa

from dj_ops.core.batch import Batch, concat_batches
from dj_ops.core.constants import Fields
from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import BadRow, Chunk, parse_chunk
from dj_ops.ops.base import OP, Deduplicator, Filter, Mapper
from dj_ops.ops.base.intermediates import drop_slice_lived

from .apply import StatsTransform, apply_op
from .fusion import Plan, sequential_plan
from .report import OpMetrics

MEDIA_KEYS = ("image_key", "video_key", "audio_key")
#: what a chain sends back besides its tallies: ``rows``, the kept rows (a run); ``stats``, every
#: row's stats (the analyzer: filters drop nothing, mappers and deduplicators do not run);
#: ``keys``, no rows (a pass collecting deduplication keys of rows that are already in a file)
OUTPUTS = ("rows", "stats", "keys")


@dataclass
class ChunkResult:
    """What the chain made of one chunk (picklable: it crosses processes and is checkpointed)."""

    index: int
    source: str
    n_records: int
    bad: list[dict]
    dropped_ids: np.ndarray  # rows removed by a per-row filter ...
    dropped_at: np.ndarray  # ... and the position of that filter in the chain
    dedup: dict[int, tuple[np.ndarray, list, list | None]]  # op pos -> (row ids, keys, texts for tracing)
    cand_ids: np.ndarray  # rows that passed every per-row OP, in output order
    payload: Any  # serialised candidate rows: list[bytes] (JSON lines) or pa.Table; None: not sent
    stats_lines: list[bytes] | None
    stats_columns: dict[str, list] | None  # analyze mode: every row's stats
    metrics: list[OpMetrics]
    traces: dict[int, list[dict]]


@dataclass
class _Tally:
    """What running the chain on one chunk accumulates besides the rows."""

    chunk: Chunk
    bad: list[BadRow]
    metrics: list[OpMetrics]
    traces: dict[int, list[dict]] = field(default_factory=dict)
    dropped_ids: list[np.ndarray] = field(default_factory=list)
    dropped_at: list[np.ndarray] = field(default_factory=list)
    dedup: dict[int, tuple[np.ndarray, list, list | None]] = field(default_factory=dict)


class ChainRunner:
    """Runs the per-row part of an OP chain on chunks (one per worker process or actor).

    ``output`` is one of :data:`OUTPUTS`; ``ops`` may be given to reuse OPs already built (and
    models already loaded) in this process."""

    def __init__(self, recipe: Recipe, output: str = "rows", plan: dict | None = None, ops: list[OP] | None = None):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.recipe = recipe
        self.ops: list[OP] = ops if ops is not None else recipe.build_ops()
        self.plan = Plan.from_dict(plan) if plan else sequential_plan(self.ops)
        self.output = output
        self.analyze = output == "stats"
        self.text_key = recipe.text_key
        self.needs_text = any(op.uses_text for op in self.ops)
        self.export_type = recipe.resolved_export_type
        traced = set(recipe.op_list_to_trace)
        self.trace_ops = {
            k for k, op in enumerate(self.ops) if recipe.open_tracer and (not traced or op.name in traced)
        }
        self.trace_num = recipe.trace_num
        self.has_stats = any(isinstance(op, Filter) and op.has_stats for op in self.ops)
        #: the chain's stat keys in recipe order: a fused group runs its filters in the order the
        #: probe measured, but the stats a row carries are written in this order, so outputs do
        #: not depend on the plan
        self.stats_order = list(dict.fromkeys(k for op in self.ops if isinstance(op, Filter) for k in op.stats_keys))
        self.media_keys = [getattr(recipe, k) for k in MEDIA_KEYS]
        self.stats_transform = data_juicer_stats_roundtrip() if recipe.data_juicer_stats_compat else None

    def parse(self, chunk: Chunk) -> tuple[Batch, list[BadRow]]:
        """The chunk's valid rows as a batch (media paths resolved) and its bad records."""
        parsed = parse_chunk(chunk, self.text_key if self.needs_text else None)
        self._resolve_media(parsed.batch, chunk.base_dir)
        return parsed.batch, parsed.bad

    def _resolve_media(self, batch: Batch, base_dir: str) -> None:
        for key in self.media_keys:
            col = batch.columns.get(key)
            if not col:
                continue
            batch.columns[key] = [
                [p if not isinstance(p, str) or os.path.isabs(p) or "://" in p else os.path.join(base_dir, p) for p in v]
                if isinstance(v, list) else v
                for v in col
            ]

    # -- the chain ----------------------------------------------------------------------------

    def run(self, chunk: Chunk) -> ChunkResult:
        batch, bad = self.parse(chunk)
        tally = _Tally(chunk, bad, [OpMetrics() for _ in self.ops])
        for step in self.plan.steps:
            if step.slice_from is None:
                for k in step.positions:
                    batch = self.apply(k, batch, tally)
            else:
                for k in step.positions[:step.slice_from]:
                    batch = self.apply(k, batch, tally)
                batch = self._apply_sliced(step.positions[step.slice_from:], step.slice_rows, batch, tally)
        batch.stats = {**{k: v for k, v in batch.stats.items() if k not in self.stats_order},
                       **{k: batch.stats[k] for k in self.stats_order if k in batch.stats}}
        stats_lines = stats_columns = payload = None
        if self.output == "stats":
            stats_columns = dict(batch.stats)
        elif self.output == "rows":
            payload = self._serialise(batch)
            if self.has_stats:
                stats_lines = [orjson.dumps({Fields.stats: s}, option=orjson.OPT_SERIALIZE_NUMPY)
                               for s in stats_rows(batch)]
        return ChunkResult(
            index=chunk.index,
            source=chunk.source,
            n_records=chunk.n_records,
            bad=[b.to_dict() for b in tally.bad],
            dropped_ids=np.concatenate(tally.dropped_ids) if tally.dropped_ids else np.zeros(0, np.int64),
            dropped_at=np.concatenate(tally.dropped_at) if tally.dropped_at else np.zeros(0, np.int32),
            dedup=tally.dedup,
            cand_ids=batch.row_ids.copy(),
            payload=payload,
            stats_lines=stats_lines,
            stats_columns=stats_columns,
            metrics=tally.metrics,
            traces=tally.traces,
        )

    def apply(self, k: int, batch: Batch, tally: _Tally) -> Batch:
        """OP ``k`` on ``batch`` through :func:`apply_op`, its outcome tallied (metrics, bad rows,
        dropped rows, deduplication keys, traces).  The analyzer runs filters only, dropping nothing."""
        op = self.ops[k]
        if self.analyze and not isinstance(op, Filter):
            return batch
        m = tally.metrics[k]
        m.rows_in += len(batch)
        res = apply_op(op, batch, filter_rows=not self.analyze, stats_transform=self.stats_transform)
        m.seconds += res.seconds
        m.errors += len(res.set_aside)
        m.changed += res.changed
        m.rows_out += len(res.batch)
        chunk = tally.chunk
        for row in res.set_aside:
            tally.bad.append(BadRow(chunk.source, chunk.first_line + row.row_id - chunk.first_row, row.reason,
                                    row.preview))
        tracing = k in self.trace_ops
        if isinstance(op, Filter):
            removed = res.removed
            if removed is not None:
                tally.dropped_ids.append(removed.row_ids)
                tally.dropped_at.append(np.full(len(removed), k, dtype=np.int32))
                if tracing and len(tally.traces.get(k, ())) < self.trace_num:
                    tally.traces.setdefault(k, []).extend(_filter_traces(removed, self.trace_num))
                    del tally.traces[k][self.trace_num:]
        elif isinstance(op, Mapper):
            if tracing and m.changed and res.texts_before is not None:
                tally.traces[k] = _mapper_traces(res.texts_before, res.batch, op.text_key, self.trace_num)
        elif isinstance(op, Deduplicator):
            texts = list(res.batch.columns.get(op.text_key, [])) if tracing else None
            tally.dedup[k] = (res.batch.row_ids.copy(), res.keys, texts)
        return res.batch

    def _apply_sliced(self, positions: list[int], rows: int, batch: Batch, tally: _Tally) -> Batch:
        """A fused group's filters, slice by slice: on each slice every filter shares the heavy
        intermediates (decoded images, pixel tensors, embeddings), dropped with the slice."""
        parts = []
        for start in range(0, len(batch), max(1, rows)):
            part = batch.take(np.arange(start, min(len(batch), start + rows)))
            for k in positions:
                # each filter returns the rows it keeps as a new batch (carrying the shared cache)
                part.shared_slice = True
                part = self.apply(k, part, tally)
                if not len(part):
                    break
            part.shared_slice = False
            drop_slice_lived(part)
            parts.append(part)
        return concat_batches(parts) if parts else batch

    def _serialise(self, batch: Batch) -> Any:
        if self.export_type == "parquet":  # built column by column: the batch is columnar already
            if not len(batch):
                return None
            arrays = {k: pa.array(v) for k, v in batch.columns.items()}
            if self.recipe.keep_stats_in_res_ds and batch.stats:
                arrays[Fields.stats] = pa.StructArray.from_arrays([pa.array(v) for v in batch.stats.values()],
                                                                  names=list(batch.stats))
            return pa.table(arrays)
        rows = batch.rows()
        if self.recipe.keep_stats_in_res_ds and batch.stats:
            for row, stats in zip(rows, stats_rows(batch)):
                row[Fields.stats] = stats
        dumps = orjson.dumps
        opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        return [dumps(r, option=opt) for r in rows]


def probe_apply(runner: ChainRunner) -> Callable[[int, Batch], Batch]:
    """``apply(k, batch)`` for the fusion planner's probe: OP ``k`` as a run applies it."""
    return lambda k, batch: apply_op(runner.ops[k], batch, stats_transform=runner.stats_transform).batch


def data_juicer_stats_roundtrip() -> StatsTransform:
    """Data-Juicer 1.6.1 stores stats as JSON through pandas' ujson (10 significant decimals) and
    decides on the values read back, e.g. 451/550 = 0.82 becomes 0.8200000000000001 and fails
    ``max_ratio: 0.82``.  Reproducing that makes row-exact comparisons with it possible."""
    from pandas.io.json import ujson_dumps, ujson_loads

    return lambda values: ujson_loads(ujson_dumps(values))


def stats_rows(batch: Batch) -> list[dict]:
    keys = list(batch.stats)
    cols = [batch.stats[k] for k in keys]
    return [dict(zip(keys, vals)) for vals in zip(*cols)] if keys else [{} for _ in range(len(batch))]


def _filter_traces(removed: Batch, limit: int) -> list[dict]:
    out = []
    for i in range(min(limit, len(removed))):
        row = {k: v[i] for k, v in removed.columns.items()}
        row[Fields.stats] = removed.row_stats(i)
        out.append({"_row_id": int(removed.row_ids[i]), **row})
    return out


def _mapper_traces(before: list, batch: Batch, text_key: str, limit: int) -> list[dict]:
    after = batch.columns.get(text_key, [])
    out = []
    for i, (a, b) in enumerate(zip(before, after)):
        if a != b:
            out.append({"_row_id": int(batch.row_ids[i]), "original_text": a, "processed_text": b})
            if len(out) >= limit:
                break
    return out


__all__ = ["ChainRunner", "ChunkResult", "data_juicer_stats_roundtrip", "probe_apply", "stats_rows"]
