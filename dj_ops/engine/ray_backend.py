"""Ray backend (``executor_type: ray``): the chain run through Ray Data.

The per-row part of the chain is a Ray Data pipeline: a datasource with one read task per input
file slices it into the local executor's chunks (same chunk numbers, row ids and line numbers,
so bad rows, checkpoints and deduplication decisions are the same), and ``map_batches`` runs
the chain on every chunk in an actor pool of ``np`` actors, each holding the built OPs (models
are loaded once per actor).  A chain with CUDA OPs asks each actor for the GPU share its models
are measured to need (see :func:`gpu_fraction`).  Ray Data's streaming executor bounds what is
in flight (an object store budget of the local executor's in-flight chunks, see
:func:`_data_options`; a slow consumer holds reading back) and, with ``preserve_order``,
delivers the results in input order.

What needs to see every row in order stays on the driver and is the coordinator's code:
deduplicators decide on the keys the actors computed (the first occurrence in input order
survives; near duplicates cut the chain, so global deduplication is exact), outputs are written
atomically and checkpoints are recorded by the actors as chunks finish, so the output is the
local executor's, row for row.  The input, the export and media must be on storage every node
can read (as for Data-Juicer's Ray mode).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import ray
from ray.data import DataContext, Datasource
from ray.data.block import BlockMetadata
from ray.data.datasource import ReadTask

from dj_ops.core.faults import worker_crashed
from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import CHUNK_MAX_BYTES, Chunk, file_starts

from .backend import ChainJob
from .chain import ChainRunner, ChunkResult
from .checkpoint import ChunkStore
from .source import ChunkSource


class RayBackend:
    """Ray Data actors: ``np`` of them (at most the cluster's CPUs), each holding the chain."""

    def results(self, source: ChunkSource, job: ChainJob, store: ChunkStore | None,
                log: Callable[[str], None]) -> Iterator[ChunkResult]:
        recipe = job.recipe
        connect(recipe)
        if source.first() is None:
            return
        n_workers = max(1, min(recipe.np, int(ray.cluster_resources().get("CPU", 1))))
        with _data_options(DataContext.get_current(), n_workers):
            ds = ray.data.read_datasource(
                _ChunkDatasource(source), override_num_blocks=len(source.files),
                # reading only slices raw lines / record batches: like the local coordinator, it
                # takes no CPU slot from the chain's actors
                num_cpus=0)
            ds = ds.map_batches(
                _ChainActor, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=n_workers),
                fn_constructor_args=(recipe.model_dump_json(), job.output, job.plan, store, n_workers),
                **_actor_options(job.ops, log))
            try:
                for batch in ds.iter_batches(batch_size=1, batch_format="pyarrow", prefetch_batches=1):
                    for blob in batch.column("result").to_pylist():
                        yield pickle.loads(blob)
            except ray.exceptions.RayActorError as exc:
                raise worker_crashed("a chunk on a Ray actor", store.directory if store else None) from exc


@contextlib.contextmanager
def _data_options(ctx: DataContext, n_workers: int):
    """Ray Data delivers results in input order (the coordinator decides duplicates in that
    order), holds at most the local executor's ``2 * workers + 2`` chunks of the largest size,
    in and out, in the object store (beyond it, reading waits: back-pressure), and prints no
    progress bars; the caller's settings are restored afterwards."""
    opts = ctx.execution_options
    saved = (opts.preserve_order, opts.resource_limits, ctx.target_max_block_size, ctx.enable_progress_bars)
    opts.preserve_order = True
    opts.resource_limits = opts.resource_limits.copy(object_store_memory=2 * (2 * n_workers + 2) * CHUNK_MAX_BYTES)
    # one chunk per block: by default Ray Data packs a task's rows into blocks of up to 128 MiB,
    # i.e. about a hundred chunks per block, queued as a whole
    ctx.target_max_block_size = 1 << 20
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        opts.preserve_order, opts.resource_limits, ctx.target_max_block_size, ctx.enable_progress_bars = saved


#: object store of a local cluster started here: the object store allocator keeps every page it
#: ever touched resident, so its default (30% of RAM) shows as memory growing with the input
LOCAL_OBJECT_STORE_BYTES = 1 << 30


def connect(recipe: Recipe) -> None:
    if not ray.is_initialized():
        address = recipe.ray_address
        local = dict(num_cpus=recipe.np, object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                     log_to_driver=False)
        if address in ("", "local"):
            ray.init(**local)
        elif address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:
                ray.init(**local)
        else:
            ray.init(address=address, log_to_driver=False)


class _ChunkDatasource(Datasource):
    """A Ray Data datasource over a :class:`ChunkSource`: one read task per file, each yielding
    that file's chunks (one pickled :class:`Chunk` per row) numbered as in a sequential read."""

    def __init__(self, source: ChunkSource):
        super().__init__()
        self.source = source

    def estimate_inmemory_data_size(self) -> int:
        return sum(os.path.getsize(f) for f in self.source.files)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list:
        source = self.source
        starts = file_starts(source.files, source.chunk_rows, source.row_range, source.max_record_bytes)
        tasks = []
        for path, start in zip(source.files, starts):
            def read(path: Path = path, start: tuple[int, int] = start) -> Iterator[pa.Table]:
                for chunk in source.read([path], start):
                    yield pa.table({"index": [chunk.index], "chunk": pa.array([pickle.dumps(chunk)], pa.large_binary())})

            meta = BlockMetadata(num_rows=None, size_bytes=os.path.getsize(path), input_files=[str(path)],
                                 exec_stats=None)
            tasks.append(ReadTask(read, meta))
        return tasks


class _ChainActor:
    """A Ray Data actor holding one :class:`ChainRunner` (the built OPs and their models).  A
    chunk recorded by an earlier, interrupted run is replayed from the checkpoint."""

    def __init__(self, recipe_json: str, output: str, plan: dict | None, record: ChunkStore | None,
                 n_workers: int):
        # model OPs size their thread pools (torch, image decoding) by the number of workers
        os.environ["DJ_OPS_WORKERS"] = str(n_workers)
        self.runner = ChainRunner(Recipe.model_validate_json(recipe_json), output=output, plan=plan)
        self.record = record

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for blob in batch.column("chunk").to_pylist():
            chunk: Chunk = pickle.loads(blob)
            res = self.record.load(chunk) if self.record is not None else None
            if res is None:
                res = self.runner.run(chunk)
                if self.record is not None:
                    self.record(res)
            out.append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        return pa.table({"result": pa.array(out, pa.large_binary())})


def _actor_options(ops: list, log) -> dict[str, Any]:
    gpu_ops = [op for op in ops if op.accelerator == "cuda"]
    opts: dict[str, Any] = {"num_cpus": 1}
    if gpu_ops and ray.cluster_resources().get("GPU", 0) > 0:
        opts["num_gpus"] = gpu_fraction(gpu_ops, log)
    return opts


def gpu_fraction(gpu_ops: list, log=lambda msg: None) -> float:
    """GPU share of one actor: the largest declared ``gpu_required``; else the memory its model
    OPs are measured to need (on this driver's GPU, :func:`measure_worker_bytes`; ``mem_required``
    is a floor) over one GPU's memory; a whole GPU when neither can be known."""
    declared = [op.gpu_required for op in gpu_ops if op.gpu_required]
    if declared:
        return min(1.0, max(declared))
    from .placement import measure_worker_bytes, parse_bytes

    per_gpu = _gpu_memory_bytes()
    need = sum(parse_bytes(op.mem_required) for op in gpu_ops)
    if per_gpu:
        need = max(need, measure_worker_bytes(gpu_ops))
    if not need or not per_gpu:
        return 1.0
    share = min(1.0, round(need / per_gpu + 0.005, 2))
    log(f"Ray: each actor asks for {share} GPU ({need / 2**30:.2f} GiB of {per_gpu / 2**30:.1f} GiB)")
    return share


def _gpu_memory_bytes() -> int:
    try:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
    except ImportError:
        return 0
