"""Splitting a recipe's OP chain into stages (the unit an orchestrator materializes).

A *per-row* stage holds OPs that decide each row on its own (mappers, filters), so it can run on
any part of the data independently.  A *global* stage holds a deduplicator, which must see every
row in input order.  By default the chain is split at global OPs: each run of per-row OPs is one
stage and each deduplicator is a stage of its own.  A recipe's ``stages`` key names the stages
and chooses the split instead.  Nothing here imports an orchestrator or builds an OP (only the
registered classes are inspected), so planning is cheap and loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dj_ops.core.recipe import OpSpec, Recipe, RecipeError
from dj_ops.core.registry import op_class
from dj_ops.ops.base import Deduplicator, Filter

#: asset names an orchestrator uses beside the stages
RESERVED_STAGE_NAMES = frozenset({"input_shards", "export"})


@dataclass(frozen=True)
class Stage:
    name: str
    index: int  # 1-based position in the chain
    specs: tuple[OpSpec, ...]
    is_global: bool  # holds a deduplicator: needs every row, in input order
    uses_gpu: bool  # holds an OP with accelerator "cuda"
    stats_keys: tuple[str, ...]  # stats the stage's filters write
    uses_text: bool  # an OP reads the text field (rows without a string text are set aside)
    min_keep_ratio: float = 0.0
    max_keep_ratio: float = 1.0
    intermediates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # shared intermediate -> OPs

    @property
    def op_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def recipe(self, recipe: Recipe, **update) -> Recipe:
        """The recipe running only this stage's OPs (``update``: other keys to change)."""
        return recipe.model_copy(update={"process": list(self.specs), **update})


def op_device(spec: OpSpec) -> str:
    cls = op_class(spec.name)
    return spec.params.get("accelerator") or cls.default_accelerator


def _is_global(spec: OpSpec) -> bool:
    return issubclass(op_class(spec.name), Deduplicator)


def _make_stage(name: str, index: int, specs: list[OpSpec], lo: float = 0.0, hi: float = 1.0) -> Stage:
    stats: list[str] = []
    shared: dict[str, list[str]] = {}
    for spec in specs:
        cls = op_class(spec.name)
        if issubclass(cls, Filter) and cls.has_stats:
            stats.extend(k for k in cls.stat_bounds if k not in stats)
        for inter in cls.intermediates:
            shared.setdefault(inter, []).append(spec.name)
    return Stage(
        name=name, index=index, specs=tuple(specs),
        is_global=any(_is_global(s) for s in specs),
        uses_gpu=any(op_device(s) == "cuda" for s in specs),
        stats_keys=tuple(stats),
        uses_text=any(op_class(s.name).uses_text for s in specs), min_keep_ratio=lo, max_keep_ratio=hi,
        intermediates={k: tuple(v) for k, v in shared.items()},
    )


def default_stages(recipe: Recipe) -> list[Stage]:
    """Runs of per-row OPs, and each global OP alone; named ``stage<i>`` / ``stage<i>_<op>``.

    A recipe without OPs (a format conversion) has one stage that copies its input."""
    if not recipe.process:
        return [_make_stage("stage1", 1, [])]
    groups: list[list[OpSpec]] = []
    for spec in recipe.process:
        if _is_global(spec):
            groups.append([spec])
        elif groups and not _is_global(groups[-1][0]):
            groups[-1].append(spec)
        else:
            groups.append([spec])
    stages = []
    for i, specs in enumerate(groups, start=1):
        name = f"stage{i}_{specs[0].name}" if _is_global(specs[0]) else f"stage{i}"
        stages.append(_make_stage(name, i, specs))
    return stages


def plan_stages(recipe: Recipe) -> list[Stage]:
    """The recipe's stages: its ``stages`` key when given (validated), else :func:`default_stages`."""
    if not recipe.stages:
        return default_stages(recipe)
    stages, pos, seen = [], 0, set()
    for i, st in enumerate(recipe.stages, start=1):
        where = f"stages[{i - 1}] ({st.name})"
        if st.name in RESERVED_STAGE_NAMES or st.name in seen:
            raise RecipeError(f"{where}: name {st.name!r} is reserved or used twice")
        seen.add(st.name)
        n = st.ops if isinstance(st.ops, int) else len(st.ops)
        specs = recipe.process[pos:pos + n]
        if len(specs) < n:
            raise RecipeError(f"{where}: holds {n} OPs but only {len(recipe.process) - pos} are left in process")
        if isinstance(st.ops, list) and [s.name for s in specs] != st.ops:
            raise RecipeError(f"{where}: ops {st.ops} do not match process entries {pos}..{pos + n - 1}: "
                              f"{[s.name for s in specs]}")
        if st.min_keep_ratio > st.max_keep_ratio:
            raise RecipeError(f"{where}: min_keep_ratio > max_keep_ratio")
        stages.append(_make_stage(st.name, i, list(specs), st.min_keep_ratio, st.max_keep_ratio))
        pos += n
    if pos != len(recipe.process):
        raise RecipeError(f"stages: cover {pos} of the {len(recipe.process)} process entries; "
                          f"add the remaining {[s.name for s in recipe.process[pos:]]} to a stage")
    return stages
