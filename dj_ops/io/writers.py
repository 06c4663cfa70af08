"""Exporters: jsonl / json (JSON lines) and parquet, optionally sharded, written atomically.

Every file is written under a temporary name and renamed into place only when the run
completes, so a crashed run never leaves a partial file that a later step could read.
Sharding follows Data-Juicer: ``export_shard_size`` bytes per shard, files named
``<base>-<i>-of-<N>.<ext>`` with zero-padded, 0-based indices.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _split_ext(path: Path) -> tuple[str, str]:
    name = path.name
    for ext in (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(ext):
            return name[: -len(ext)], ext
    return path.stem, path.suffix


class _ShardedFiles:
    """Rolls over to a new temporary shard after ``shard_size`` bytes; names are fixed at close."""

    def __init__(self, path: Path, shard_size: int):
        self.path = path
        self.shard_size = shard_size
        self.tmp_paths: list[Path] = []
        self.bytes_in_current = 0

    def new_tmp(self) -> Path:
        tmp = self.path.with_name(f".{self.path.name}.part{len(self.tmp_paths)}.tmp-{os.getpid()}")
        self.tmp_paths.append(tmp)
        self.bytes_in_current = 0
        return tmp

    def renew_current(self) -> Path:
        """A new temporary name for the current shard, whose content is being rewritten."""
        old = self.tmp_paths[-1]
        self.tmp_paths[-1] = old.with_name(old.name + "w")
        return self.tmp_paths[-1]

    def needs_rollover(self) -> bool:
        return self.shard_size > 0 and self.bytes_in_current >= self.shard_size

    def finalize(self) -> list[Path]:
        n = len(self.tmp_paths)
        if n <= 1 or self.shard_size <= 0:
            targets = [self.path]
        else:
            base, ext = _split_ext(self.path)
            width = len(str(n)) + 1
            targets = [self.path.with_name(f"{base}-{i:0{width}d}-of-{n:0{width}d}{ext}") for i in range(n)]
        for tmp, target in zip(self.tmp_paths, targets):
            os.replace(tmp, target)
        return targets

    def abort(self) -> None:
        for tmp in self.tmp_paths:
            tmp.unlink(missing_ok=True)


class JsonlWriter:
    """Writes pre-serialised JSON lines (bytes without newline)."""

    def __init__(self, path: str | Path, shard_size: int = 0):
        self.files = _ShardedFiles(Path(path), shard_size)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fh = None
        self.rows = 0

    def write_lines(self, lines: list[bytes]) -> None:
        if not lines:
            if self.fh is None:
                self.fh = open(self.files.new_tmp(), "wb")
            return
        self.write_raw(b"\n".join(lines) + b"\n", len(lines))

    def write_raw(self, data: bytes | memoryview, rows: int) -> None:
        """``rows`` lines already serialised, each ending with a newline."""
        if self.fh is None or self.files.needs_rollover():
            if self.fh is not None:
                self.fh.close()
            self.fh = open(self.files.new_tmp(), "wb")
        self.fh.write(data)
        self.files.bytes_in_current += len(data)
        self.rows += rows

    def close(self) -> list[Path]:
        if self.fh is None:
            self.fh = open(self.files.new_tmp(), "wb")
        self.fh.close()
        return self.files.finalize()

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.files.abort()


class ParquetWriter:
    """Writes Arrow tables, one schema per file.

    A batch with new columns or wider types (a column that was all null so far, ints becoming
    floats) widens the file: what was written so far is rewritten in the unified schema, so no
    row is ever lost and every reader sees one schema.
    """

    def __init__(self, path: str | Path, shard_size: int = 0, compression: str = "snappy"):
        self.files = _ShardedFiles(Path(path), shard_size)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write_table(self, table: pa.Table) -> None:
        if self.writer is None or self.files.needs_rollover():
            self._open(table.schema)
        elif table.schema != self.schema:
            table = self._conform(table)
        self.writer.write_table(table)
        self.files.bytes_in_current += table.nbytes
        self.rows += table.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        try:
            merged = _promote(self.schema, table)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"{self.files.path}: a column changes type between batches ({exc}); "
                             "parquet holds one type per column: export as jsonl instead") from None
        if merged.schema != self.schema:
            self._widen(merged.schema)
        return merged

    def _widen(self, schema: pa.Schema) -> None:
        self.writer.close()
        old = self.files.tmp_paths[-1]
        self.writer = pq.ParquetWriter(self.files.renew_current(), schema, compression=self.compression)
        for batch in pq.ParquetFile(old).iter_batches():
            self.writer.write_table(_promote(schema, pa.Table.from_batches([batch])))
        old.unlink()
        self.schema = schema

    def _open(self, schema: pa.Schema) -> None:
        if self.writer is not None:
            self.writer.close()
        self.schema = schema
        self.writer = pq.ParquetWriter(self.files.new_tmp(), schema, compression=self.compression)

    def close(self) -> list[Path]:
        if self.writer is None:
            self._open(pa.schema([]))
        self.writer.close()
        return self.files.finalize()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.files.abort()


def _promote(schema: pa.Schema, table: pa.Table) -> pa.Table:
    """``table`` in ``schema``'s column order, missing columns null, types widened where needed."""
    return pa.concat_tables([schema.empty_table(), table], promote_options="permissive")


def stats_path_for(export_path: str | Path) -> Path:
    """Data-Juicer's stats file: ``<export path without extension>_stats.jsonl``."""
    p = Path(export_path)
    base, _ = _split_ext(p)
    return p.with_name(f"{base}_stats.jsonl")
