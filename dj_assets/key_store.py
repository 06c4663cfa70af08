"""Where a global (deduplication) stage keeps each partition's keys, beside its partition files."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from upath import UPath

from dj_ops.engine import dedup_store

from .shards import Shard
from .stage_runner import safe_name
from .storage import DJStorage


class PartitionKeyStore:
    """A global stage's deduplication keys, one small Parquet file per partition beside the
    partition files: ``<root>/<recipe>/<stage>/_dedup_keys/<partition>.parquet``.  Stored keys
    name the input they were computed from (path, row range, size, modification time), so keys of
    a partition whose upstream changed are never read."""

    def __init__(self, storage: DJStorage, asset_key: dg.AssetKey, shards: list[Shard]):
        self.storage = storage
        self.folder = storage.base.joinpath(*asset_key.path, "_dedup_keys")
        self.shards = {s.key: s for s in shards}

    def path(self, partition: str) -> UPath:
        return self.folder / f"{partition}.parquet"

    def source(self, partition: str) -> str | None:
        shard = self.shards.get(partition)
        if shard is None:
            return None
        return self.source_of(shard.path, shard.row_range, UPath(shard.path))

    @staticmethod
    def source_of(path: str, row_range, file: UPath) -> str | None:
        """What the keys of ``path`` (and ``row_range``) are valid for: its size and time, read
        from ``file`` (the file itself, or a staged copy to be moved there)."""
        try:
            info = file.fs.info(file.path)
        except FileNotFoundError:
            return None
        stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "created", "ETag") if info.get(k)), "")
        return f"{path}|{row_range}|{info.get('size')}|{stamp}"

    def load(self, partition: str, fingerprint: str):
        source, path = self.source(partition), self.path(partition)
        if source is None or not path.exists():
            return None
        with path.open("rb") as f:
            return dedup_store.read_keys(f, fingerprint, source)

    def save(self, partition: str, fingerprint: str, keys, removed, staging: Path, source: str | None = None) -> None:
        source = source or self.source(partition)
        if source is None:
            return
        staged = staging / "_dedup_keys" / f"{safe_name(partition)}.parquet"
        dedup_store.write_keys(staged, keys, fingerprint, source, removed)
        self.storage.commit(staged, self.path(partition))
