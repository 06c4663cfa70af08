"""How many workers the GPUs can hold, from the memory the chain's models are measured to need.

Data-Juicer divides the free memory reported by ``nvidia-smi`` by each OP's declared
``mem_required`` (or runs one process per GPU when none is declared), which both runs out of
memory (models bigger than declared) and leaves GPUs idle (over-declared).  Here the coordinator
loads the chain's models once on the first GPU, runs one sample batch through each model OP
(``OP.sample_batch``, e.g. synthetic images), and takes what that cost: the weights (towers
shared between OPs counted once) plus the largest activation peak, plus the CUDA context.  ``mem_required`` (if set) is a floor on that
per-worker need, i.e. a cap on the number of workers: never more than Data-Juicer would start.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from dj_ops.ops.base import OP

from .apply import apply_op

#: CUDA context and allocator slack per worker process
CONTEXT_BYTES = 600 << 20
#: fraction of a GPU's free memory the workers may plan to use
HEADROOM = 0.9


def parse_bytes(value: Any) -> int:
    """``mem_required`` as bytes: a number is GB (Data-Juicer's convention), a string has a unit."""
    if value in (None, "", 0):
        return 0
    if isinstance(value, (int, float)):
        return int(value * (1 << 30))
    text = str(value).strip().upper().replace("IB", "B")
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "B": 1}
    for unit, mult in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(float(text) * (1 << 30))


def workers_for(need_bytes: int, free_bytes: Sequence[int], requested: int) -> int:
    """Workers to start: as many as fit in every GPU's free memory, at least one per GPU, at most
    ``requested`` (the recipe's ``np``) unless the GPUs outnumber it."""
    fit = sum(max(1, int(HEADROOM * f // max(1, need_bytes))) for f in free_bytes)
    return max(1, min(fit, max(requested, len(free_bytes))))


def measure_worker_bytes(ops: Sequence[OP]) -> int:
    """Device bytes one worker needs for the model OPs of ``ops`` (loaded here on this process's
    device, run on each OP's sample batch, then released)."""
    from dj_ops.models import runtime

    model_ops = [op for op in ops if op.placement() is not None]
    if not model_ops:
        return 0
    for op in model_ops:
        sample = op.sample_batch(runtime.default_batch_size(op.placement()))
        if sample is None:
            op.load_models()  # its weights count; no activation peak can be measured
        else:
            apply_op(op, sample)
    weights: dict[int, int] = {}
    peak = 0
    for m in runtime.loaded_models():
        for t in [*m.model.parameters(), *m.model.buffers()]:
            weights[id(t)] = t.numel() * t.element_size()  # shared towers are counted once
        peak = max([peak, *m.activation_bytes.values()])
    runtime.release_models()
    return sum(weights.values()) + peak + CONTEXT_BYTES


def gpu_workers(ops: Sequence[OP], requested: int, log: Callable[[str], None] = print) -> int:
    """Workers for a chain with CUDA OPs: measured per-worker memory vs. free memory per GPU."""
    import torch

    if not torch.cuda.is_available():
        return requested
    need = measure_worker_bytes(ops)
    declared = sum(parse_bytes(op.mem_required) for op in ops if op.accelerator == "cuda")
    per_worker = max(need, declared)
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    n = workers_for(per_worker, free, requested)
    log(f"GPU placement: {n} worker(s) over {len(free)} GPU(s); measured {need / 2**30:.2f} GiB per worker"
        + (f", mem_required {declared / 2**30:.2f} GiB" if declared else "")
        + f", free {', '.join(f'{f / 2**30:.1f}' for f in free)} GiB")
    return n


__all__ = ["gpu_workers", "measure_worker_bytes", "parse_bytes", "workers_for"]
