"""Planning a pass: chunk size, devices, and the execution plan (OP fusion, probed on real rows)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import Chunk
from dj_ops.ops.base import OP

from .chain import ChainRunner, probe_apply
from .fusion import Plan, build_plan


def device_of(op: OP) -> str:
    """``cpu`` for an OP without models, else where its models run: ``cpu float32``, ``cuda bfloat16`` ..."""
    where = op.placement()
    return "cpu" if where is None else f"{where.device.split(':')[0]} {where.dtype}"


def chunk_rows(recipe: Recipe, ops: Sequence[OP]) -> int:
    """Records per chunk, the unit of work of a worker: the recipe's ``batch_size``; with several
    workers and a model OP on the CPU, a few rows, so that no worker idles at the end while
    another still has a whole batch of model passes to do."""
    rows = recipe.batch_size
    if recipe.np > 1 and any(device_of(op).startswith("cpu ") for op in ops):
        from dj_ops.models.runtime import CPU_MODEL_CHUNK_ROWS

        rows = min(rows, CPU_MODEL_CHUNK_ROWS)
    return rows


def probe_rows(ops: Sequence[OP], batch_size: int) -> int:
    """Rows to probe: a batch, or one model micro-batch when a model OP is in the chain."""
    sizes = [rows for op in ops if (rows := op.probe_rows()) is not None]
    return max(1, min([batch_size, *sizes]))


def make_plan(recipe: Recipe, ops: list[OP], first: Callable[[], Chunk | None]) -> Plan:
    """The plan of ``ops``; with ``op_fusion`` and the probe strategy, measured on the first rows
    of ``first()`` (the pass's first chunk, read only when a probe needs it).  Models loaded for
    the probe stay loaded: the run uses them (in this process or, forked, in its workers)."""
    if not recipe.op_fusion or recipe.fusion_strategy != "probe":
        plan = build_plan(ops, op_fusion=recipe.op_fusion, strategy=recipe.fusion_strategy)
    else:
        runner = ChainRunner(recipe, ops=ops)  # probe with these OPs: models are loaded once, here
        chunk = first()
        probe = None
        if chunk is not None:
            batch, _ = runner.parse(chunk)
            probe = batch.take(np.arange(min(len(batch), probe_rows(ops, recipe.batch_size))))
        plan = build_plan(ops, op_fusion=True, strategy="probe", probe=probe, apply=probe_apply(runner))
    plan.devices = {k: device_of(op) for k, op in enumerate(ops)}
    return plan
