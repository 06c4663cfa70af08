"""Runs one stage of a recipe over partitions through the engine (no Dagster in here).

A per-row stage runs partition by partition, so every partition gets its own engine report
(per-OP rows and seconds).  A global stage (deduplication) runs once over its input partitions
in partition order, one output per partition, so the first occurrence in that order survives,
exactly as a local run over the same files in the same order decides.  Partitions before the
requested ones are read for context (their rows count as earlier occurrences) but not written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from dj_ops.core.executor import LocalExecutor, RunReport
from dj_ops.core.recipe import Recipe
from dj_ops.core.stages import Stage

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
    context_partitions: int = 0  # partitions read only as deduplication context


def stage_recipe(recipe: Recipe, stage: Stage) -> Recipe:
    """The engine recipe of a stage: its OPs, Parquet partition files, stats carried in the rows."""
    return stage.recipe(recipe, export_type="parquet", keep_stats_in_res_ds=True, export_shard_size=0)


def safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", key)


def parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


#: partitions up to this many rows run inside the step process: starting worker processes (and
#: loading models and compiled kernels in each) would take longer than the work itself
SMALL_PARTITION_ROWS = 2000


def estimated_rows(shard: Shard, file: Path) -> int | None:
    if shard.row_range is not None:
        return shard.row_range[1] - shard.row_range[0]
    if file.name.endswith(".parquet"):
        return parquet_rows(file)
    return count_rows(file) if file.stat().st_size < (64 << 20) else None


def run_per_row_stage(recipe: Recipe, stage: Stage, shards: list[Shard], files: list[Path], staging: Path,
                      bad_rows_dir: Path, log: Callable[[str], None]) -> StageRun:
    """Each shard through the stage's OPs, one engine run per shard."""
    engine_recipe = stage_recipe(recipe, stage)
    executors: dict[bool, LocalExecutor] = {}
    results, total = [], RunReport(recipe=recipe.project_name)
    for shard, file in zip(shards, files):
        n = estimated_rows(shard, file)
        small = n is not None and n <= SMALL_PARTITION_ROWS
        if small not in executors:
            r = engine_recipe.model_copy(update={"np": 1}) if small else engine_recipe
            executors[small] = LocalExecutor(r, progress=False, log=log)
        executor = executors[small]
        out = staging / f"{safe_name(shard.key)}.parquet"
        executor.bad_rows_path = bad_rows_dir / f"{safe_name(shard.key)}.jsonl"
        rep = executor.run(files=[file], row_range=shard.row_range, export_path=out)
        results.append(PartitionResult(shard.key, out, rep.rows_in, rep.rows_out, rep.bad_rows, rep.seconds,
                                       rep.ops, rep.bad_rows_file, workers=executor.recipe.np))
        _accumulate(total, rep)
    return StageRun(results, total)


def run_global_stage(recipe: Recipe, stage: Stage, shards: list[Shard], files: list[Path], targets: list[str],
                     staging: Path, bad_rows_dir: Path, log: Callable[[str], None]) -> StageRun:
    """All ``shards`` (partition order) through the stage at once; outputs for ``targets`` only.

    Shards after the last target cannot affect the targets and are not read.
    """
    last = max(i for i, s in enumerate(shards) if s.key in targets)
    shards, files = shards[:last + 1], files[:last + 1]
    engine_recipe = stage_recipe(recipe, stage)
    rows = [estimated_rows(s, f) for s, f in zip(shards, files)]
    if all(n is not None for n in rows) and sum(rows) <= SMALL_PARTITION_ROWS:
        engine_recipe = engine_recipe.model_copy(update={"np": 1})
    files = _whole_files(engine_recipe, shards, files, staging / "_ranges", log)
    outputs, results = {}, {}
    for shard, file in zip(shards, files):
        kind = "" if shard.key in targets else "_context/"
        outputs[str(file)] = staging / f"{kind}{safe_name(shard.key)}.parquet"
    t0 = time.perf_counter()
    rep = LocalExecutor(engine_recipe, progress=False, log=log,
                        bad_rows_path=bad_rows_dir / f"global-{time.time_ns()}.jsonl").run(files=files, outputs=outputs)
    seconds = time.perf_counter() - t0
    for shard, file in zip(shards, files):
        if shard.key in targets:
            out = outputs[str(file)]
            results[shard.key] = PartitionResult(shard.key, out, _rows(file), parquet_rows(out),
                                                 seconds=round(seconds, 3), workers=engine_recipe.np)
    ordered = [results[k] for k in targets if k in results]
    return StageRun(ordered, rep, context_partitions=len(shards) - len(ordered))


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
