"""Backends: where chunks are run through the chain.  One small interface, two implementations.

A backend turns a :class:`~dj_ops.engine.source.ChunkSource` into :class:`ChunkResult` objects
**in input order** (the coordinator decides duplicates in that order), running the chain described
by a :class:`ChainJob`; with a checkpoint store, recorded chunks are replayed instead of rerun and
new results are recorded.  :class:`LocalBackend` runs worker processes on this machine;
:class:`dj_ops.engine.ray_backend.RayBackend` runs Ray actors.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import multiprocessing as mp
import os
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import pyarrow as pa

from dj_ops.core.faults import die_with_parent, worker_crashed
from dj_ops.core.heap import frozen_heap
from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import Chunk
from dj_ops.ops.base import OP

from . import checkpoint
from .chain import ChainRunner, ChunkResult
from .planning import device_of
from .source import ChunkSource


@dataclass
class ChainJob:
    """What every worker builds its chain from."""

    recipe: Recipe
    #: what each chunk's result carries (:data:`dj_ops.engine.chain.OUTPUTS`)
    output: str
    #: the plan as a dict (:meth:`Plan.to_dict`): how the chain's steps run
    plan: dict
    #: the coordinator's built OPs (with the models the fusion probe loaded): workers running in
    #: this process, or forked from it, use them instead of building their own
    ops: list[OP]


class Backend(Protocol):
    def results(self, source: ChunkSource, job: ChainJob, store: checkpoint.ChunkStore | None,
                log: Callable[[str], None]) -> Iterator[ChunkResult]:
        """Every chunk of ``source`` through the chain, results in input order."""


class LocalBackend:
    """Worker processes on this machine: ``np`` of them (capped at the CPU count; with CUDA OPs,
    as many as the GPUs hold), or the chain in this process when there is one.  At most
    ``2 * np + 2`` chunks are in flight, so memory stays flat whatever the input size."""

    def results(self, source: ChunkSource, job: ChainJob, store: checkpoint.ChunkStore | None,
                log: Callable[[str], None]) -> Iterator[ChunkResult]:
        chunks: Iterator[Chunk | ChunkResult] = checkpoint.replay(source, store) if store is not None else iter(source)
        n_workers = max(1, min(job.recipe.np, os.cpu_count() or 1))
        # an OP asking for CUDA on a machine without a GPU runs on the CPU like any other
        uses_cuda = any(device_of(op).startswith("cuda") for op in job.ops)
        try:
            if uses_cuda:
                from .placement import gpu_workers

                n_workers = gpu_workers(job.ops, n_workers, log=log)
            if n_workers == 1:
                yield from _inline(chunks, job, store)
            else:
                yield from _pooled(chunks, job, store, n_workers, uses_cuda)
        finally:
            release_models()


def _inline(chunks: Iterator[Chunk | ChunkResult], job: ChainJob, store: checkpoint.ChunkStore | None
            ) -> Iterator[ChunkResult]:
    # models the fusion probe loaded in this process are used as they are
    runner = ChainRunner(job.recipe, output=job.output, plan=job.plan, ops=job.ops)
    for c in chunks:
        if isinstance(c, Chunk):
            c = runner.run(c)
            if store is not None:
                store(c)
        yield c


def _pooled(chunks: Iterator[Chunk | ChunkResult], job: ChainJob, store: checkpoint.ChunkStore | None,
            n_workers: int, uses_cuda: bool) -> Iterator[ChunkResult]:
    method = start_method(uses_cuda, n_workers, job.ops)
    if method != "fork":
        release_models()  # a worker started afresh loads its own (on its GPU)
    ctx = mp.get_context(method)
    if method == "forkserver":
        _start_fork_server()  # no-op when workers_from_fork_server started it
    if method == "fork":
        # pyarrow imports pandas (slow) on its first conversion of Python objects, to tell
        # pandas types apart: done once here, the workers inherit it instead of each paying it
        pa.array([0])
    # the coordinator's objects (imports, models, an orchestrator's) stay out of the workers'
    # garbage collections, which would otherwise touch (and so copy) every page they live on
    with frozen_heap() if method == "fork" else contextlib.nullcontext():
        yield from _pool_results(chunks, job, store, ctx, n_workers)


_FORK_SERVER_DEPTH = 0


@contextlib.contextmanager
def workers_from_fork_server() -> Iterator[None]:
    """Inside this block worker pools start their workers from a fork server that holds only the
    engine (started now, in the background), instead of forking this process: for a process holding
    much memory its workers do not need (an orchestrator's step process), which every forked
    worker would map and, as it touches objects, copy.  Workers are still forked from this
    process when they need what it holds: models the fusion probe loaded here, or OP classes that
    cannot be imported by name (defined at run time)."""
    global _FORK_SERVER_DEPTH
    _FORK_SERVER_DEPTH += 1
    if sys.platform == "linux":
        # the server starts (a new interpreter importing the engine) while the caller prepares
        threading.Thread(target=_start_fork_server, name="dj-fork-server", daemon=True).start()
    try:
        yield
    finally:
        _FORK_SERVER_DEPTH -= 1


def _start_fork_server() -> None:
    """Start this process's fork server (once), holding the engine; each worker then imports the
    modules of its chain's OPs (one module per OP), nothing it does not run."""
    from multiprocessing import forkserver

    forkserver.set_forkserver_preload(["dj_ops.engine.backend"])
    forkserver.ensure_running()


def start_method(uses_cuda: bool, n_workers: int, ops: list[OP]) -> str:
    """How worker processes start: ``fork`` shares what this process holds (the fusion probe's
    models, copy-on-write) and costs nothing; ``forkserver`` inside
    :func:`workers_from_fork_server`; ``spawn`` where forking is unsafe (CUDA, OpenMP, not Linux)."""
    if uses_cuda or sys.platform != "linux" or not fork_safe(n_workers):
        return "spawn"
    runtime = sys.modules.get("dj_ops.models.runtime")
    models_here = runtime is not None and bool(runtime.loaded_models())
    if _FORK_SERVER_DEPTH and not models_here and all(_importable(type(op)) for op in ops):
        return "forkserver"
    return "fork"


def _importable(cls: type) -> bool:
    """Whether a fresh process finds ``cls`` by importing its module (so it registers there too)."""
    module = sys.modules.get(cls.__module__)
    return module is not None and cls.__module__ != "__main__" and getattr(module, cls.__qualname__, None) is cls


def _pool_results(chunks: Iterator[Chunk | ChunkResult], job: ChainJob, store: checkpoint.ChunkStore | None, ctx,
                  n_workers: int) -> Iterator[ChunkResult]:
    max_inflight = 2 * n_workers + 2
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(job.recipe.model_dump_json(), job.output, job.plan, n_workers,
                                       sorted({type(op).__module__ for op in job.ops}))) as pool:
        pending: collections.deque[tuple[Future, Chunk | ChunkResult]] = collections.deque()
        head: Chunk | ChunkResult | None = None
        try:
            for c in chunks:
                if isinstance(c, Chunk):
                    pending.append((pool.submit(_run_chunk, c, store), c))
                else:
                    done: Future = Future()
                    done.set_result(c)
                    pending.append((done, c))
                if len(pending) >= max_inflight:
                    head = pending[0][1]
                    yield pending.popleft()[0].result()
            while pending:
                head = pending[0][1]
                yield pending.popleft()[0].result()
        except BrokenProcessPool:
            where = f"{head.source} from record {head.first_line}" if isinstance(head, Chunk) else "a chunk"
            raise worker_crashed(where, store.directory if store is not None else None) from None


def fork_safe(n_workers: int) -> bool:
    """Whether workers may be forked from this process.  GNU OpenMP (torch's CPU thread pool) is
    not fork-safe: a child running a parallel region after the parent ran one with several
    threads hangs.  So fork only when torch is not loaded here, ran here on one thread, or each
    worker will run on one thread (``configure_threads``: cores // workers)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    return torch.get_num_threads() == 1 or (os.cpu_count() or 1) // n_workers <= 1


def release_models() -> None:
    """Drop the models this process loaded (for the fusion probe, or to run chunks itself);
    nothing is imported when none was."""
    runtime = sys.modules.get("dj_ops.models.runtime")
    if runtime is not None:
        runtime.release_models()


_RUNNER: ChainRunner | None = None


def _init_worker(recipe_json: str, output: str, plan: dict | None, n_workers: int, modules: list[str]) -> None:
    global _RUNNER
    die_with_parent()
    for name in modules:  # the chain's OP modules: one defined outside dj_ops registers when imported
        importlib.import_module(name)
    # model OPs size their thread pools (torch, image decoding) by the number of workers
    os.environ["DJ_OPS_WORKERS"] = str(n_workers)
    runtime = sys.modules.get("dj_ops.models.runtime")
    if runtime is not None:
        runtime.configure_threads_after_fork()
    _RUNNER = ChainRunner(Recipe.model_validate_json(recipe_json), output=output, plan=plan)


def _run_chunk(chunk: Chunk, store: checkpoint.ChunkStore | None) -> ChunkResult:
    assert _RUNNER is not None
    res = _RUNNER.run(chunk)
    if store is not None:
        store(res)
    return res
