"""A recipe ready for orchestration (:class:`RecipeBundle`) and the run tags that name it.

A recipe comes from a file (``<folder>/<name>.yaml``, ``<folder>/<name>/recipe.yaml``, a
``dj-process --config`` file) or inline from a component's ``defs.yaml``; relative paths in it
are taken relative to a base folder the caller names (see :mod:`dj_assets.components`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from dj_ops.core.recipe import Recipe, RecipeError, load_recipe
from dj_ops.engine.stages import Stage, plan_stages

#: run tag naming the recipe: the instance's run queue admits one run per recipe at a time
#: (``.dagster_home/dagster.yaml``), as inbox files are deduplicated against earlier partitions
RECIPE_TAG = "dj/recipe"
#: run tag naming what started a run: ``schedule``, ``inbox``, ``dj-process``
TRIGGER_TAG = "dj/trigger"


@dataclass
class RecipeBundle:
    """A recipe ready for orchestration: its name, stages and absolute paths."""

    name: str
    source: str  # the recipe file, "" for an inline recipe
    base_dir: Path  # what the recipe's relative paths were taken from
    recipe: Recipe
    stages: list[Stage]
    inbox: Path
    inbox_explicit: bool
    partitions: dg.DynamicPartitionsDefinition

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    @property
    def job_name(self) -> str:
        return f"{self.name}_job"

    @property
    def asset_keys(self) -> list[dg.AssetKey]:
        """The stage assets in order, then the export."""
        return [self.key(st.name) for st in self.stages] + [self.key("export")]


def dagster_name(text: str) -> str:
    """``text`` as a valid Dagster name (letters, digits, underscores; a letter first)."""
    name = re.sub(r"\W", "_", text)
    return name if name[:1].isalpha() else f"r_{name}"


def recipe_name(path: Path) -> str:
    """``<folder>/<name>.yaml`` or ``<folder>/<name>/recipe.yaml`` -> a valid Dagster name."""
    return dagster_name(path.parent.name if path.stem == "recipe" else path.stem)


def _absolute(p: str, base: Path) -> str:
    return str(Path(p) if Path(p).is_absolute() or "://" in p else (base / p).resolve())


def bundle_from_recipe(recipe: Recipe, name: str, base_dir: Path, source: str = "") -> RecipeBundle:
    """Relative paths of the recipe are taken relative to ``base_dir``."""
    update = {
        "dataset_path": " ".join(_absolute(p, base_dir) for p in recipe.dataset_path.split()),
        "export_path": _absolute(recipe.export_path, base_dir),
    }
    if recipe.work_dir:
        update["work_dir"] = _absolute(recipe.work_dir, base_dir)
    inbox = Path(_absolute(recipe.inbox_path, base_dir)) if recipe.inbox_path else base_dir / "inbox" / name
    recipe = recipe.model_copy(update=update)
    return RecipeBundle(name, source, base_dir, recipe, plan_stages(recipe), inbox.resolve(), bool(recipe.inbox_path),
                        dg.DynamicPartitionsDefinition(name=f"{name}_shards"))


def load_bundle(path: Path, base_dir: Path, name: str | None = None) -> RecipeBundle:
    try:
        recipe = load_recipe(path)
    except RecipeError as exc:
        raise RecipeError(f"recipe {path}: {exc}") from None
    return bundle_from_recipe(recipe, name or recipe_name(path), base_dir, source=str(path))


def find_recipes(folders: list[Path]) -> list[RecipeBundle]:
    """Bundles of ``<folder>/<name>.yaml|yml`` and ``<folder>/<name>/recipe.yaml``, relative paths
    resolved against each folder's parent."""
    bundles: dict[str, RecipeBundle] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml"), *folder.glob("*/recipe.yaml")])
        for path in files:
            bundle = load_bundle(path, base_dir=folder.parent)
            if bundle.name in bundles:
                raise RecipeError(f"recipes {bundles[bundle.name].source} and {path} share the name {bundle.name!r}")
            bundles[bundle.name] = bundle
    return list(bundles.values())
