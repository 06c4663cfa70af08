"""The executor: the public face of the engine (``LocalExecutor(recipe).run()``).

An :class:`Executor` reads the input as a :class:`~dj_ops.engine.source.ChunkSource`, plans the
chain (:mod:`.planning`: chunk size, OP fusion probed on the first rows), has a backend run the
chunks through the chain (:mod:`.backend`: worker processes; :mod:`.ray_backend`: Ray actors),
and coordinates the results in input order (:mod:`.coordinator`: deduplication decisions,
outputs, report).  A chain holding a near-duplicate deduplicator runs as the three steps of the
deduplication barrier (:mod:`.dedup`).  Output order is the input order, whatever the backend
or the number of workers.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import Chunk, DatasetFormatError
from dj_ops.ops.base import Deduplicator, Filter

from . import checkpoint, dedup
from .backend import Backend, ChainJob, LocalBackend
from .chain import ChunkResult
from .coordinator import PassResult, coordinate, progress_bar
from .fusion import Plan
from .planning import chunk_rows, make_plan
from .report import RunReport
from .sinks import BadRowSink, Outputs, TraceCollector, spilled_rows, write_duplicate_pairs
from .source import ChunkSource, input_files


class Executor:
    """Runs a recipe; the backend (where chunks run) is the subclass's."""

    backend_name: ClassVar[str] = ""

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

    def new_backend(self) -> Backend:
        raise NotImplementedError

    def with_recipe(self, recipe: Recipe) -> Executor:
        """An executor of the same kind and settings for another recipe (a step of this run)."""
        return type(self)(recipe, progress=self.progress, bad_rows_path=self.bad_rows_path, log=self.log)

    # -- input and plan ---------------------------------------------------------------------------

    def chunk_rows(self) -> int:
        return chunk_rows(self.recipe, self.ops)

    def source(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None,
               skip: dict[str, np.ndarray] | None = None) -> ChunkSource:
        """What a pass over ``files`` (default: the recipe's input) reads."""
        return ChunkSource(list(files) if files is not None else input_files(self.recipe), self.chunk_rows(),
                           self.recipe.max_record_bytes, row_range, skip)

    def plan(self) -> dict[str, Any]:
        """How the OPs will run, as a dict: steps (fused groups with their order, shared
        intermediates and probe measurements) and the device of every OP.  With ``op_fusion`` this
        probes the first rows of the input (once per executor)."""
        return self._plan_for(None).to_dict(self.ops)

    def _plan_for(self, source: ChunkSource | None) -> Plan:
        """The plan, made once per executor, probed on the first chunk of ``source`` (before a
        run: of the recipe's input)."""
        if self._plan is None:
            def first() -> Chunk | None:
                try:
                    return (source or self.source()).first()
                except (DatasetFormatError, OSError):
                    return None  # nothing to probe: the plan falls back to the recipe order

            self._plan = make_plan(self.recipe, self.ops, first)
            if self.recipe.op_fusion:
                self.log(self._plan.describe(self.ops))
        return self._plan

    def _results(self, source: ChunkSource, output: str, store: checkpoint.ChunkStore | None
                 ) -> Iterator[ChunkResult]:
        plan = self._plan_for(source)
        job = ChainJob(self.recipe, output, plan.to_dict(self.ops), self.ops)
        return self.new_backend().results(source, job, store, self.log)

    # -- processing ------------------------------------------------------------------------------

    def run(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None,
            export_path: str | Path | None = None, outputs: dict[str, Path] | None = None,
            skip: dict[str, np.ndarray] | None = None, append_bad_rows: bool = False) -> RunReport:
        """Process the dataset (or ``files`` / one ``row_range`` of them) and export the result.

        ``outputs`` maps each input file to its own output file (one partition in, one out), e.g.
        for a global deduplication over many partitions; otherwise everything goes to
        ``export_path`` (default: the recipe's).  ``skip`` maps an input file to a boolean mask
        over its records: masked records are left out (already decided elsewhere).  A chain with
        a near-duplicate deduplicator runs as the deduplication barrier's steps (:mod:`.dedup`).
        """
        kind = _output_kind(export_path, outputs)
        if kind is not None and kind != _format_of(self.recipe.resolved_export_type):
            # the workers serialise rows for the recipe's export type: give them the target's
            return self.with_recipe(self.recipe.model_copy(update={"export_type": kind})).run(
                files, row_range, export_path, outputs, skip, append_bad_rows)
        cut = self._barrier()
        if cut is None:
            return self.run_pass(files, row_range, export_path, outputs, skip, append_bad_rows).report
        return self._run_with_barrier(cut, files, row_range, export_path, outputs, skip, append_bad_rows)

    def run_pass(self, files: list[Path] | None, row_range: tuple[int, int] | None, export_path: str | Path | None,
                 outputs: dict[str, Path] | None, skip: dict[str, np.ndarray] | None, append_bad_rows: bool,
                 hold_back: int | None = None, write_rows: bool = True) -> PassResult:
        """One streaming pass over the input.  With ``hold_back`` = the position of a (last)
        near-duplicate deduplicator, its keys are collected (``PassResult.held``) and every row
        reaching it is written (unless ``write_rows`` is off: then only the keys and the ids of
        the rows that reached it come back, e.g. when those rows are already in a file)."""
        t_start = time.perf_counter()
        recipe = self.recipe
        source = self.source(files, row_range, skip)
        export = Path(export_path or recipe.export_path)
        has_stats = any(isinstance(op, Filter) and op.has_stats for op in self.ops)
        sinks = Outputs(export, outputs, recipe, has_stats) if write_rows else None
        bad_rows = BadRowSink(self.bad_rows_path, append=append_bad_rows)
        output = "rows" if write_rows else "keys"
        try:
            store = checkpoint.open_store(recipe, source, hold_back, output, [export, self.bad_rows_path], self.log)
            results = self._results(source, output, store)
        except BaseException:
            if sinks is not None:
                sinks.abort()
            raise
        tracer = TraceCollector(self.ops, recipe, self.work_dir) if recipe.open_tracer else None
        result = coordinate(recipe, self.ops, self._plan_for(source).order, results, sinks, bad_rows, tracer,
                            self.progress, hold_back)
        result.report.plan = self.plan()
        result.report.seconds = round(time.perf_counter() - t_start, 3)
        return result

    def _barrier(self) -> int | None:
        for k, op in enumerate(self.ops):
            if isinstance(op, Deduplicator) and not op.new_index().streaming:
                return k
        return None

    def _run_with_barrier(self, cut: int, files: list[Path] | None, row_range: tuple[int, int] | None,
                          export_path: str | Path | None, outputs: dict[str, Path] | None,
                          skip: dict[str, np.ndarray] | None, append_bad_rows: bool) -> RunReport:
        recipe = self.recipe
        t_start = time.perf_counter()
        files = files if files is not None else input_files(recipe)
        spill_dir = self.work_dir / f".spill-{os.getpid()}-{time.time_ns()}"
        spill = {str(f): spill_dir / f"{i:05d}.jsonl" for i, f in enumerate(files)}
        final_outputs = {str(spill[str(f)]): Path(outputs[str(f)]) for f in files} if outputs else None
        copy = self._spill_is_output(cut)
        # the spill carries the stats the rest of the chain reads, or, when it is the output, the
        # rows exactly as the output has them
        head = self.with_recipe(dedup.head_recipe(recipe, cut, "jsonl",
                                                  keep_stats=recipe.keep_stats_in_res_ds if copy else True))
        op_name = self.ops[cut].name
        try:
            keyed = dedup.key(head, files, row_range, spill, skip, append_bad_rows)
            index = keyed.index
            index.sample_size = max(index.sample_size, recipe.trace_num)  # the traced pairs' similarity
            removed = index.finalize()
            rest = self.with_recipe(dedup.rest_recipe(recipe, cut))
            rest_report = dedup.finish(rest, [spill[str(f)] for f in files], keyed.removed_masks(removed),
                                       Path(export_path or recipe.export_path), final_outputs, copy=copy)
            traced = recipe.open_tracer and (not recipe.op_list_to_trace or op_name in recipe.op_list_to_trace)
            pairs = _duplicate_pairs(removed, keyed, recipe.trace_num, index.summary()) if traced else None
        finally:
            shutil.rmtree(spill_dir, ignore_errors=True)
        report = dedup.joined_report(keyed.report, rest_report, cut, len(removed))
        report.dedup = {**keyed.report.dedup, op_name: index.summary(), **rest_report.dedup}
        report.plan = _joined_plans(keyed.report.plan, rest_report.plan, cut + 1)
        if pairs is not None:
            report.trace_dir = write_duplicate_pairs(self.work_dir, op_name, pairs)
        report.seconds = round(time.perf_counter() - t_start, 3)
        return report

    def _spill_is_output(self, cut: int) -> bool:
        """Whether the spill lines, minus the removed rows, are already the output: the
        deduplicator is the last OP, no filter added stats to the spilled rows and the output is
        JSON lines (``run`` has made the recipe's export type the targets'), which is what a
        second pass with no OPs would write, byte for byte."""
        return (cut == len(self.ops) - 1 and not any(isinstance(op, Filter) and op.has_stats for op in self.ops)
                and _format_of(self.recipe.resolved_export_type) == "jsonl")

    # -- analysis ---------------------------------------------------------------------------------

    def iter_stats(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None
                   ) -> Iterator[tuple[ChunkResult, BadRowSink]]:
        """Stats of every filter for every valid row, chunk by chunk (nothing is filtered)."""
        bad_file = BadRowSink(self.bad_rows_path)
        bar = progress_bar(self.progress, f"{self.recipe.project_name} (analyze)")
        try:
            for res in self._results(self.source(files, row_range), "stats", store=None):
                bad_file.write(res.bad)
                if bar is not None:
                    bar.update(res.n_records)
                yield res, bad_file
        finally:
            bad_file.close()
            if bar is not None:
                bar.close()


class LocalExecutor(Executor):
    """Runs a recipe on this machine with ``np`` worker processes."""

    backend_name = "local"

    def new_backend(self) -> Backend:
        return LocalBackend()


class RayExecutor(Executor):
    """Runs a recipe on Ray: connects to ``ray_address`` (``auto``: a running cluster, else a new
    local one with ``np`` CPUs); the chain runs in an actor pool (:mod:`.ray_backend`)."""

    backend_name = "ray"

    def new_backend(self) -> Backend:
        from .ray_backend import RayBackend

        return RayBackend()


def executor_for(recipe: Recipe) -> type[Executor]:
    """The executor class of ``recipe.executor_type`` (Ray is imported only when asked for)."""
    return RayExecutor if recipe.executor_type == "ray" else LocalExecutor


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


def _duplicate_pairs(removed: dict[int, int], keyed: dedup.KeyedRows, limit: int, summary: dict[str, Any]
                     ) -> list[dict]:
    """The first ``limit`` removed rows and their survivors, read back from the spill, with the
    pair's similarity from the index's summary (its sample pairs are the first removed rows)."""
    chosen = sorted(removed)[:limit]
    texts = spilled_rows(keyed.rows_files, keyed.row_ids, set(chosen) | {removed[r] for r in chosen})
    similarity = {(p["survivor"], p["removed"]): p.get("estimated_jaccard", p.get("similarity"))
                  for p in summary.get("sample_pairs", [])}
    pairs = []
    for r in chosen:
        pair = {"dup1": texts.get(removed[r]), "dup2": texts.get(r)}
        if (removed[r], r) in similarity:
            pair["similarity"] = similarity[removed[r], r]
        pairs.append(pair)
    return pairs
