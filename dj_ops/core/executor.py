"""Local executor: streams chunks of the input through the OP chain in ``np`` worker processes.

Workers parse a chunk, run every per-row OP of the chain on it (filters compute their stats once
and drop rows; deduplicators only compute keys) and serialise the surviving rows.  The
coordinator receives results strictly in input order, resolves the deduplicators (the first
occurrence in input order survives, exactly as a sequential run would decide), and writes the
output.  Only a bounded number of chunks is in flight, so memory stays flat whatever the input
size; output order is the input order whatever ``np`` is.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import orjson
import pyarrow as pa

from ..io.readers import BadRow, Chunk, DatasetFormatError, iter_chunks, parse_chunk, resolve_inputs, with_skip
from ..io.writers import JsonlWriter, ParquetWriter, stats_path_for
from .base import Deduplicator, Filter, Mapper, OP
from .batch import Batch, concat_batches
from . import checkpoint
from .constants import Fields
from .faults import die_with_parent, worker_crashed
from .fusion import Plan, build_plan, sequential_plan, shared_slice
from .heap import frozen_heap
from .recipe import Recipe

MEDIA_KEYS = ("image_key", "video_key", "audio_key")


# ---------------------------------------------------------------------------------------------
# Worker side


@dataclass
class OpMetrics:
    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    changed: int = 0
    errors: int = 0

    def add(self, other: "OpMetrics") -> None:
        self.seconds += other.seconds
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.changed += other.changed
        self.errors += other.errors


@dataclass
class ChunkResult:
    index: int
    source: str
    n_records: int
    bad: list[dict]
    dropped_ids: np.ndarray  # rows removed by a per-row filter ...
    dropped_at: np.ndarray  # ... and the position of that filter in the chain
    dedup: dict[int, tuple[np.ndarray, list, list | None]]  # op pos -> (row ids, keys, texts for tracing)
    cand_ids: np.ndarray  # rows that passed every per-row OP, in output order
    payload: Any  # serialised candidate rows: list[bytes] (JSON lines) or pa.Table
    stats_lines: list[bytes] | None
    stats_columns: dict[str, list] | None  # analyze mode: every row's stats
    metrics: list[OpMetrics]
    traces: dict[int, list[dict]]


@dataclass
class _ChunkState:
    """What running the chain on one chunk accumulates (per-OP metrics, drops, dedup keys ...)."""

    chunk: Chunk
    bad: list[BadRow]
    metrics: list[OpMetrics]
    traces: dict[int, list[dict]] = field(default_factory=dict)
    dropped_ids: list[np.ndarray] = field(default_factory=list)
    dropped_at: list[np.ndarray] = field(default_factory=list)
    dedup: dict[int, tuple[np.ndarray, list, list | None]] = field(default_factory=dict)


class ChainRunner:
    """Runs the per-row part of an OP chain on one chunk (lives in each worker process)."""

    def __init__(self, recipe: Recipe, analyze: bool = False, plan: dict | None = None):
        self.recipe = recipe
        self.ops: list[OP] = recipe.build_ops()
        self.plan = Plan.from_dict(plan) if plan else sequential_plan(self.ops)
        self.analyze = analyze
        self.text_key = recipe.text_key
        self.needs_text = any(op.uses_text for op in self.ops)
        self.export_type = recipe.resolved_export_type
        traced = set(recipe.op_list_to_trace)
        self.trace_ops = {
            k for k, op in enumerate(self.ops) if recipe.open_tracer and (not traced or op.name in traced)
        }
        self.trace_num = recipe.trace_num
        self.has_stats = any(isinstance(op, Filter) and op.has_stats for op in self.ops)
        self.media_keys = [getattr(recipe, k) for k in MEDIA_KEYS]
        self.stats_compat = _data_juicer_stats_roundtrip() if recipe.data_juicer_stats_compat else None

    # -- helpers ------------------------------------------------------------------------------

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

    def _isolate(self, op: OP, batch: Batch, step: Callable[[Batch], Batch], chunk: Chunk,
                 bad: list[BadRow], metrics: OpMetrics) -> Batch:
        """Apply ``step``; if it raises, retry row by row and set failing rows aside as bad input.

        Rows the OP itself marked bad (``Batch.mark_bad``) are set aside too."""
        try:
            return self._set_aside(op, step(batch), chunk, bad, metrics)
        except Exception:
            if not op.skip_op_error:
                raise
        parts = []
        for i in range(len(batch)):
            single = batch.take(np.array([i]))
            try:
                parts.append(self._set_aside(op, step(single), chunk, bad, metrics))
            except Exception as exc:  # noqa: BLE001 - any OP failure on a row is reported, not fatal
                metrics.errors += 1
                bad.append(BadRow(chunk.source, _line_of(chunk, single, 0),
                                  f"{op.name} raised {type(exc).__name__}: {exc}", _row_preview(single, 0)))
        return concat_batches(parts)

    @staticmethod
    def _set_aside(op: OP, batch: Batch, chunk: Chunk, bad: list[BadRow], metrics: OpMetrics) -> Batch:
        if not batch.bad:
            return batch
        marked, batch.bad = batch.bad, {}
        for pos, reason in sorted(marked.items()):
            metrics.errors += 1
            bad.append(BadRow(chunk.source, _line_of(chunk, batch, pos), f"{op.name}: {reason}",
                              _row_preview(batch, pos)))
        keep = np.ones(len(batch), dtype=bool)
        keep[list(marked)] = False
        return batch.take(keep)

    # -- the chain ----------------------------------------------------------------------------

    def run(self, chunk: Chunk) -> ChunkResult:
        parsed = parse_chunk(chunk, self.text_key if self.needs_text else None)
        batch = parsed.batch
        self._resolve_media(batch, chunk.base_dir)
        st = _ChunkState(chunk, parsed.bad, [OpMetrics() for _ in self.ops])
        for step in self.plan.steps:
            if step.slice_from is None:
                for k in step.positions:
                    batch = self.apply(k, batch, st)
            else:
                for k in step.positions[:step.slice_from]:
                    batch = self.apply(k, batch, st)
                batch = self._apply_sliced(step.positions[step.slice_from:], step.slice_rows, batch, st)
        stats_lines = stats_columns = None
        if self.analyze:
            stats_columns = dict(batch.stats)
            payload = None
        else:
            payload = self._serialise(batch)
            if self.has_stats:
                stats_lines = [orjson.dumps({Fields.stats: s}, option=orjson.OPT_SERIALIZE_NUMPY)
                               for s in _stats_rows(batch)]
        return ChunkResult(
            index=chunk.index,
            source=chunk.source,
            n_records=chunk.n_records,
            bad=[b.to_dict() for b in st.bad],
            dropped_ids=np.concatenate(st.dropped_ids) if st.dropped_ids else np.zeros(0, np.int64),
            dropped_at=np.concatenate(st.dropped_at) if st.dropped_at else np.zeros(0, np.int32),
            dedup=st.dedup,
            cand_ids=batch.row_ids.copy(),
            payload=payload,
            stats_lines=stats_lines,
            stats_columns=stats_columns,
            metrics=st.metrics,
            traces=st.traces,
        )

    def apply(self, k: int, batch: Batch, st: "_ChunkState") -> Batch:
        """Run OP ``k`` on ``batch``: filters compute stats and drop rows, mappers map,
        deduplicators only compute keys; rows the OP cannot process are set aside."""
        op = self.ops[k]
        m = st.metrics[k]
        m.rows_in += len(batch)
        t0 = time.perf_counter()
        tracing = k in self.trace_ops
        chunk, bad = st.chunk, st.bad
        if isinstance(op, Filter):
            def stats_step(b: Batch, op: Filter = op) -> Batch:
                op.ensure_stats(b)
                if self.stats_compat is not None:
                    for key in op.stats_keys:
                        b.stats[key] = self.stats_compat(b.stats[key])
                return b

            batch = self._isolate(op, batch, stats_step, chunk, bad, m)
            if not self.analyze and len(batch):
                mask = np.asarray(op.keep(batch), dtype=bool)
                if not mask.all():
                    gone = batch.row_ids[~mask]
                    st.dropped_ids.append(gone)
                    st.dropped_at.append(np.full(len(gone), k, dtype=np.int32))
                    if tracing and len(st.traces.get(k, ())) < self.trace_num:
                        st.traces.setdefault(k, []).extend(_filter_traces(batch, ~mask, self.trace_num))
                        del st.traces[k][self.trace_num:]
                    batch = batch.take(mask)
        elif self.analyze:
            pass  # the analyzer computes stats only: mappers and deduplicators do not run
        elif isinstance(op, Mapper):
            before = list(batch.columns.get(op.text_key, []))
            before_ids = batch.row_ids
            batch = self._isolate(op, batch, op.process_batched, chunk, bad, m)
            if len(batch) == len(before) and (before_ids == batch.row_ids).all():
                after = batch.columns.get(op.text_key, [])
                m.changed += sum(1 for a, b in zip(before, after) if a is not b and a != b)
                if tracing and m.changed:
                    st.traces[k] = _mapper_traces(before, batch, op.text_key, self.trace_num)
        elif isinstance(op, Deduplicator):
            key_col = f"__dj__dedup_key_{k}"

            def hash_step(b: Batch, op: Deduplicator = op) -> Batch:
                b.cache[key_col] = op.compute_hash(b)
                return b

            batch = self._isolate(op, batch, hash_step, chunk, bad, m)
            keys = batch.cache.pop(key_col, [])
            texts = list(batch.columns.get(op.text_key, [])) if tracing else None
            st.dedup[k] = (batch.row_ids.copy(), keys, texts)
        else:
            raise TypeError(f"{op.name}: unsupported OP type {type(op).__name__}")
        m.seconds += time.perf_counter() - t0
        m.rows_out += len(batch)
        return batch

    def _apply_sliced(self, positions: list[int], rows: int, batch: Batch, st: "_ChunkState") -> Batch:
        """A fused group's filters, slice by slice: on each slice every filter shares the heavy
        intermediates (decoded images, pixel tensors, embeddings), dropped with the slice."""
        kept_cache = set(batch.cache)
        parts = []
        for start in range(0, len(batch), max(1, rows)):
            part = batch.take(np.arange(start, min(len(batch), start + rows)))
            for k in positions:
                # each filter returns the rows it keeps as a new batch (carrying the shared cache)
                with shared_slice(part):
                    part = self.apply(k, part, st)
                if not len(part):
                    break
            part.cache = {key: v for key, v in part.cache.items() if key in kept_cache}
            parts.append(part)
        return concat_batches(parts) if parts else batch

    def _serialise(self, batch: Batch) -> Any:
        if self.export_type == "parquet":  # built column by column: ~3x faster than from rows
            if not len(batch):
                return None
            arrays = {k: pa.array(v) for k, v in batch.columns.items()}
            if self.recipe.keep_stats_in_res_ds and batch.stats:
                arrays[Fields.stats] = pa.StructArray.from_arrays([pa.array(v) for v in batch.stats.values()],
                                                                  names=list(batch.stats))
            return pa.table(arrays)
        rows = batch.rows()
        if self.recipe.keep_stats_in_res_ds and batch.stats:
            for row, stats in zip(rows, _stats_rows(batch)):
                row[Fields.stats] = stats
        dumps = orjson.dumps
        opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        return [dumps(r, option=opt) for r in rows]


def _data_juicer_stats_roundtrip() -> Callable[[list], list]:
    """Data-Juicer 1.6.1 stores stats as JSON through pandas' ujson (10 significant decimals) and
    decides on the values read back, e.g. 451/550 = 0.82 becomes 0.8200000000000001 and fails
    ``max_ratio: 0.82``.  Reproducing that makes row-exact comparisons with it possible."""
    from pandas.io.json import ujson_dumps, ujson_loads

    return lambda values: ujson_loads(ujson_dumps(values))


def _stats_rows(batch: Batch) -> list[dict]:
    keys = list(batch.stats)
    cols = [batch.stats[k] for k in keys]
    return [dict(zip(keys, vals)) for vals in zip(*cols)] if keys else [{} for _ in range(len(batch))]


def _line_of(chunk: Chunk, batch: Batch, pos: int) -> int:
    return chunk.first_line + int(batch.row_ids[pos]) - chunk.first_row


def _row_preview(batch: Batch, i: int, limit: int = 2000) -> str:
    row = {k: v[i] for k, v in batch.columns.items()}
    text = orjson.dumps(row, default=str).decode()
    return text[:limit] + ("..." if len(text) > limit else "")


def _filter_traces(batch: Batch, removed: np.ndarray, limit: int) -> list[dict]:
    out = []
    for i in np.flatnonzero(removed)[:limit]:
        row = {k: v[i] for k, v in batch.columns.items()}
        row[Fields.stats] = batch.row_stats(int(i))
        out.append({"_row_id": int(batch.row_ids[i]), **row})
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


_RUNNER: ChainRunner | None = None


def _init_worker(recipe_json: str, analyze: bool, plan: dict | None = None, n_workers: int = 1) -> None:
    global _RUNNER
    die_with_parent()
    # model OPs size their thread pools (torch, image decoding) by the number of workers
    os.environ["DJ_OPS_WORKERS"] = str(n_workers)
    runtime = sys.modules.get("dj_ops.models.runtime")
    if runtime is not None:
        runtime.configure_threads_after_fork()
    _RUNNER = ChainRunner(Recipe.model_validate_json(recipe_json), analyze=analyze, plan=plan)


def _run_chunk(chunk: Chunk, record: Callable[[ChunkResult], None] | None = None) -> ChunkResult:
    assert _RUNNER is not None
    res = _RUNNER.run(chunk)
    if record is not None:
        record(res)
    return res


# ---------------------------------------------------------------------------------------------
# Coordinator side


@dataclass
class RunReport:
    """What a run did: counts, per-OP rows and time, where outputs, bad rows and traces went."""

    recipe: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_out: int = 0
    bad_rows: int = 0
    seconds: float = 0.0
    ops: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    stats_file: str | None = None
    bad_rows_file: str | None = None
    trace_dir: str | None = None
    dedup: dict[str, Any] = field(default_factory=dict)
    #: how the OPs ran: steps (fused groups, their order and shared intermediates), devices
    plan: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def table(self) -> str:
        lines = [f"{'#':>3}  {'op':<45} {'rows left':>10} {'removed':>9} {'changed':>8} {'errors':>6} {'cpu s':>8}"]
        for i, o in enumerate(self.ops):
            lines.append(
                f"{i:>3}  {o['name']:<45} {o['rows_out']:>10} {o['rows_in'] - o['rows_out']:>9} "
                f"{o['changed']:>8} {o['errors']:>6} {o['cpu_seconds']:>8.2f}"
            )
        return "\n".join(lines)


class LocalExecutor:
    """Runs a recipe on one machine with ``np`` worker processes."""

    def __init__(
        self,
        recipe: Recipe,
        progress: bool | None = None,
        bad_rows_path: str | Path | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.recipe = recipe
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.work_dir = recipe.resolved_work_dir
        self.bad_rows_path = Path(bad_rows_path) if bad_rows_path else self.work_dir / "bad_rows.jsonl"
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        # build the OPs once here so a bad parameter or an unloadable model fails before any data is read
        self.ops = recipe.build_ops()
        self._plan: Plan | None = None

    # -- chunk production and parallel map ------------------------------------------------------

    def _chunks(self, files: list[Path] | None, row_range: tuple[int, int] | None,
                skip: dict[str, np.ndarray] | None = None) -> Iterator[Chunk]:
        files = files if files is not None else resolve_inputs(self.recipe.dataset_path, self.recipe.suffixes or None)
        chunks = iter_chunks(files, batch_size=self.chunk_rows(), row_range=row_range,
                             max_record_bytes=self.recipe.max_record_bytes)
        if not skip:
            return chunks
        return (with_skip(c, skip.get(c.source)) for c in chunks)

    def chunk_rows(self) -> int:
        """Records per chunk, the unit of work of a worker: the recipe's ``batch_size``; with
        several workers and a model OP on the CPU, a few rows, so that no worker idles at the end
        while another still has a whole batch of model passes to do."""
        rows = self.recipe.batch_size
        if self.recipe.np > 1 and any(_device_of(op).startswith("cpu ") for op in self.ops):
            from ..models.runtime import CPU_MODEL_CHUNK_ROWS

            rows = min(rows, CPU_MODEL_CHUNK_ROWS)
        return rows

    def _map(self, chunks: Iterable[Chunk | ChunkResult], analyze: bool,
             record: checkpoint.ChunkStore | None = None) -> Iterator[ChunkResult]:
        """Results of ``chunks`` in input order.  With ``record``, chunks it holds are replayed
        (their recorded results pass through in their place) and new results are recorded."""
        if record is not None:
            chunks = checkpoint.replay(chunks, record)
        np_ = max(1, min(self.recipe.np, os.cpu_count() or 1))
        # an OP asking for CUDA on a machine without a GPU runs on the CPU like any other
        uses_cuda = any(_device_of(op).startswith("cuda") for op in self.ops)
        # the fusion probe reads the first rows of this run's own input
        chunks = iter(chunks)
        head_item = next(chunks, None)
        if head_item is not None:
            chunks = itertools.chain([head_item], chunks)
        plan = self._plan_obj(head_item if isinstance(head_item, Chunk) else None).to_dict(self.ops)
        if uses_cuda:
            from ..models.placement import gpu_workers

            np_ = gpu_workers(self.ops, np_, log=self.log)
        try:
            yield from self._map_planned(chunks, analyze, record, plan, np_, uses_cuda)
        finally:
            _release_models()

    def _map_planned(self, chunks: Iterator[Chunk | ChunkResult], analyze: bool,
                     record: checkpoint.ChunkStore | None, plan: dict, np_: int,
                     uses_cuda: bool) -> Iterator[ChunkResult]:
        if np_ == 1:
            # models the fusion probe loaded in this process are used as they are
            runner = ChainRunner(self.recipe, analyze=analyze, plan=plan)
            for c in chunks:
                if isinstance(c, Chunk):
                    c = runner.run(c)
                    if record is not None:
                        record(c)
                yield c
            return
        fork = not uses_cuda and sys.platform == "linux" and _fork_safe(np_)
        if not fork:
            _release_models()  # a spawned worker loads its own (on its GPU)
        # forked workers inherit the probe's models: no load per worker, weights shared copy-on-write
        ctx = mp.get_context("fork" if fork else "spawn")
        if fork:
            # pyarrow imports pandas (~0.15 s) on its first conversion of Python objects, to tell
            # pandas types apart: done once here, the workers inherit it instead of each paying it
            pa.array([0])
        # the coordinator's objects (imports, models, an orchestrator's) stay out of the workers'
        # garbage collections, which would otherwise touch (and so copy) every page they live on
        with frozen_heap() if fork else contextlib.nullcontext():
            yield from self._pool_results(chunks, record, ctx, analyze, plan, np_)

    def _pool_results(self, chunks: Iterator[Chunk | ChunkResult], record: checkpoint.ChunkStore | None, ctx,
                      analyze: bool, plan: dict, np_: int) -> Iterator[ChunkResult]:
        max_inflight = 2 * np_ + 2
        with ProcessPoolExecutor(max_workers=np_, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.recipe.model_dump_json(), analyze, plan, np_)) as pool:
            pending: collections.deque[tuple[Future, Chunk | ChunkResult]] = collections.deque()
            try:
                for c in chunks:
                    if isinstance(c, Chunk):
                        pending.append((pool.submit(_run_chunk, c, record), c))
                    else:
                        done: Future = Future()
                        done.set_result(c)
                        pending.append((done, c))
                    if len(pending) >= max_inflight:
                        head = pending[0][1]
                        yield pending.popleft()[0].result()
                while pending:
                    head = pending[0][1]
                    yield pending.popleft()[0].result()
            except BrokenProcessPool:
                where = f"{head.source} from record {head.first_line}"
                raise worker_crashed(where, record.directory if record is not None else None) from None

    # -- the plan (OP fusion) -----------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        """How the OPs will run, as a dict: steps (fused groups with their order, shared
        intermediates and probe measurements) and the device of every OP.  With ``op_fusion`` this
        probes the first rows of the input (once per executor)."""
        return self._plan_obj().to_dict(self.ops)

    def _plan_obj(self, first: Chunk | None = None) -> Plan:
        if self._plan is None:
            self._plan = self._build_plan(first)
            self._plan.devices = {k: _device_of(op) for k, op in enumerate(self.ops)}
            if self.recipe.op_fusion:
                self.log(self._plan.describe(self.ops))
        return self._plan

    def _build_plan(self, first: Chunk | None) -> Plan:
        """The plan; with ``op_fusion`` and the probe strategy, measured on the first rows of
        ``first`` (the run's first chunk) or, before a run, of the recipe's dataset."""
        recipe = self.recipe
        if not recipe.op_fusion or recipe.fusion_strategy != "probe":
            return build_plan(self.ops, op_fusion=recipe.op_fusion, strategy=recipe.fusion_strategy)
        runner = ChainRunner(recipe, plan=None)
        runner.ops = self.ops  # probe with the coordinator's OPs: models loaded once here
        if first is None:
            try:
                first = next(iter(self._chunks(None, None)), None)
            except (DatasetFormatError, OSError):
                first = None  # no input to probe: the plan falls back to the recipe order
        probe = None
        st = None
        if first is not None:
            parsed = parse_chunk(first, runner.text_key if runner.needs_text else None)
            probe = parsed.batch
            runner._resolve_media(probe, first.base_dir)
            probe = probe.take(np.arange(min(len(probe), _probe_rows(self.ops, recipe.batch_size))))
            st = _ChunkState(first, [], [OpMetrics() for _ in self.ops])
        # the models loaded for the probe stay: the run uses them (in this process or, forked, in
        # its workers); _map releases them when the run ends
        return build_plan(self.ops, op_fusion=True, strategy="probe", probe=probe,
                          apply=(lambda k, b: runner.apply(k, b, st)) if st is not None else None)

    # -- processing ------------------------------------------------------------------------------

    def run(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None,
            export_path: str | Path | None = None, outputs: dict[str, Path] | None = None,
            skip: dict[str, np.ndarray] | None = None, append_bad_rows: bool = False) -> RunReport:
        """Process the dataset (or ``files`` / one ``row_range`` of them) and export the result.

        ``outputs`` maps each input file to its own output file (one partition in, one out), e.g.
        for a global deduplication over many partitions; otherwise everything goes to
        ``export_path`` (default: the recipe's).  ``skip`` maps an input file to a boolean mask
        over its records: masked records are left out (already decided elsewhere).

        A near-duplicate deduplicator needs every row's keys before it can decide (a later row
        can link two earlier ones), so the chain is cut there: the rows before it are spilled to
        disk with their stats, the index decides, and the rest of the chain runs on the spill.
        """
        kind = _output_kind(export_path, outputs)
        if kind is not None and kind != _format_of(self.recipe.resolved_export_type):
            # the workers serialise rows for the recipe's export type: give them the target's
            recipe = self.recipe.model_copy(update={"export_type": kind})
            other = type(self)(recipe, progress=self.progress, bad_rows_path=self.bad_rows_path, log=self.log)
            return other.run(files, row_range, export_path, outputs, skip, append_bad_rows)
        cut = self._barrier()
        if cut is None:
            return self._run_pass(files, row_range, export_path, outputs, skip, append_bad_rows)
        return self._run_with_barrier(cut, files, row_range, export_path, outputs, skip, append_bad_rows)

    def _barrier(self) -> int | None:
        for k, op in enumerate(self.ops):
            if isinstance(op, Deduplicator) and not op.new_index().streaming:
                return k
        return None

    def _run_with_barrier(self, cut, files, row_range, export_path, outputs, skip, append_bad_rows) -> RunReport:
        import shutil

        recipe = self.recipe
        t_start = time.perf_counter()
        files = files if files is not None else resolve_inputs(recipe.dataset_path, recipe.suffixes or None)
        spill_dir = self.work_dir / f".spill-{os.getpid()}-{time.time_ns()}"
        spill = {str(f): spill_dir / f"{i:05d}.jsonl" for i, f in enumerate(files)}
        final_outputs = {str(spill[str(f)]): Path(outputs[str(f)]) for f in files} if outputs else None
        direct = self._spill_is_output(cut)
        # the spill carries the stats the rest of the chain reads, or, when it is the output, the
        # rows exactly as the output has them
        head = recipe.model_copy(update={
            "process": recipe.process[: cut + 1], "export_type": "jsonl", "export_shard_size": 0,
            "keep_stats_in_res_ds": recipe.keep_stats_in_res_ds if direct else True})
        first = type(self)(head, progress=self.progress, bad_rows_path=self.bad_rows_path, log=self.log)
        try:
            rep1 = first._run_pass(files, row_range, None, spill, skip, append_bad_rows, hold_back=cut)
            index = first.held_index
            index.sample_size = max(index.sample_size, recipe.trace_num)  # the traced pairs' similarity
            removed = index.finalize()
            removed_ids = np.fromiter(removed.keys(), dtype=np.int64, count=len(removed))
            spill_skip = {str(spill[src]): np.isin(ids, removed_ids) for src, ids in first.held_ids.items()}
            # the spill is rewritten by every run, so the pass reading it is not checkpointed
            spilled = [spill[str(f)] for f in files]
            if direct:
                rep2 = _copy_spill(recipe.project_name, spilled, spill_skip, Path(export_path or recipe.export_path),
                                   final_outputs, recipe.export_shard_size)
            else:
                rest = recipe.model_copy(update={"process": recipe.process[cut + 1:], "use_checkpoint": False})
                second = type(self)(rest, progress=self.progress, bad_rows_path=self.bad_rows_path, log=self.log)
                rep2 = second.run(spilled, None, export_path, final_outputs, spill_skip, append_bad_rows=True)
            pairs = _dedup_pairs(removed, first.held_ids, spill, recipe.trace_num, index.summary()) \
                if recipe.open_tracer and (not recipe.op_list_to_trace or self.ops[cut].name in recipe.op_list_to_trace) \
                else None
        finally:
            shutil.rmtree(spill_dir, ignore_errors=True)
        report = rep2
        op_cut = dict(rep1.ops[cut])
        op_cut["rows_out"] = op_cut["rows_in"] - len(removed)
        report.ops = rep1.ops[:cut] + [op_cut] + rep2.ops
        report.rows_in, report.rows_valid = rep1.rows_in, rep1.rows_valid
        report.bad_rows += rep1.bad_rows
        report.bad_rows_file = rep2.bad_rows_file or rep1.bad_rows_file
        report.dedup = {**rep1.dedup, self.ops[cut].name: index.summary(), **rep2.dedup}
        report.plan = _joined_plans(rep1.plan, rep2.plan, cut + 1)
        if pairs is not None:
            trace_dir = self.work_dir / "trace"
            trace_dir.mkdir(parents=True, exist_ok=True)
            with open(trace_dir / f"duplicate-{self.ops[cut].name}.jsonl", "wb") as fh:
                for pair in pairs:
                    fh.write(orjson.dumps(pair) + b"\n")
            report.trace_dir = str(trace_dir)
        report.seconds = round(time.perf_counter() - t_start, 3)
        return report

    def _spill_is_output(self, cut: int) -> bool:
        """Whether the spill lines, minus the removed rows, are already the output: the
        deduplicator is the last OP, no filter added stats to the spilled rows and the output is
        JSON lines (``run`` has made the recipe's export type the targets'), which is what a
        second pass with no OPs would write, byte for byte."""
        return (cut == len(self.ops) - 1 and not any(isinstance(op, Filter) and op.has_stats for op in self.ops)
                and _format_of(self.recipe.resolved_export_type) == "jsonl")

    def _run_pass(self, files, row_range, export_path, outputs, skip, append_bad_rows,
                  hold_back: int | None = None) -> RunReport:
        """One streaming pass.  With ``hold_back`` = position of a (last) near-duplicate
        deduplicator, its keys are collected in ``self.held_index`` and every row is kept; the
        ids of the written rows per input file go to ``self.held_ids``."""
        recipe = self.recipe
        t_start = time.perf_counter()
        has_stats = any(isinstance(op, Filter) and op.has_stats for op in self.ops)
        sinks = _Outputs(Path(export_path or recipe.export_path), outputs, recipe, has_stats)
        report = RunReport(recipe=recipe.project_name)
        n_ops = len(self.ops)
        dedup_pos = [k for k, op in enumerate(self.ops) if isinstance(op, Deduplicator)]
        indexes = {k: self.ops[k].new_index() for k in dedup_pos}
        held: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        drop_hist = np.zeros(n_ops + 1, dtype=np.int64)
        totals = [OpMetrics() for _ in self.ops]
        tracer = _TraceCollector(self.ops, recipe, self.work_dir) if recipe.open_tracer else None
        bad_file = _BadRowSink(self.bad_rows_path, append=append_bad_rows)
        bar = _progress(self.progress, recipe.project_name)
        try:
            chunks, record = checkpoint.plan(self, files, row_range, skip, hold_back)
            for res in self._map(chunks, analyze=False, record=record):
                report.rows_in += res.n_records
                bad_file.write(res.bad)
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
                n_valid = len(res.cand_ids) + len(res.dropped_ids)
                report.rows_valid += n_valid
                if drop_of:
                    drop_hist += np.bincount(np.fromiter(drop_of.values(), dtype=np.int64, count=len(drop_of)),
                                             minlength=n_ops + 1)
                keep_pos = [i for i, rid in enumerate(res.cand_ids.tolist()) if rid not in dedup_dropped]
                sinks.write(res, keep_pos)
                report.rows_out += len(keep_pos)
                if hold_back is not None:
                    held[res.source].append(res.cand_ids[keep_pos])
                if tracer is not None:
                    tracer.add(res.traces, drop_of)
                if bar is not None:
                    bar.update(res.n_records)
                    bar.set_postfix(kept=report.rows_out, bad=bad_file.count, refresh=False)
        except BaseException:
            sinks.abort()
            bad_file.close()
            raise
        finally:
            if bar is not None:
                bar.close()
        report.outputs, stats_files = sinks.close()
        report.stats_file = stats_files[0] if stats_files else None
        report.bad_rows = bad_file.count
        report.bad_rows_file = bad_file.close()
        if tracer is not None:
            report.trace_dir = tracer.write()
        # rows left after each OP, exactly as a sequential run applies them (in execution order:
        # a fused group may run its filters in another order than the recipe lists them)
        prev = report.rows_valid
        for k in self._plan_obj().order:
            op = self.ops[k]
            remaining = prev - int(drop_hist[k])
            report.ops.append({
                "name": op.name, "kind": _kind(op), "rows_in": int(prev), "rows_out": int(remaining),
                "changed": totals[k].changed, "errors": totals[k].errors,
                "cpu_seconds": round(totals[k].seconds, 3),
            })
            prev = remaining
        report.plan = self.plan()
        report.dedup = {self.ops[k].name: indexes[k].summary() for k in dedup_pos if k != hold_back}
        if hold_back is not None:
            self.held_index = indexes[hold_back]
            self.held_ids = {src: np.concatenate(parts) if parts else np.zeros(0, np.int64)
                             for src, parts in held.items()}
        report.seconds = round(time.perf_counter() - t_start, 3)
        return report

    # -- analysis ---------------------------------------------------------------------------------

    def iter_stats(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None
                   ) -> Iterator[tuple[ChunkResult, Any]]:
        """Stats of every filter for every valid row, chunk by chunk (nothing is filtered)."""
        bad_file = _BadRowSink(self.bad_rows_path)
        bar = _progress(self.progress, f"{self.recipe.project_name} (analyze)")
        try:
            for res in self._map(self._chunks(files, row_range), analyze=True):
                bad_file.write(res.bad)
                if bar is not None:
                    bar.update(res.n_records)
                yield res, bad_file
        finally:
            bad_file.close()
            if bar is not None:
                bar.close()


def executor_for(recipe: Recipe) -> type[LocalExecutor]:
    """The executor class of ``recipe.executor_type`` (Ray is imported only when asked for)."""
    if recipe.executor_type == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor
    return LocalExecutor


class _Outputs:
    """The output files of a run: one export, or one per input file; all written atomically."""

    def __init__(self, export_path: Path, per_source: dict[str, Path] | None, recipe: Recipe, has_stats: bool):
        self.export_path = export_path
        self.per_source = {str(k): Path(v) for k, v in (per_source or {}).items()}
        self.parquet = recipe.resolved_export_type == "parquet" if not per_source else \
            all(str(p).endswith(".parquet") for p in self.per_source.values())
        self.shard_size = recipe.export_shard_size
        self.compression = recipe.export_compression
        self.has_stats = has_stats
        self.open: dict[Path, tuple[Any, Any]] = {}
        if not per_source:
            self._get(export_path)
        else:
            for path in self.per_source.values():
                self._get(path)

    def _get(self, path: Path):
        if path not in self.open:
            writer = ParquetWriter(path, self.shard_size, self.compression) if self.parquet \
                else JsonlWriter(path, self.shard_size)
            stats = JsonlWriter(stats_path_for(path)) if self.has_stats else None
            self.open[path] = (writer, stats)
        return self.open[path]

    def write(self, res: ChunkResult, keep_pos: list[int]) -> None:
        path = self.per_source.get(res.source, self.export_path) if self.per_source else self.export_path
        writer, stats_writer = self._get(path)
        if res.payload is None:
            return
        if isinstance(res.payload, pa.Table):
            writer.write_table(res.payload if len(keep_pos) == res.payload.num_rows
                               else res.payload.take(pa.array(keep_pos, type=pa.int64())))
        else:
            p = res.payload
            writer.write_lines(p if len(keep_pos) == len(p) else [p[i] for i in keep_pos])
        if stats_writer is not None and res.stats_lines is not None:
            s = res.stats_lines
            stats_writer.write_lines(s if len(keep_pos) == len(s) else [s[i] for i in keep_pos])

    def abort(self) -> None:
        for writer, stats in self.open.values():
            writer.abort()
            if stats is not None:
                stats.abort()

    def close(self) -> tuple[list[str], list[str]]:
        outputs, stats_files = [], []
        for writer, stats in self.open.values():
            outputs.extend(str(p) for p in writer.close())
            if stats is not None:
                stats_files.extend(str(p) for p in stats.close())
        return outputs, stats_files


def _format_of(export_type: str) -> str:
    """"parquet", or "jsonl" for every JSON-lines export type (jsonl, json)."""
    return "parquet" if export_type == "parquet" else "jsonl"


def _output_kind(export_path: str | Path | None, outputs: dict[str, Path] | None) -> str | None:
    """The :func:`_format_of` the output files of a run are named for (.parquet, else JSON lines);
    None when the run names none."""
    paths = list(outputs.values()) if outputs else [export_path] if export_path is not None else []
    kinds = {"parquet" if str(p).lower().endswith(".parquet") else "jsonl" for p in paths}
    if len(kinds) > 1:
        raise ValueError(f"output files mix Parquet and JSON lines: {sorted(map(str, paths))[:4]}")
    return kinds.pop() if kinds else None


def _joined_plans(head: dict[str, Any], rest: dict[str, Any], offset: int) -> dict[str, Any]:
    """The plans of the two passes of a run cut at a deduplicator, as one plan of the chain."""
    steps = head.get("steps", []) + [
        {**s, "positions": [p + offset for p in s["positions"]]} for s in rest.get("steps", [])]
    devices = {**head.get("devices", {})}
    for name_pos, dev in rest.get("devices", {}).items():
        name, pos = name_pos.rsplit("#", 1)
        devices[f"{name}#{int(pos) + offset}"] = dev
    return {**head, "steps": steps, "devices": devices}


def _device_of(op: OP) -> str:
    placement = getattr(op, "placement", None)
    if not callable(placement):
        return "cpu"
    where = placement()
    return f"{where.device.split(':')[0]} {where.dtype}"


def _probe_rows(ops: list[OP], batch_size: int) -> int:
    """Rows to probe: a batch, or one model micro-batch when a model OP is in the chain."""
    sizes = [op.probe_rows() for op in ops if callable(getattr(op, "probe_rows", None))]
    return max(1, min([batch_size, *sizes]))


def _fork_safe(n_workers: int) -> bool:
    """Whether workers may be forked from this process.  GNU OpenMP (torch's CPU thread pool) is
    not fork-safe: a child running a parallel region after the parent ran one with several
    threads hangs.  So fork only when torch is not loaded here, ran here on one thread, or each
    worker will run on one thread (``configure_threads``: cores // workers)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    return torch.get_num_threads() == 1 or (os.cpu_count() or 1) // n_workers <= 1


def _release_models() -> None:
    """Drop the models this process loaded (for the fusion probe, or to run chunks itself)."""
    runtime = sys.modules.get("dj_ops.models.runtime")
    if runtime is not None:
        runtime.release_models()


def _kind(op: OP) -> str:
    return "filter" if isinstance(op, Filter) else "deduplicator" if isinstance(op, Deduplicator) else "mapper"


def _progress(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=" rows", mininterval=0.5, file=sys.stderr)


def _copy_spill(name: str, spilled: list[Path], skip: dict[str, np.ndarray], export_path: Path,
                outputs: dict[str, Path] | None, shard_size: int) -> RunReport:
    """The output of a chain that ends at its near-duplicate deduplicator: the spilled lines
    the index kept, copied in blocks without parsing them again (a write per run of kept lines)."""
    report = RunReport(recipe=name)
    writers: dict[Path, JsonlWriter] = {}
    # blocks end at the shard size too, so shards roll over as when writing chunk by chunk
    block_bytes = min(shard_size or (16 << 20), 16 << 20)
    try:
        for src in spilled:
            target = Path(outputs[str(src)]) if outputs else export_path
            if target not in writers:
                writers[target] = JsonlWriter(target, shard_size)
            writer = writers[target]
            removed = skip.get(str(src))
            first = 0  # spill line number of the block's first line
            rest = b""
            with open(src, "rb") as fh:
                while True:
                    more = fh.read(block_bytes)
                    data = rest + more
                    if not data:
                        break
                    cut = data.rfind(b"\n") + 1
                    if not more and cut < len(data):  # a last line without its newline
                        data += b"\n"
                        cut = len(data)
                    if cut == 0:  # a line longer than the block: read on
                        rest = data
                        continue
                    block, rest = memoryview(data)[:cut], data[cut:]
                    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A) + 1
                    n = len(ends)
                    drop = removed[first:first + n] if removed is not None else None
                    kept = kept_runs(drop, n)
                    starts = np.concatenate(([0], ends[:-1]))
                    for a, b in kept:
                        writer.write_raw(block[starts[a]:ends[b - 1]], b - a)
                    report.rows_in += n
                    report.rows_out += sum(b - a for a, b in kept)
                    first += n
            writer.write_lines([])  # the file exists even when every line was removed
        if not writers:
            writers[export_path] = JsonlWriter(export_path, shard_size)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    report.rows_valid = report.rows_in
    report.outputs = [str(p) for writer in writers.values() for p in writer.close()]
    return report


def kept_runs(drop: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """[start, stop) runs of the ``n`` lines not marked in ``drop`` (which may be shorter)."""
    keep = np.ones(n, dtype=bool)
    if drop is not None and len(drop):
        keep[:len(drop)] = ~np.asarray(drop[:n], dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _dedup_pairs(removed: dict[int, int], held_ids: dict[str, np.ndarray], spill: dict[str, Path],
                 limit: int, summary: dict[str, Any]) -> list[dict]:
    """The first ``limit`` removed rows and their survivors, read back from the spill, with the
    pair's similarity from the index's summary (its sample pairs are the first removed rows)."""
    chosen = sorted(removed)[:limit]
    wanted = set(chosen) | {removed[r] for r in chosen}
    texts: dict[int, Any] = {}
    for src, ids in held_ids.items():
        positions = {int(p): int(ids[p]) for p in np.flatnonzero(np.isin(ids, list(wanted)))}
        if not positions:
            continue
        with open(spill[src], "rb") as fh:
            for pos, line in enumerate(fh):
                if pos in positions:
                    texts[positions[pos]] = orjson.loads(line)
    similarity = {(p["survivor"], p["removed"]): p.get("estimated_jaccard", p.get("similarity"))
                  for p in summary.get("sample_pairs", [])}
    pairs = []
    for r in chosen:
        pair = {"dup1": texts.get(removed[r]), "dup2": texts.get(r)}
        if (removed[r], r) in similarity:
            pair["similarity"] = similarity[removed[r], r]
        pairs.append(pair)
    return pairs


class _BadRowSink:
    """Writes bad rows (file, line, reason, raw) to a JSON-lines file, created on first use."""

    def __init__(self, path: Path, append: bool = False):
        self.path = path
        self.append = append
        self.fh = None
        self.count = 0

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "ab" if self.append else "wb")
        for r in rows:
            self.fh.write(orjson.dumps(r) + b"\n")
        self.count += len(rows)

    def close(self) -> str | None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        return str(self.path) if self.count else None


class _TraceCollector:
    """Keeps the first ``trace_num`` records per OP in input order (Data-Juicer's trace layout)."""

    def __init__(self, ops: list[OP], recipe: Recipe, work_dir: Path):
        traced = set(recipe.op_list_to_trace)
        self.ops = {k: op for k, op in enumerate(ops) if not traced or op.name in traced}
        self.limit = recipe.trace_num
        self.records: dict[int, list[dict]] = {k: [] for k in self.ops}
        self.dir = work_dir / "trace"
        # first-occurrence texts, kept only until enough duplicate pairs are traced
        self.first_text: dict[int, dict[int, str]] = {k: {} for k in self.ops}

    def add(self, traces: dict[int, list[dict]], drop_of: dict[int, int]) -> None:
        for k, recs in traces.items():
            out = self.records.get(k)
            if out is None:
                continue
            for r in recs:
                rid = r.pop("_row_id")
                if len(out) < self.limit and drop_of.get(rid, k) >= k:
                    out.append(r)

    def dedup_seen(self, k: int, rid: int, dup_of: int | None, text: str | None) -> None:
        out = self.records[k]
        if len(out) >= self.limit:
            self.first_text[k].clear()
            return
        if dup_of is None:
            self.first_text[k][rid] = text
        else:
            out.append({"dup1": self.first_text[k].get(dup_of, f"<row {dup_of}>"), "dup2": text})

    def write(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        names = collections.Counter(op.name for op in self.ops.values())
        for k, op in self.ops.items():
            prefix = _kind(op).replace("deduplicator", "duplicate")
            # an OP used twice in one chain gets its position in the name so traces don't collide
            suffix = f"-{k}" if names[op.name] > 1 else ""
            path = self.dir / f"{prefix}-{op.name}{suffix}.jsonl"
            with open(path, "wb") as fh:
                for r in self.records[k]:
                    fh.write(orjson.dumps(r, default=str) + b"\n")
        return str(self.dir)
