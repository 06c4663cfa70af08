"""What every recipe of a code location shares, defined once for the location: the partition
storage and its IO manager, the GPU claim, the run queue, and the in-process executor (one
process runs every step of a run: the engine parallelises inside each step, in worker processes
of its own).  ``dj_assets/defs/resources.py`` declares them for this repository's location;
another project using the recipe components declares them the same way."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from .gpu import GpuClaim
from .run_queue import RunQueue
from .storage import DJStorage, PartitionedParquetIOManager

STORAGE_KEY = "dj_storage"
IO_MANAGER_KEY = "dj_parquet_io"
GPU_KEY = "gpu"
RUN_QUEUE_KEY = "dj_run_queue"


def default_storage_root(project_root: Path) -> str:
    """``$DJ_STORAGE_ROOT`` (a folder or an fsspec URI), else ``<project_root>/outputs/dagster_storage``."""
    return os.environ.get("DJ_STORAGE_ROOT") or str(project_root / "outputs" / "dagster_storage")


def location_resources(storage_root: str, gpu_lock_dir: str | None = None) -> dg.Definitions:
    """The shared resources and the executor; GPU lock files under ``gpu_lock_dir`` (default:
    ``$DAGSTER_HOME/gpu_locks``, else the system's temporary folder)."""
    storage = DJStorage(root=storage_root)
    home = os.environ.get("DAGSTER_HOME")
    lock_dir = gpu_lock_dir or (str(Path(home) / "gpu_locks") if home else "")
    return dg.Definitions(
        resources={STORAGE_KEY: storage, IO_MANAGER_KEY: PartitionedParquetIOManager(storage=storage),
                   GPU_KEY: GpuClaim(lock_dir=lock_dir), RUN_QUEUE_KEY: RunQueue()},
        executor=dg.in_process_executor,
    )
