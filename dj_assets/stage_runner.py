"""Runs one stage of a recipe over partitions through the engine (no Dagster in here).

A per-row stage runs partition by partition, so every partition gets its own engine report
(per-OP rows and seconds).  A global stage (deduplication) decides in partition order, so the
first occurrence in that order survives, exactly as a local run over the same files in the same
order decides.  With one deduplicator whose keys can be stored (every built-in one), each
partition's keys are stored beside its output (:mod:`dj_ops.engine.dedup_store`): a step keys its
own partitions and reads the stored keys of the others instead of recomputing them.  Otherwise
the partitions before the requested ones are run again as context (read, not written).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dj_ops.engine import dedup_store
from dj_ops.engine import LocalExecutor, RunReport, executor_for
from dj_ops.engine.sinks import write_duplicate_pairs
from dj_ops.core.recipe import Recipe
from dj_ops.engine.stages import Stage

from .shards import Shard, count_rows


@dataclass
class PartitionResult:
    key: str
    staged: Path  # the finished local Parquet file
    rows_in: int
    rows_out: int
    bad_rows: int = 0
    seconds: float = 0.0
    ops: list[dict] = field(default_factory=list)  # per-OP rows/seconds (per-row stages)
    bad_rows_file: str | None = None
    workers: int = 0  # engine worker processes (1: ran inside the step process)

    @property
    def keep_ratio(self) -> float:
        return self.rows_out / self.rows_in if self.rows_in else 1.0


@dataclass
class StageRun:
    """What one materialization of a stage did, over the partitions it wrote."""

    partitions: list[PartitionResult]
    report: RunReport  # the engine's report over everything it read (summed for per-row stages)
    context_partitions: int = 0  # partitions run again only as deduplication context
    #: deduplication from stored keys: partitions whose stored keys were read / had to be computed
    keys_read: list[str] = field(default_factory=list)
    keys_computed: list[str] = field(default_factory=list)
    #: earlier partitions whose output no longer matches the decision over every partition (a
    #: later row joined two of their clusters): materialize them again
    stale_partitions: list[str] = field(default_factory=list)
    #: a per-row stage's keys for the deduplicator of the next (global) stage, per partition
    keys_ahead: dict[str, pa.Array] = field(default_factory=dict)


class KeyStore(Protocol):
    """Where a global stage's per-partition deduplication keys live (beside its outputs)."""

    def load(self, partition: str, fingerprint: str) -> dedup_store.StoredKeys | None:
        """The partition's stored keys, if made with ``fingerprint`` from its current input."""

    def save(self, partition: str, fingerprint: str, keys: pa.Array, removed: np.ndarray | None,
             staging: Path) -> None:
        """Store the partition's keys (and the decision its output was written with)."""


def stage_recipe(recipe: Recipe, stage: Stage) -> Recipe:
    """The engine recipe of a stage: its OPs, Parquet partition files, stats carried in the rows."""
    return stage.recipe(recipe, export_type="parquet", keep_stats_in_res_ds=True, export_shard_size=0,
                        export_compression=recipe.stage_compression)


def safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", key)


def parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


#: partitions up to this many rows run inside the step process: starting worker processes (and
#: loading models and compiled kernels in each) would take longer than the work itself
SMALL_PARTITION_ROWS = 2000


def estimated_rows(shard: Shard, file: Path) -> int | None:
    """A shard's rows, exact up to SMALL_PARTITION_ROWS (past it, some larger number); None when
    they cannot be counted cheaply."""
    if shard.row_range is not None:
        return shard.row_range[1] - shard.row_range[0]
    if file.name.endswith(".parquet"):
        return parquet_rows(file)
    return count_rows(file, at_most=SMALL_PARTITION_ROWS) if file.stat().st_size < (64 << 20) else None


def keys_ahead(recipe: Recipe, stage: Stage, next_stage: Stage | None) -> Recipe | None:
    """The engine recipe of ``stage`` followed by the deduplicator that starts ``next_stage``, when
    ``stage`` can compute that deduplicator's keys for the global stage: the keys are a function of
    the text alone and storable, ``stage`` already sets aside rows without a string text (so the
    deduplicator sees exactly its output rows) and runs on the local executor.  Its workers then
    key the rows while they hold them, instead of the global stage reading every text again."""
    if next_stage is None or stage.is_global or not next_stage.is_global or not stage.uses_text:
        return None
    following = stage_recipe(recipe, next_stage)
    if dedup_store.dedup_position(following) != 0 or executor_for(following) is not LocalExecutor:
        return None
    if not following.build_ops()[0].text_keys:
        return None
    return stage_recipe(recipe, stage).model_copy(update={"process": [*stage.specs, next_stage.specs[0]]})


def run_per_row_stage(recipe: Recipe, stage: Stage, shards: list[Shard], files: list[Path], staging: Path,
                      bad_rows_dir: Path, log: Callable[[str], None], ahead: Recipe | None = None) -> StageRun:
    """Each shard through the stage's OPs, one engine run per shard.  With ``ahead`` (see
    :func:`keys_ahead`), the following deduplicator's keys of each partition's output rows are
    computed too: ``StageRun.keys_ahead``."""
    engine_recipe = ahead if ahead is not None else stage_recipe(recipe, stage)
    cut = len(stage.specs)
    executors: dict[bool, LocalExecutor] = {}
    results, total, keys = [], RunReport(recipe=recipe.project_name), {}
    for shard, file in zip(shards, files):
        n = estimated_rows(shard, file)
        small = n is not None and n <= SMALL_PARTITION_ROWS
        if small not in executors:
            r = engine_recipe.model_copy(update={"np": 1}) if small else engine_recipe
            executors[small] = executor_for(r)(r, progress=False, log=log)
        executor = executors[small]
        out = staging / f"{safe_name(shard.key)}.parquet"
        executor.bad_rows_path = bad_rows_dir / f"{safe_name(shard.key)}.jsonl"
        if ahead is not None:
            part = dedup_store.keyed_partition(executor, file, shard.row_range, out)
            keys[shard.key] = part.keys
            rep = part.report
            rep.ops = rep.ops[:cut]  # the deduplicator's row belongs to the next stage
        else:
            rep = executor.run(files=[file], row_range=shard.row_range, export_path=out)
        results.append(PartitionResult(shard.key, out, rep.rows_in, rep.rows_out, rep.bad_rows, rep.seconds,
                                       rep.ops, rep.bad_rows_file, workers=executor.recipe.np))
        _accumulate(total, rep)
    return StageRun(results, total, keys_ahead=keys)


def run_global_stage(recipe: Recipe, stage: Stage, shards: list[Shard], files: list[Path], targets: list[str],
                     staging: Path, bad_rows_dir: Path, log: Callable[[str], None],
                     key_store: KeyStore | None = None, later: list[str] = ()) -> StageRun:
    """Outputs for ``targets``, decided over every partition in order.

    ``shards`` / ``files``: the partitions up to the last target.  With a ``key_store``, the
    targets are keyed, the other partitions' keys are read from it (computed and stored when
    missing), and the partitions in ``later`` whose keys are stored join the decision too: a later
    row can join two earlier near-duplicate clusters.  Without one, the partitions before the
    targets are run again as context.
    """
    last = max(i for i, s in enumerate(shards) if s.key in targets)
    shards, files = shards[:last + 1], files[:last + 1]
    engine_recipe = stage_recipe(recipe, stage)
    rows = [estimated_rows(s, f) for s, f in zip(shards, files)]
    if all(n is not None for n in rows) and sum(rows) <= SMALL_PARTITION_ROWS:
        engine_recipe = engine_recipe.model_copy(update={"np": 1})
    cut = dedup_store.dedup_position(engine_recipe) if key_store is not None else None
    if cut is not None:
        return _run_from_stored_keys(engine_recipe, cut, shards, files, targets, later, staging, bad_rows_dir,
                                     log, key_store)
    files = _whole_files(engine_recipe, shards, files, staging / "_ranges", log)
    outputs, results = {}, {}
    for shard, file in zip(shards, files):
        kind = "" if shard.key in targets else "_context/"
        outputs[str(file)] = staging / f"{kind}{safe_name(shard.key)}.parquet"
    t0 = time.perf_counter()
    rep = executor_for(engine_recipe)(engine_recipe, progress=False, log=log,
                                      bad_rows_path=bad_rows_dir / f"global-{time.time_ns()}.jsonl").run(files=files, outputs=outputs)
    seconds = time.perf_counter() - t0
    for shard, file in zip(shards, files):
        if shard.key in targets:
            out = outputs[str(file)]
            results[shard.key] = PartitionResult(shard.key, out, _rows(file), parquet_rows(out),
                                                 seconds=round(seconds, 3), workers=engine_recipe.np)
    ordered = [results[k] for k in targets if k in results]
    return StageRun(ordered, rep, context_partitions=len(shards) - len(ordered))


def _run_from_stored_keys(recipe: Recipe, cut: int, shards: list[Shard], files: list[Path], targets: list[str],
                          later: list[str], staging: Path, bad_rows_dir: Path, log: Callable[[str], None],
                          key_store: KeyStore) -> StageRun:
    fingerprint = dedup_store.keys_fingerprint(recipe, cut)
    run = StageRun([], RunReport(recipe=recipe.project_name))
    keyed: dict[str, dedup_store.PartitionKeys] = {}
    for shard, file in zip(shards, files):
        if shard.key in targets:
            # keys stored by the upstream stage for exactly this file, else computed here
            stored = key_store.load(shard.key, fingerprint) if cut == 0 else None
            part = dedup_store.stored_partition_keys(recipe, file, stored) if stored is not None else None
            if part is not None:
                run.keys_read.append(shard.key)
            else:
                part = dedup_store.partition_keys(
                    recipe, cut, file, shard.row_range, staging / "_keyed" / f"{safe_name(shard.key)}.parquet",
                    bad_rows_dir / f"{safe_name(shard.key)}.jsonl", log)
                run.keys_computed.append(shard.key)
            keyed[shard.key] = part
        elif key_store.load(shard.key, fingerprint) is None:
            # keyed before keys were stored, or its input changed since: key it once, store it
            part = dedup_store.partition_keys(
                recipe, cut, file, shard.row_range, staging / "_context" / f"{safe_name(shard.key)}.parquet",
                staging / "_context" / "bad_rows.jsonl", log, keep_rows=False)
            key_store.save(shard.key, fingerprint, part.keys, None, staging)
            run.keys_computed.append(shard.key)
    order = [s.key for s in shards] + list(later)
    decided: list[str] = []  # partitions in the decision, in order
    stored_removed: dict[str, np.ndarray] = {}

    def keys_in_order() -> Iterator[pa.Array]:  # one partition's keys in memory at a time
        for key in order:
            if key in keyed:
                decided.append(key)
                yield keyed[key].keys
                continue
            stored = key_store.load(key, fingerprint)
            if stored is None:
                continue  # a later partition not keyed yet: it is decided when it is materialized
            decided.append(key)
            if key not in targets and key not in run.keys_computed:
                run.keys_read.append(key)
            if stored.removed is not None:
                stored_removed[key] = stored.removed
            yield stored.keys

    op = recipe.build_ops()[cut]
    decision = dedup_store.decide(op, keys_in_order(), recipe.trace_num if recipe.open_tracer else 0)
    run.keys_read.sort(key=order.index)
    position = {key: i for i, key in enumerate(decided)}
    for key, removed in stored_removed.items():
        if not np.array_equal(removed, decision.removed[position[key]]):
            run.stale_partitions.append(key)
    for shard, file in zip(shards, files):
        if shard.key not in targets:
            continue
        head = keyed[shard.key]
        removed = decision.removed[position[shard.key]]
        out = staging / f"{safe_name(shard.key)}.parquet"
        rep = dedup_store.finish_partition(recipe, cut, head, removed, out,
                                           bad_rows_dir / f"{safe_name(shard.key)}.jsonl", log)
        key_store.save(shard.key, fingerprint, head.keys, removed, staging)
        run.partitions.append(PartitionResult(shard.key, out, rep.rows_in, rep.rows_out, rep.bad_rows, rep.seconds,
                                              rep.ops, rep.bad_rows_file, workers=recipe.np))
        _accumulate(run.report, rep)
    summary, texts = _located_summary(decision, decided, keyed, op.text_key)
    run.report.dedup = {op.name: summary}
    if recipe.open_tracer and (not recipe.op_list_to_trace or op.name in recipe.op_list_to_trace):
        run.report.trace_dir = _write_pair_trace(recipe, op.name, summary["sample_pairs"], texts)
    for head in keyed.values():
        head.discard_rows()
    return run


#: characters of each sample pair's texts shown in a summary (the trace has them whole)
SUMMARY_TEXT_CHARS = 200


def _located_summary(decision: dedup_store.Decision, decided: list[str], keyed: dict[str, dedup_store.PartitionKeys],
                     text_key: str) -> tuple[dict, dict[tuple[str, int], str]]:
    """The index summary with each sample pair's rows as (partition, row among the partition's
    rows that reached the deduplicator), and the texts of those in this step's partitions."""
    pairs = []
    for pair in decision.summary.get("sample_pairs", []):
        located = dict(pair)
        for role in ("survivor", "removed"):
            part, row = decision.locate(pair[role])
            located[role] = {"partition": decided[part], "row": row}
        pairs.append(located)
    texts: dict[tuple[str, int], str] = {}
    for key, head in keyed.items():
        wanted = sorted({p[r]["row"] for p in pairs for r in ("survivor", "removed") if p[r]["partition"] == key})
        if not wanted:
            continue
        for row, text in zip(wanted, _texts_at(head.rows_file, text_key, wanted)):
            texts[(key, row)] = text
    for pair in pairs:
        for role in ("survivor", "removed"):
            text = texts.get((pair[role]["partition"], pair[role]["row"]))
            if isinstance(text, str):
                pair[role]["text"] = text[:SUMMARY_TEXT_CHARS]
    return {**decision.summary, "partitions": len(decided), "sample_pairs": pairs}, texts


def _texts_at(path: Path, text_key: str, rows: list[int]) -> list:
    """The texts of ``rows`` of a Parquet file, reading only the row groups that hold them."""
    source = pq.ParquetFile(path)
    sizes = np.array([source.metadata.row_group(g).num_rows for g in range(source.num_row_groups)], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)))
    rows_arr = np.asarray(rows, dtype=np.int64)
    group_of = np.searchsorted(starts, rows_arr, side="right") - 1
    groups = np.unique(group_of)
    read_offset = np.concatenate(([0], np.cumsum(sizes[groups])))[np.searchsorted(groups, group_of)]
    column = source.read_row_groups(groups.tolist(), columns=[text_key]).column(text_key)
    return column.take(pa.array(read_offset + rows_arr - starts[group_of])).to_pylist()


def _write_pair_trace(recipe: Recipe, op_name: str, pairs: list[dict], texts: dict[tuple[str, int], str]) -> str:
    """``<work_dir>/trace/duplicate-<op>.jsonl``: the sample pairs as Data-Juicer's ``dup1`` (the
    survivor) / ``dup2`` (the removed row), with their similarity and where they are."""
    records = []
    for pair in pairs[:recipe.trace_num]:
        record = {}
        for name, role in (("dup1", "survivor"), ("dup2", "removed")):
            where = (pair[role]["partition"], pair[role]["row"])
            record[name] = texts.get(where, f"<{where[0]} row {where[1]}>")
        record.update({k: v for k, v in pair.items() if k not in ("survivor", "removed")})
        record["where"] = {r: {k: pair[r][k] for k in ("partition", "row")} for r in ("survivor", "removed")}
        records.append(record)
    return write_duplicate_pairs(recipe.resolved_work_dir, op_name, records)


def _whole_files(recipe: Recipe, shards: list[Shard], files: list[Path], folder: Path,
                 log: Callable[[str], None]) -> list[Path]:
    """A global first stage over split raw input: each row-range shard is copied to a Parquet
    file of its own (the engine gives one output per input file)."""
    if all(s.row_range is None for s in shards):
        return files
    copier = LocalExecutor(recipe.model_copy(update={"process": []}), progress=False, log=log,
                           bad_rows_path=folder / "bad_rows.jsonl")
    out = []
    for i, (shard, file) in enumerate(zip(shards, files)):
        if shard.row_range is None:
            out.append(file)
            continue
        target = folder / f"{i:06d}.parquet"
        copier.run(files=[file], row_range=shard.row_range, export_path=target)
        out.append(target)
    return out


def _rows(file: Path) -> int:
    return parquet_rows(file) if file.name.endswith(".parquet") else count_rows(file) or 0


def _accumulate(total: RunReport, rep: RunReport) -> None:
    total.rows_in += rep.rows_in
    total.rows_valid += rep.rows_valid
    total.rows_out += rep.rows_out
    total.bad_rows += rep.bad_rows
    total.seconds = round(total.seconds + rep.seconds, 3)
    if not total.ops:
        total.ops = [dict(o) for o in rep.ops]
        return
    for acc, o in zip(total.ops, rep.ops):
        for k in ("rows_in", "rows_out", "changed", "errors"):
            acc[k] += o[k]
        acc["cpu_seconds"] = round(acc["cpu_seconds"] + o["cpu_seconds"], 3)
