"""k-sigma recipe refinement: each filter's bounds become ``mean ± k·std`` of the probed stats.

Data-Juicer (``tools/hpo/execute_hpo_3sigma.py::modify_recipe_k_sigma``) finds the stats an OP
reads from an access log and then rewrites *every* argument whose name contains "min" or "max".
Here each filter declares which parameters bound which stat (``Filter.stat_bounds``, e.g.
``{"text_len": ("min_len", "max_len")}``), so only real bounds change: the lower bound becomes
``mean - k·std`` and the upper ``mean + k·std`` of that stat (``mean`` and ``std`` from the
analyzer's overall table: list stats use the values of every item).  As upstream, both bounds
are rewritten whether or not the recipe set them, a bound that comes out NaN (a stat the probe
did not see, or a std of one sample) is left unchanged, and nothing is clamped to the stat's
natural range.

Deliberate differences: an integer parameter (``min_len: int``) gets the integer that keeps
exactly the same rows for an integer-valued stat (``ceil`` for an inclusive lower bound, ``floor``
for an inclusive upper bound, the other way round for exclusive ones) instead of a float the OP
does not accept; parameters in ``pinned`` (set by an HPO trial) are left as they are.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dj_ops.ops.base import Filter
from dj_ops.core.recipe import OpSpec, Recipe, op_parameters
from dj_ops.core.registry import load_all_ops


@dataclass
class BoundChange:
    op_index: int
    op: str
    param: str
    stat: str
    side: str  # "min" or "max"
    old: Any
    new: Any
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stat_moments(overall: pd.DataFrame | dict) -> tuple[dict[str, float], dict[str, float]]:
    """``(mean, std)`` per stat from an analyzer overall table (stats as columns, rows as index)."""
    df = overall if isinstance(overall, pd.DataFrame) else pd.DataFrame(overall)
    mean, std = {}, {}
    for stat in df.columns:
        m = _number(df[stat].get("mean"))
        s = _number(df[stat].get("std"))
        if m is not None:
            mean[str(stat)] = m
            std[str(stat)] = s if s is not None else math.nan
    return mean, std


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _is_int_param(annotation: Any) -> bool:
    if annotation is int:
        return True
    args = typing.get_args(annotation)
    return bool(args) and int in args and float not in args


def _to_param(value: float, annotation: Any, side: str, closed: bool) -> int | float:
    if not _is_int_param(annotation) or value == int(value):
        return int(value) if _is_int_param(annotation) else float(value)
    # an integer stat passes `stat >= x` iff `stat >= ceil(x)`, and `stat > x` iff `stat > floor(x)`
    if side == "min":
        return math.ceil(value) if closed else math.floor(value)
    return math.floor(value) if closed else math.ceil(value)


def refine_recipe_k_sigma(recipe: Recipe, overall: pd.DataFrame | dict, k: float = 3.0,
                          pinned: set[str] | frozenset[str] = frozenset()) -> tuple[Recipe, list[BoundChange]]:
    """The recipe with every filter bound set from the probe's stats, and what changed.

    ``pinned`` holds ``op_name.param`` keys to leave alone (reported with ``pinned=True``).
    """
    mean, std = stat_moments(overall)
    ops = load_all_ops()
    defaults = recipe.op_defaults()
    new_specs: list[OpSpec] = []
    changes: list[BoundChange] = []
    for index, spec in enumerate(recipe.process):
        cls = ops[spec.name]
        if not issubclass(cls, Filter):
            new_specs.append(spec)
            continue
        op = spec.build(**defaults)  # the instance: some filters pick their stat from their params
        accepted = op_parameters(cls)
        params = dict(spec.params)
        for stat, bounds in op.stat_bounds.items():
            if stat not in mean or math.isnan(mean[stat]):
                continue
            for side, param, closed in (("min", bounds[0], op.min_closed_interval),
                                        ("max", bounds[1], op.max_closed_interval)):
                if param is None:
                    continue
                raw = mean[stat] - k * std[stat] if side == "min" else mean[stat] + k * std[stat]
                if math.isnan(raw):  # e.g. one sample: std is NaN (upstream skips NaN too)
                    continue
                old = getattr(op, param)
                is_pinned = f"{spec.name}.{param}" in pinned
                new = old if is_pinned else _to_param(raw, accepted[param].annotation, side, closed)
                if not is_pinned:
                    params[param] = new
                changes.append(BoundChange(index, spec.name, param, stat, side, old, new, is_pinned))
        new_specs.append(OpSpec(name=spec.name, params=params))
    return recipe.model_copy(update={"process": new_specs}), changes
