"""Partition storage: one Parquet file per asset partition under a storage root.

Layout: ``<root>/<recipe>/<stage>/<partition key>.parquet``.  The root is a local folder or any
fsspec URI (``s3://bucket/dj``, ``gs://...``, ``memory://...``) through universal-pathlib.

The engine writes a stage's outputs into a local *staging* folder; the IO manager then commits
each file into place.  On a local root the staging folder sits under the root, so the commit is a
rename on one filesystem: atomic, a reader sees the old file or the new one, never a part (the
engine's own writers already write under temporary names).  On an object store the commit is a
single upload (a PUT is atomic there too).  A crashed run leaves at most a staging folder, which
no reader ever looks at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from upath import UPath

from dj_ops.core.heap import frozen_heap
from dj_ops.engine.backend import workers_from_fork_server

from .partitions import partition_order
from .shards import Shard

STAGING = ".staging"


class DJStorage(dg.ConfigurableResource):
    """Where stage partitions live (``root``: a folder or an fsspec URI)."""

    root: str

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[DJStorage]:
        # every step of a recipe uses this storage: while the run (a step, in a process of its
        # own) goes on, the objects the process holds stay out of the collector's full passes, and
        # the engine's workers start from a small fork server rather than from this process
        with frozen_heap(), workers_from_fork_server(), super().yield_for_execution(context) as resource:
            yield resource

    @property
    def base(self) -> UPath:
        return UPath(self.root)

    @property
    def is_local(self) -> bool:
        return self.base.protocol in ("", "file", "local")

    def partition_path(self, asset_key: dg.AssetKey, partition: str) -> UPath:
        return self.base.joinpath(*asset_key.path, f"{partition}.parquet")

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local folder for a step's outputs, removed afterwards."""
        if self.is_local:
            parent = Path(self.base.path) / STAGING
            parent.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix="step-", dir=parent))
        else:
            path = Path(tempfile.mkdtemp(prefix="dj-staging-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self, staged: Path, final: UPath) -> None:
        """Move a finished local file into place atomically."""
        if self.is_local:
            target = Path(final.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staged, target)
            except OSError:  # another filesystem: copy beside the target, then rename
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
                shutil.copyfile(staged, tmp)
                os.replace(tmp, target)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            final.fs.put_file(str(staged), final.path)

    @contextmanager
    def local_files(self, shards: list[Shard]) -> Iterator[list[Path]]:
        """Local paths for the shards' files (remote ones are downloaded for the duration)."""
        if self.is_local:
            yield [Path(UPath(s.path).path) for s in shards]
            return
        with tempfile.TemporaryDirectory(prefix="dj-inputs-") as tmp:
            out = []
            for i, s in enumerate(shards):
                remote = UPath(s.path)
                local = Path(tmp) / f"{i:06d}-{remote.name}"
                remote.fs.get_file(remote.path, str(local))
                out.append(local)
            yield out

    def row_count(self, path: str) -> int | None:
        p = UPath(path)
        if not p.exists():
            return None
        with p.open("rb") as f:
            return pq.ParquetFile(f).metadata.num_rows


class StagedPartitions(dict):
    """A stage's result: partition key -> finished local Parquet file, to be committed."""


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    """Commits staged partition files into the storage and hands downstream steps their paths.

    Inputs are loaded lazily as :class:`Shard` handles (key and path), ordered like the
    partitions, so a stage streams its inputs through the engine instead of holding them in
    memory; whether a file exists is for the consumer to check (a partition may still wait for
    its run).  An unpartitioned consumer (the export) gets every partition.
    """

    storage: DJStorage

    def handle_output(self, context: dg.OutputContext, obj: StagedPartitions) -> None:
        if obj is None:
            return
        if not isinstance(obj, Mapping):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected staged partition files, "
                            f"got {type(obj).__name__}")
        for key, staged in obj.items():
            self.storage.commit(Path(staged), self.storage.partition_path(context.asset_key, key))

    def load_input(self, context: dg.InputContext) -> dict[str, Shard]:
        upstream = context.asset_key
        ordered = partition_order(context.instance, context.asset_partitions_def)
        keys = set(context.asset_partition_keys) if context.has_asset_partitions else set(ordered)
        return {k: Shard(k, str(self.storage.partition_path(upstream, k))) for k in ordered if k in keys}

