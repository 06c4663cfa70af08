"""The deduplication barrier: a chain cut at a near-duplicate deduplicator, in three steps.

Near-duplicate clusters (MinHash, SimHash) are connected components: a later row can link two
earlier ones, so no row can be decided before every row's key is known.  A chain
``[OPs before] + deduplicator + [OPs after]`` therefore runs as:

1. :func:`key` -- the OPs before and the deduplicator's key computation, in the workers; the
   rows reaching the deduplicator are written to *rows files* (one per input file; JSON lines or
   Parquet, stats included) and their keys collected, in order, in the index (:class:`KeyedRows`);
2. decide -- the index decides once it has every key (``index.finalize()``; across partitions
   from stored keys: :func:`dj_ops.engine.dedup_store.decide`), giving the removed rows;
3. :func:`finish` -- the OPs after the deduplicator run on the rows files with the removed rows
   skipped, or, when none follow, the kept rows are copied as they are.

The local executor runs a whole chain this way (its rows files are a spill folder); the
partition-wise deduplication of :mod:`dj_ops.engine.dedup_store` runs the same steps one
partition at a time; :func:`joined_report` makes one report of the steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from dj_ops.core.heap import release_free_memory
from dj_ops.core.recipe import Recipe
from dj_ops.ops.base import OP, DedupIndex

from .coordinator import PassResult
from .report import RunReport
from .sinks import copy_kept_lines, copy_kept_row_groups


class Runner(Protocol):
    """What the barrier needs of an executor (:class:`dj_ops.engine.executor.Executor` is one)."""

    recipe: Recipe
    ops: list[OP]

    def run_pass(self, files: list[Path] | None, row_range: tuple[int, int] | None, export_path: str | Path | None,
                 outputs: dict[str, Path] | None, skip: dict[str, np.ndarray] | None, append_bad_rows: bool,
                 hold_back: int | None = None, write_rows: bool = True) -> PassResult: ...

    def run(self, files: list[Path] | None = None, row_range: tuple[int, int] | None = None,
            export_path: str | Path | None = None, outputs: dict[str, Path] | None = None,
            skip: dict[str, np.ndarray] | None = None, append_bad_rows: bool = False) -> RunReport: ...


def head_recipe(recipe: Recipe, cut: int, rows_format: str, keep_stats: bool = True) -> Recipe:
    """The recipe of step 1: the OPs up to the deduplicator at ``cut``, writing rows files in
    ``rows_format`` (``jsonl`` or ``parquet``), with the rows' stats unless ``keep_stats`` is off."""
    return recipe.model_copy(update={"process": recipe.process[:cut + 1], "export_type": rows_format,
                                     "keep_stats_in_res_ds": keep_stats, "export_shard_size": 0})


def rest_recipe(recipe: Recipe, cut: int, **update: Any) -> Recipe:
    """The recipe of step 3: the OPs after the deduplicator (its rows files are read once, so
    they are not checkpointed)."""
    return recipe.model_copy(update={"process": recipe.process[cut + 1:], "use_checkpoint": False, **update})


@dataclass
class KeyedRows:
    """Step 1's result."""

    report: RunReport
    #: the deduplicator's index, holding every key in row order (``add``ed, not decided)
    index: DedupIndex
    #: input file -> its rows file, holding the rows that reached the deduplicator (empty when
    #: the pass wrote none: see :func:`key`)
    rows_files: dict[str, Path]
    #: input file -> the input row ids of its rows file's rows, in order (one key each)
    row_ids: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return sum(len(ids) for ids in self.row_ids.values())

    def stored_keys(self) -> pa.Array:
        """Every key as one Arrow array in row order (for :mod:`dj_ops.engine.dedup_store`)."""
        keys = self.index.stored_keys()
        if len(keys) != self.rows:
            raise RuntimeError(f"{list(self.rows_files)}: {len(keys)} dedup keys for {self.rows} rows")
        return keys

    def removed_masks(self, removed: dict[int, int]) -> dict[str, np.ndarray]:
        """Rows file -> boolean mask of its rows in ``removed`` (input row ids)."""
        gone = np.fromiter(removed.keys(), dtype=np.int64, count=len(removed))
        return {str(self.rows_files[src]): np.isin(ids, gone) for src, ids in self.row_ids.items()}


def key(executor: Runner, files: list[Path], row_range: tuple[int, int] | None, rows_files: dict[str, Path] | None,
        skip: dict[str, np.ndarray] | None = None, append_bad_rows: bool = False) -> KeyedRows:
    """Step 1: one pass of ``executor``, whose recipe ends at the deduplicator (see
    :func:`head_recipe`), over ``files``; the rows reaching it go to ``rows_files``.  With
    ``rows_files`` None no row is written or even sent back by the workers, only the keys and
    the ids of the rows they belong to (when the deduplicator is the first OP, its rows are the
    input's own: ``KeyedRows.row_ids`` says which)."""
    for path in (rows_files or {}).values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    result = executor.run_pass(files, row_range, None, rows_files or None, skip, append_bad_rows,
                               hold_back=len(executor.ops) - 1, write_rows=rows_files is not None)
    assert result.held is not None
    return KeyedRows(result.report, result.held.index, {str(k): Path(v) for k, v in (rows_files or {}).items()},
                     result.held.row_ids)


def finish(executor: Runner, rows_files: list[Path], removed: dict[str, np.ndarray], export_path: Path,
           outputs: dict[str, Path] | None = None, copy: bool = False) -> RunReport:
    """Step 3: ``executor`` (the OPs after the deduplicator, see :func:`rest_recipe`) over the
    rows files, the rows marked in ``removed`` (rows file -> mask) left out, written to
    ``export_path`` or, per rows file, to ``outputs``.  With ``copy`` the rows files already hold
    the rows as the output has them (no OP follows): the kept rows are copied without parsing."""
    if not copy:
        skip = {k: m for k, m in removed.items() if m.any()} or None
        return executor.run(rows_files, None, export_path, outputs, skip, append_bad_rows=True)
    t0 = time.perf_counter()
    recipe = executor.recipe
    if all(Path(p).suffix == ".parquet" for p in rows_files):
        if outputs is not None or len(rows_files) != 1:
            raise ValueError("kept Parquet rows are copied from one rows file to one export")
        rows_file = rows_files[0]
        mask = removed.get(str(rows_file), np.zeros(0, dtype=bool))
        if not len(mask):
            import pyarrow.parquet as pq

            mask = np.zeros(pq.ParquetFile(rows_file).metadata.num_rows, dtype=bool)
        report = copy_kept_row_groups(recipe.project_name, rows_file, mask, export_path, recipe.export_compression)
    else:
        report = copy_kept_lines(recipe.project_name, rows_files, removed, export_path, outputs,
                                 recipe.export_shard_size)
    release_free_memory()  # of the blocks read and written
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def joined_report(head: RunReport, rest: RunReport, cut: int, removed: int) -> RunReport:
    """One report of a chain cut at ``cut``: the steps' OP rows in chain order, the
    deduplicator's ``removed`` rows, the input counted by step 1."""
    report = rest
    dedup_row = {**head.ops[cut], "rows_out": head.ops[cut]["rows_in"] - removed}
    report.ops = head.ops[:cut] + [dedup_row] + rest.ops
    report.rows_in, report.rows_valid = head.rows_in, head.rows_valid
    report.bad_rows += head.bad_rows
    report.bad_rows_file = rest.bad_rows_file or head.bad_rows_file
    report.dedup = {**head.dedup, **rest.dedup}
    return report
