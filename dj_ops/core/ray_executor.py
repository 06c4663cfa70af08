"""Ray executor (``executor_type: ray``): the local executor's chain, run on a Ray cluster.

Chunks of the input are sent to a pool of Ray actors, each holding the built OP chain (models
are loaded once per actor, not once per batch); a chain with a CUDA OP asks each actor for the
GPU fraction its OPs' ``gpu_required`` or ``mem_required`` needs.  Everything the coordinator
does stays on the driver and is inherited from :class:`LocalExecutor`: results are consumed in
input order, deduplicators decide on the keys the workers computed (the first occurrence in
input order survives; near duplicates cut the chain), outputs are written atomically and
checkpoints recorded, so the output is the local executor's, row for row.  At most
``2 * workers + 2`` chunks are in flight, so memory stays bounded whatever the input size.
The input, the export and media must be on storage every node can read (as for Data-Juicer's
Ray mode).
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, Iterator

from ..io.readers import Chunk
from .checkpoint import ChunkStore
from .faults import worker_crashed
from .executor import ChainRunner, ChunkResult, LocalExecutor
from .recipe import Recipe


class RayExecutor(LocalExecutor):
    """Runs a recipe on Ray: connects to ``ray_address`` (``auto``: a running cluster, else a
    new local one with ``np`` CPUs)."""

    def _map(self, chunks: Iterable[Chunk | ChunkResult], analyze: bool,
             record: ChunkStore | None = None) -> Iterator[ChunkResult]:
        ray = connect(self.recipe)
        n_workers = max(1, min(self.recipe.np, int(ray.cluster_resources().get("CPU", 1))))
        options = _actor_options(self.ops, ray)
        actor_cls = ray.remote(**options)(_ChainActor)
        plan = self._plan_obj().to_dict(self.ops)
        actors = [actor_cls.remote(self.recipe.model_dump_json(), analyze, plan, record) for _ in range(n_workers)]
        # a model that cannot load fails here, before any data is sent
        ray.get([a.ready.remote() for a in actors])
        max_inflight = 2 * n_workers + 2
        pending: collections.deque = collections.deque()
        try:
            for k, c in enumerate(chunks):
                pending.append(actors[k % n_workers].run.remote(c) if isinstance(c, Chunk) else c)
                if len(pending) >= max_inflight:
                    yield _result(ray, pending.popleft())
            while pending:
                yield _result(ray, pending.popleft())
        finally:
            for a in actors:
                ray.kill(a)


def _result(ray, item: Any) -> ChunkResult:
    if isinstance(item, ChunkResult):
        return item
    try:
        return ray.get(item)
    except ray.exceptions.RayActorError as exc:
        raise worker_crashed("a chunk on a Ray actor", None) from exc


def connect(recipe: Recipe):
    import ray

    if not ray.is_initialized():
        address = recipe.ray_address
        if address in ("", "local"):
            ray.init(num_cpus=recipe.np, include_dashboard=False, log_to_driver=False)
        elif address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:
                ray.init(num_cpus=recipe.np, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


class _ChainActor:
    """A Ray actor holding one :class:`ChainRunner` (the built OPs and their models)."""

    def __init__(self, recipe_json: str, analyze: bool, plan: dict | None, record: ChunkStore | None):
        self.runner = ChainRunner(Recipe.model_validate_json(recipe_json), analyze=analyze, plan=plan)
        self.record = record

    def ready(self) -> bool:
        return True

    def run(self, chunk: Chunk) -> ChunkResult:
        res = self.runner.run(chunk)
        if self.record is not None:
            self.record(res)
        return res


def _actor_options(ops: list, ray) -> dict[str, Any]:
    gpu_ops = [op for op in ops if op.accelerator == "cuda"]
    opts: dict[str, Any] = {"num_cpus": 1}
    if gpu_ops and ray.cluster_resources().get("GPU", 0) > 0:
        opts["num_gpus"] = gpu_fraction(gpu_ops, ray)
    return opts


def gpu_fraction(gpu_ops: list, ray) -> float:
    """GPU share of one actor: the largest ``gpu_required``, or the summed ``mem_required`` of the
    chain's model OPs over one GPU's memory (Data-Juicer's ``calculate_ray_np`` rule); a whole
    GPU when neither is declared."""
    declared = [op.gpu_required for op in gpu_ops if op.gpu_required]
    if declared:
        return min(1.0, max(declared))
    mem = sum(_bytes(op.mem_required) for op in gpu_ops if op.mem_required)
    per_gpu = _gpu_memory_bytes()
    if not mem or not per_gpu:
        return 1.0
    return min(1.0, round(mem / per_gpu + 0.005, 2))


def _gpu_memory_bytes() -> int:
    try:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def _bytes(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value * (1 << 30)) if value < 1 << 10 else int(value)  # bare numbers are GB, as in DJ
    text = str(value).strip().upper()
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * scale)
    return int(float(text))
