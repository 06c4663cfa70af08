"""Where a run writes: outputs and stats files, bad rows, traces, and copies of kept rows.

Every output is written under a temporary name and renamed into place when the run completes
(:mod:`dj_ops.io.writers`); an aborted run leaves none behind.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dj_ops.core.recipe import Recipe
from dj_ops.io.writers import JsonlWriter, ParquetWriter, stats_path_for
from dj_ops.ops.base import OP

from .chain import ChunkResult
from .report import RunReport, kind_of


class Outputs:
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


class BadRowSink:
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


class TraceCollector:
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
            prefix = kind_of(op).replace("deduplicator", "duplicate")
            # an OP used twice in one chain gets its position in the name so traces don't collide
            suffix = f"-{k}" if names[op.name] > 1 else ""
            path = self.dir / f"{prefix}-{op.name}{suffix}.jsonl"
            with open(path, "wb") as fh:
                for r in self.records[k]:
                    fh.write(orjson.dumps(r, default=str) + b"\n")
        return str(self.dir)


def write_duplicate_pairs(work_dir: Path, op_name: str, records: list[dict]) -> str:
    """``<work_dir>/trace/duplicate-<op>.jsonl``: Data-Juicer's ``dup1`` / ``dup2`` records."""
    trace_dir = work_dir / "trace"
    trace_dir.mkdir(parents=True, exist_ok=True)
    with open(trace_dir / f"duplicate-{op_name}.jsonl", "wb") as fh:
        for record in records:
            fh.write(orjson.dumps(record, default=str) + b"\n")
    return str(trace_dir)


# ---------------------------------------------------------------------------------------------
# Kept rows of a rows file, copied without running anything


def kept_runs(drop: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """[start, stop) runs of the ``n`` rows not marked in ``drop`` (which may be shorter)."""
    keep = np.ones(n, dtype=bool)
    if drop is not None and len(drop):
        keep[:len(drop)] = ~np.asarray(drop[:n], dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def copy_kept_lines(name: str, rows_files: list[Path], removed: dict[str, np.ndarray], export_path: Path,
                    outputs: dict[str, Path] | None, shard_size: int) -> RunReport:
    """The JSON lines of ``rows_files`` not marked in ``removed`` (rows file -> mask), copied in
    blocks without parsing them (a write per run of kept lines), to ``export_path`` or, per rows
    file, ``outputs``."""
    report = RunReport(recipe=name)
    writers: dict[Path, JsonlWriter] = {}
    # blocks end at the shard size too, so shards roll over as when writing chunk by chunk
    block_bytes = min(shard_size or (16 << 20), 16 << 20)
    try:
        for src in rows_files:
            target = Path(outputs[str(src)]) if outputs else export_path
            if target not in writers:
                writers[target] = JsonlWriter(target, shard_size)
            writer = writers[target]
            drop_all = removed.get(str(src))
            first = 0  # line number of the block's first line
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
                    drop = drop_all[first:first + n] if drop_all is not None else None
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


def copy_kept_row_groups(name: str, rows_file: Path, removed: np.ndarray, export_path: Path,
                         compression: str) -> RunReport:
    """The rows of a Parquet ``rows_file`` not marked in ``removed``, written atomically to
    ``export_path``.  One row group at a time; kept rows are zero-copy slices (runs between
    removed rows)."""
    source = pq.ParquetFile(rows_file)
    if len(removed) != source.metadata.num_rows:
        raise RuntimeError(f"{rows_file}: {source.metadata.num_rows} rows for {len(removed)} dedup decisions")
    writer = ParquetWriter(export_path, compression=compression)
    rows_out = start = 0
    try:
        for i in range(source.num_row_groups):
            group = source.read_row_group(i)
            drop = removed[start:start + group.num_rows]
            start += group.num_rows
            runs = kept_runs(drop, group.num_rows)
            if runs != [(0, group.num_rows)]:
                group = pa.concat_tables([group.slice(a, b - a) for a, b in runs]) if runs else group.slice(0, 0)
            if group.num_rows:
                writer.write_table(group)
                rows_out += group.num_rows
        if not rows_out:
            writer.write_table(source.schema_arrow.empty_table())
    except BaseException:
        writer.abort()
        raise
    n = source.metadata.num_rows
    return RunReport(recipe=name, rows_in=n, rows_valid=n, rows_out=rows_out,
                     outputs=[str(p) for p in writer.close()])


def spilled_rows(rows_files: dict[str, Path], row_ids: dict[str, np.ndarray], wanted: set[int]) -> dict[int, Any]:
    """Rows ``wanted`` (input row ids) read back from JSON-lines rows files, by row id."""
    found: dict[int, Any] = {}
    for src, ids in row_ids.items():
        positions = {int(p): int(ids[p]) for p in np.flatnonzero(np.isin(ids, list(wanted)))}
        if not positions:
            continue
        with open(rows_files[src], "rb") as fh:
            for pos, line in enumerate(fh):
                if pos in positions:
                    found[positions[pos]] = orjson.loads(line)
    return found
