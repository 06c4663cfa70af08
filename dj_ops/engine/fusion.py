"""OP fusion: which filters run together, in which order, sharing which intermediates.

With ``op_fusion: true`` every maximal run of consecutive filters (a mapper or deduplicator ends a
run and never moves) becomes one *step*:

- **sharing**: the filters' intermediates (decoded images, pixel tensors, CLIP image embeddings,
  words, lines ...) are computed once per sample.  Cheap ones (words, lines, image headers) live
  in the batch cache anyway; heavy ones (decoded pixels and everything derived from them) are only
  kept for one *slice* of rows: from the first model-based filter on, the step runs slice by slice
  and every filter of the step works on the same slice, so e.g. image_aesthetics_filter and
  image_text_similarity_filter on the same CLIP tower embed each image once.
- **order**: with ``fusion_strategy: probe`` (default) the step's filters are timed on a probe
  batch of the *real upstream output* (the first rows of the input after the steps before) and
  ordered by marginal cost over the (smoothed) fraction of rows they remove (cheap and selective first; the
  cost of an intermediate is paid by the first filter that needs it).  ``greedy`` keeps the recipe
  order except that model-based filters go last.

Filters are independent predicates over their own stats, so the kept rows and their stats do not
depend on the order; only which filter sees (and reports) a bad or removed row first does.
Without ``op_fusion`` every OP is its own step, in recipe order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from dj_ops.core.batch import Batch
from dj_ops.ops.base import OP, Filter


@dataclass
class Step:
    #: positions of the OPs in the recipe chain, in execution order
    positions: list[int]
    fused: bool = False
    #: index into ``positions`` from which the step runs slice by slice (None: whole batches)
    slice_from: int | None = None
    slice_rows: int = 0
    #: intermediate -> names of the step's OPs that share it (two or more)
    shared: dict[str, list[str]] = field(default_factory=dict)
    #: per position: what the probe measured
    probe: dict[int, dict[str, float]] = field(default_factory=dict)


@dataclass
class Plan:
    steps: list[Step]
    op_fusion: bool = False
    strategy: str = "probe"
    probe_rows: int = 0
    devices: dict[int, str] = field(default_factory=dict)

    @property
    def order(self) -> list[int]:
        return [k for s in self.steps for k in s.positions]

    def to_dict(self, ops: Sequence[OP]) -> dict[str, Any]:
        return {
            "op_fusion": self.op_fusion,
            "strategy": self.strategy,
            "probe_rows": self.probe_rows,
            "steps": [
                {
                    "ops": [ops[k].name for k in s.positions],
                    "positions": list(s.positions),
                    "fused": s.fused,
                    "sliced_ops": [ops[k].name for k in s.positions[s.slice_from:]] if s.slice_from is not None else [],
                    "slice_rows": s.slice_rows,
                    "shared": {k: list(v) for k, v in s.shared.items()},
                    "probe": {ops[k].name if _unique(ops, k) else f"{ops[k].name}#{k}": dict(v)
                              for k, v in s.probe.items()},
                }
                for s in self.steps
            ],
            "devices": {f"{ops[k].name}#{k}": d for k, d in sorted(self.devices.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        steps = [Step(list(s["positions"]), s["fused"],
                      (len(s["positions"]) - len(s["sliced_ops"])) if s["sliced_ops"] else None,
                      s["slice_rows"], {k: list(v) for k, v in s["shared"].items()}) for s in data["steps"]]
        return cls(steps, data["op_fusion"], data["strategy"], data["probe_rows"])

    def describe(self, ops: Sequence[OP]) -> str:
        """Human-readable plan: one line per step, fused groups with their order and sharing."""
        lines = [f"OP plan (op_fusion={self.op_fusion}, strategy={self.strategy}"
                 + (f", probe rows={self.probe_rows})" if self.op_fusion else ")")]
        for i, s in enumerate(self.steps):
            names = [ops[k].name for k in s.positions]
            dev = ", ".join(sorted({self.devices.get(k, "cpu") for k in s.positions}))
            if not s.fused:
                lines.append(f"  {i:>2}. {names[0]}  [{dev}]")
                continue
            lines.append(f"  {i:>2}. fused group of {len(names)} filters [{dev}]:")
            for j, k in enumerate(s.positions):
                p = s.probe.get(k)
                measured = (f"  cost {p['ms_per_row']:.3f} ms/row, keeps {p['pass_rate']:.0%}" if p else "")
                sliced = "  (per slice)" if s.slice_from is not None and j >= s.slice_from else ""
                lines.append(f"      {j + 1}. {ops[k].name}{measured}{sliced}")
            for key, members in s.shared.items():
                lines.append(f"      shares {key}: {', '.join(members)}")
            if s.slice_from is not None:
                lines.append(f"      slices of {s.slice_rows} rows")
        return "\n".join(lines)


def _unique(ops: Sequence[OP], k: int) -> bool:
    return sum(op.name == ops[k].name for op in ops) == 1


def sequential_plan(ops: Sequence[OP]) -> Plan:
    return Plan([Step([k]) for k in range(len(ops))])


def filter_runs(ops: Sequence[OP]) -> list[list[int]]:
    """Positions grouped into maximal runs of consecutive filters; other OPs stand alone."""
    runs: list[list[int]] = []
    for k, op in enumerate(ops):
        if isinstance(op, Filter) and runs and isinstance(ops[runs[-1][-1]], Filter):
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def build_plan(ops: Sequence[OP], *, op_fusion: bool, strategy: str = "probe", probe: Batch | None = None,
               apply: Callable[[int, Batch], Batch] | None = None) -> Plan:
    """The execution plan of ``ops``.

    ``probe`` is a batch of input rows and ``apply(k, batch)`` runs OP ``k`` on a batch the way the
    executor does (filters drop rows, bad rows are removed); both are needed for the probe
    strategy, which walks the chain over the probe batch so each step is measured on the real
    output of the steps before it.
    """
    if not op_fusion:
        return sequential_plan(ops)
    plan = Plan([], op_fusion=True, strategy=strategy, probe_rows=len(probe) if probe is not None else 0)
    batch = probe
    runs = filter_runs(ops)
    for i, run in enumerate(runs):
        if len(run) == 1:
            step = Step(run)
        else:
            step = _plan_run(ops, run, strategy, batch if strategy == "probe" else None)
        plan.steps.append(step)
        more_to_probe = any(len(r) > 1 for r in runs[i + 1:])
        if more_to_probe and batch is not None and apply is not None and len(batch):
            # the probe rows go on through this step, as the executor will run it
            for k in step.positions:
                batch.shared_slice = True
                batch = apply(k, batch)
                if not len(batch):
                    break
    return plan


def _plan_run(ops: Sequence[OP], run: list[int], strategy: str, probe: Batch | None) -> Step:
    measured: dict[int, dict[str, float]] = {}
    keys = {k: ops[k].intermediate_keys() for k in run}
    if probe is not None and len(probe):
        try:
            measured = _measure(ops, run, probe)
        except Exception:  # noqa: BLE001 - an OP failing on the probe rows is handled (row by row) in the run
            measured = {}
    if measured:
        order = _greedy_order(run, keys, measured)
    else:
        # no probe: the recipe order, model-based (sliced) filters last
        order = sorted(run, key=lambda k: ops[k].slice_rows() is not None)
    sliced = [j for j, k in enumerate(order) if ops[k].slice_rows() is not None]
    slice_from = sliced[0] if sliced else None
    rows = max((ops[k].slice_rows() or 0) for k in order[slice_from:]) if slice_from is not None else 0
    shared: dict[str, list[str]] = {}
    for k in order:
        for key in keys[k]:
            shared.setdefault(key, []).append(ops[k].name)
    return Step(order, fused=True, slice_from=slice_from, slice_rows=rows,
                shared={k: v for k, v in shared.items() if len(v) > 1}, probe=measured)


def _measure(ops: Sequence[OP], run: list[int], probe: Batch) -> dict[int, dict[str, float]]:
    """Cold and warm seconds and pass rate of each filter of ``run`` on the same probe slice.

    Each filter first runs once on one row (a model OP only loads its models), outside the
    measurement.  Cold: in recipe order on one shared slice, so a filter pays for the intermediates
    it is the first to need.  Warm: again with every intermediate in place.  Every filter sees
    every probe row (no filtering in between), so pass rates are independent estimates.
    """
    # one-time costs (loading a model, compiling, reading word lists) are not per-row costs
    for k in run:
        if ops[k].placement() is not None:
            ops[k].load_models()  # running a model on one row would cost a whole (padded) micro-batch
        else:
            ops[k].ensure_stats(_copy(probe.take(np.arange(1))))
    part = _copy(probe)
    part.shared_slice = True
    out: dict[int, dict[str, float]] = {}
    n = len(part)
    for k in run:
        op = ops[k]
        assert isinstance(op, Filter)
        t0 = time.perf_counter()
        op.ensure_stats(part)
        cold = time.perf_counter() - t0
        bad = set(part.bad)
        keep = np.asarray(op.keep(part), dtype=bool)
        valid = [i for i in range(n) if i not in bad]
        rate = float(keep[valid].mean()) if valid else 1.0
        out[k] = {"cold_seconds": cold, "pass_rate": rate, "rows": len(valid)}
    for k in run:
        op = ops[k]
        saved = {key: part.stats.pop(key) for key in op.stats_keys if key in part.stats}
        t0 = time.perf_counter()
        op.ensure_stats(part)
        out[k]["warm_seconds"] = time.perf_counter() - t0
        part.stats.update(saved)
    for v in out.values():
        v["ms_per_row"] = 1000 * v["cold_seconds"] / max(1, n)
    return out


def _copy(batch: Batch) -> Batch:
    """A batch with the same rows whose stats and cache can be changed freely."""
    return Batch(dict(batch.columns), batch.row_ids.copy(), {k: list(v) for k, v in batch.stats.items()},
                 {k: list(v) for k, v in batch.cache.items()})


def _greedy_order(run: list[int], keys: dict[int, tuple[str, ...]], m: dict[int, dict[str, float]]) -> list[int]:
    """Repeatedly take the filter with the smallest marginal cost per removed row.

    The cold/warm difference of the first filter (in recipe order) to need an intermediate is that
    intermediate's cost, shared equally by the intermediates it computed; a filter's marginal cost
    is its warm cost plus the intermediates not computed yet.
    """
    key_cost: dict[str, float] = {}
    seen: set[str] = set()
    for k in run:
        new = [key for key in keys[k] if key not in seen]
        extra = max(0.0, m[k]["cold_seconds"] - m[k]["warm_seconds"])
        for key in new:
            key_cost[key] = extra / len(new)
        seen.update(new)
    done: set[str] = set()
    left = list(run)
    order: list[int] = []
    while left:
        def rank(k: int) -> tuple[float, float, int]:
            cost = m[k]["warm_seconds"] + sum(key_cost.get(key, 0.0) for key in keys[k] if key not in done)
            # share of rows removed, with Laplace smoothing: a probe of a few rows on which a cheap
            # filter removed nothing must not send it behind a model filter costing 1000x more
            n = m[k].get("rows", 0)
            removed = (n * (1.0 - m[k]["pass_rate"]) + 1.0) / (n + 2.0)
            return (cost / removed, cost, run.index(k))

        best = min(left, key=rank)
        order.append(best)
        left.remove(best)
        done.update(keys[best])
    return order
