"""Deduplication over partitions from stored keys (no orchestrator in here).

A global stage is ``[OPs before] + deduplicator + [OPs after]`` over partitions P1..Pn, in
partition order.  Instead of re-running the engine over every earlier partition, it runs the
deduplication barrier's steps (:mod:`dj_ops.engine.dedup`) one partition at a time:

1. :func:`partition_keys` (the barrier's ``key``) runs the OPs before the deduplicator and its key
   computation on one partition in the engine's workers (MinHash band keys, simhashes, md5
   digests ...); the rows reaching the deduplicator go to a Parquet rows file, their keys come
   back as one Arrow array, which :func:`write_keys` stores beside the partition's output (a
   small Parquet file, written under a temporary name and renamed).  Stored keys carry a
   fingerprint of what produced them (the OPs and their parameters, the input file), so
   :func:`read_keys` never returns stale ones.
2. :func:`decide` feeds one fresh index every partition's keys in partition order, numbering
   rows across partitions, so the first occurrence in partition order survives, as one engine run
   over all the files decides.  Only keys are read (a few bytes to a few hundred per row), one
   partition at a time; a near-duplicate index spills them to disk.
3. :func:`finish_partition` (the barrier's ``finish``) runs the OPs after the deduplicator on a
   partition's rows, its duplicates skipped.

A partition added later is keyed once and decided against the stored keys of the others.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dj_ops.core.batch import Batch
from dj_ops.core.recipe import Recipe
from dj_ops.ops.base import DedupIndex, Deduplicator

from . import dedup
from .executor import Executor, LocalExecutor
from .report import RunReport
from .sinks import copy_kept_row_groups

#: bump when the stored layout or a key's definition changes: older files are recomputed
KEYS_FORMAT = 2
_META_FINGERPRINT = b"dj_dedup_fingerprint"
_META_SOURCE = b"dj_dedup_source"
#: recipe keys that change which field an OP reads, hence its keys
_FIELD_KEYS = ("text_key", "image_key", "audio_key", "video_key", "image_bytes_key")


def dedup_position(recipe: Recipe) -> int | None:
    """Position of the only deduplicator of ``recipe``'s chain when its keys can be stored;
    None when the chain has none, several (each decides on the rows the previous one kept), or
    one whose index cannot store its keys."""
    ops = recipe.build_ops()
    found = [k for k, op in enumerate(ops) if isinstance(op, Deduplicator)]
    if len(found) != 1:
        return None
    index = ops[found[0]].new_index()
    if not (isinstance(index, DedupIndex) and type(index).storable()):
        return None
    return found[0]


def keys_fingerprint(recipe: Recipe, cut: int) -> str:
    """What the keys depend on: the OPs up to the deduplicator, their parameters, the fields read."""
    spec = {"format": KEYS_FORMAT,
            "ops": [[s.name, s.params] for s in recipe.process[:cut + 1]],
            "fields": {k: getattr(recipe, k, None) for k in _FIELD_KEYS}}
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


@dataclass
class StoredKeys:
    keys: pa.Array  # one key per row reaching the deduplicator, in row order
    removed: np.ndarray | None  # the decision its partition's output was written with (None: unknown)


def write_keys(path: Path, keys: pa.Array, fingerprint: str, source: str, removed: np.ndarray | None) -> None:
    """Store a partition's keys and the decision its output was written with, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = pa.array(removed, type=pa.bool_()) if removed is not None else pa.nulls(len(keys), type=pa.bool_())
    table = pa.table({"key": keys, "removed": flags}).replace_schema_metadata(
        {_META_FINGERPRINT: fingerprint.encode(), _META_SOURCE: source.encode()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{time.time_ns()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_keys(source_file, fingerprint: str, source: str) -> StoredKeys | None:
    """Stored keys (a path or an open binary file), or None when they were made by other OPs or
    parameters, from another input, or cannot be read."""
    try:
        pf = pq.ParquetFile(source_file)
        meta = pf.schema_arrow.metadata or {}
        if meta.get(_META_FINGERPRINT) != fingerprint.encode() or meta.get(_META_SOURCE) != source.encode():
            return None
        table = pf.read(columns=["key", "removed"])
    except (OSError, pa.ArrowException, KeyError):
        return None
    flags = table.column("removed")
    removed = None if flags.null_count else flags.to_numpy().astype(bool)
    return StoredKeys(table.column("key").combine_chunks(), removed)


@dataclass
class PartitionKeys:
    """A partition after step 1: its keys and, when kept, its rows reaching the deduplicator."""

    keys: pa.Array
    report: RunReport
    rows_file: Path | None  # Parquet, the rows in the order of ``keys``
    #: ``rows_file`` is the partition's input itself (every row reached the deduplicator)
    rows_file_is_input: bool = False

    def discard_rows(self) -> None:
        if self.rows_file is not None and not self.rows_file_is_input:
            self.rows_file.unlink(missing_ok=True)


def partition_keys(recipe: Recipe, cut: int, file: Path, row_range: tuple[int, int] | None, rows_file: Path,
                   bad_rows_path: Path, log: Callable[[str], None], keep_rows: bool = True) -> PartitionKeys:
    """Step 1 for one partition: the OPs before the deduplicator and its keys, in ``recipe.np``
    workers.  The rows reaching it are written to ``rows_file`` (removed unless ``keep_rows``)."""
    light = _light_text_keys(recipe, cut, file, row_range)
    if light is not None:
        return light
    executor = LocalExecutor(dedup.head_recipe(recipe, cut, "parquet"), progress=False, log=log,
                             bad_rows_path=bad_rows_path)
    if cut == 0 and row_range is None and file.suffix == ".parquet":
        return _keyed_in_place(executor, file, rows_file, keep_rows)
    part = keyed_partition(executor, file, row_range, rows_file)
    if not keep_rows:
        part.discard_rows()
        part.rows_file = None
    return part


def keyed_partition(executor: Executor, file: Path, row_range: tuple[int, int] | None, rows_file: Path
                    ) -> PartitionKeys:
    """Step 1 by ``executor``, whose recipe ends at the deduplicator, over one partition: the rows
    reaching the deduplicator go to ``rows_file``, their keys (computed in the workers) are
    returned with them."""
    keyed = dedup.key(executor, [file], row_range, {str(file): rows_file})
    return PartitionKeys(keyed.stored_keys(), keyed.report, rows_file)


def _keyed_in_place(executor: Executor, file: Path, rows_file: Path, keep_rows: bool) -> PartitionKeys:
    """Step 1 when the deduplicator is the first OP of a Parquet partition: the workers compute
    the keys and send no row back, the partition file is the rows file (a copy without the rows
    set aside as bad input when there are any)."""
    keyed = dedup.key(executor, [file], None, None)
    ids = keyed.row_ids.get(str(file), np.zeros(0, dtype=np.int64))
    n = pq.ParquetFile(file).metadata.num_rows
    part = PartitionKeys(keyed.stored_keys(), keyed.report, file, rows_file_is_input=True)
    if len(ids) < n and keep_rows:  # the row ids of one file read whole are its row positions
        missing = ~np.isin(np.arange(n, dtype=np.int64), ids)
        copy_kept_row_groups(executor.recipe.project_name, file, missing, rows_file, executor.recipe.export_compression)
        part.rows_file, part.rows_file_is_input = rows_file, False
    elif not keep_rows:
        part.rows_file = None
    return part


def stored_partition_keys(recipe: Recipe, file: Path, stored: StoredKeys) -> PartitionKeys | None:
    """Step 1 from keys stored for a Parquet partition whose every row reaches the chain's first
    OP, its deduplicator (e.g. keys its upstream stage computed): no pass over the rows.  None
    when they do not cover the file's rows."""
    if file.suffix != ".parquet" or pq.ParquetFile(file).metadata.num_rows != len(stored.keys):
        return None
    return PartitionKeys(stored.keys, _keys_report(recipe, len(stored.keys), 0.0), file, rows_file_is_input=True)


def _keys_report(recipe: Recipe, n: int, seconds: float) -> RunReport:
    """The report of a step 1 that only keyed the ``n`` rows of a partition file."""
    op = recipe.build_ops()[0]
    return RunReport(recipe=recipe.project_name, rows_in=n, rows_valid=n, rows_out=n, seconds=round(seconds, 3),
                     ops=[{"name": op.name, "kind": "deduplicator", "rows_in": n, "rows_out": n, "changed": 0,
                           "errors": 0, "cpu_seconds": round(seconds, 3)}])


def _light_text_keys(recipe: Recipe, cut: int, file: Path, row_range: tuple[int, int] | None
                     ) -> PartitionKeys | None:
    """Step 1 without the engine when the deduplicator comes first and its keys are a cheap
    function of the text (e.g. md5): the text column of a Parquet partition whose every row has
    a string text is read alone and keyed here, and the partition file itself is the rows file.
    None when that does not hold (the engine then runs, setting bad rows aside)."""
    if cut != 0 or row_range is not None or file.suffix != ".parquet":
        return None
    op = recipe.build_ops()[0]
    if not (isinstance(op, Deduplicator) and op.light_text_keys):
        return None
    t0 = time.perf_counter()
    schema = pq.read_schema(file)
    if op.text_key not in schema.names or not pa.types.is_string(schema.field(op.text_key).type):
        return None
    column = pq.ParquetFile(file).read(columns=[op.text_key]).column(op.text_key)
    if column.null_count:
        return None
    n = len(column)
    index = op.new_index()
    ids = np.arange(n, dtype=np.int64)
    index.add(ids, op.compute_hash(Batch({op.text_key: column.to_pylist()}, ids)))
    keys = index.stored_keys()
    return PartitionKeys(keys, _keys_report(recipe, n, time.perf_counter() - t0), file, rows_file_is_input=True)


@dataclass
class Decision:
    """Step 2: which rows of each partition are duplicates of an earlier row."""

    removed: list[np.ndarray]  # per partition (input order), a boolean mask over its keyed rows
    summary: dict  # the index's summary; pair row ids are global (partition offsets + row)
    offsets: list[int]  # global id of each partition's first keyed row

    def locate(self, row_id: int) -> tuple[int, int]:
        """(partition position, row within the partition's keyed rows) of a global row id."""
        part = int(np.searchsorted(self.offsets, row_id, side="right")) - 1
        return part, row_id - self.offsets[part]


def decide(op: Deduplicator, parts: Iterable[pa.Array], sample_pairs: int = 0) -> Decision:
    """Every partition's keys through one index, in order: the first occurrence survives.

    ``parts`` is consumed one partition at a time (it may load them lazily); the summary samples
    at least ``sample_pairs`` duplicate pairs (e.g. as many as are traced)."""
    index = op.new_index()
    index.sample_size = max(index.sample_size, sample_pairs)
    sizes, offsets, removed, n = [], [], [], 0
    for keys in parts:
        values = index.keys_from_stored(keys)
        ids = np.arange(n, n + len(keys), dtype=np.int64)
        offsets.append(n)
        sizes.append(len(keys))
        if index.streaming:
            dup_of = index.check(ids.tolist(), values)
            removed.append(np.fromiter((d is not None for d in dup_of), dtype=bool, count=len(keys)))
        else:
            index.add(ids, values)
        n += len(keys)
    if not index.streaming:
        gone = np.fromiter(index.finalize().keys(), dtype=np.int64)
        mask = np.zeros(n, dtype=bool)
        mask[gone] = True
        removed = np.split(mask, np.cumsum(sizes)[:-1]) if sizes else []
    summary = {"rows": n, **index.summary()}
    return Decision(removed, summary, offsets)


def finish_partition(recipe: Recipe, cut: int, head: PartitionKeys, removed: np.ndarray, export_path: Path,
                     bad_rows_path: Path, log: Callable[[str], None]) -> RunReport:
    """Step 3: the OPs after the deduplicator on the partition's kept rows, written to
    ``export_path`` (Parquet); the report covers the whole chain on this partition."""
    rows_file = head.rows_file
    if rows_file is None:
        raise ValueError("finish_partition needs the partition's rows (partition_keys with keep_rows)")
    rest = dedup.rest_recipe(recipe, cut, export_type="parquet", keep_stats_in_res_ds=True, export_shard_size=0)
    executor = LocalExecutor(rest, progress=False, log=log, bad_rows_path=bad_rows_path)
    report = dedup.finish(executor, [rows_file], {str(rows_file): removed}, export_path, copy=not rest.process)
    seconds = head.report.seconds + report.seconds
    report = dedup.joined_report(head.report, report, cut, int(removed.sum()))
    report.seconds = round(seconds, 3)
    return report
