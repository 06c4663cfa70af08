"""Dagster components of this project (the registry module of ``[tool.dg.project]``).

- :class:`DataJuicerRecipe`: one Data-Juicer recipe as Dagster definitions, from a recipe file
  beside its ``defs.yaml`` or inline.  ``dg scaffold defs dj_assets.components.DataJuicerRecipe
  <name>`` writes one: ``defs.yaml``, a recipe file and a few sample rows to run it on.
- :class:`DataJuicerRecipeFolder`: every recipe file of some folders (``<folder>/<name>.yaml`` or
  ``<folder>/<name>/recipe.yaml``); the repository's ``recipes/`` and ``$DJ_RECIPES_DIR`` are one
  (``dj_assets/defs/recipes/defs.yaml``).

The recipes' assets use the location's shared resources, declared once in its defs folder
(:func:`dj_assets.resources.location_resources`, see ``dj_assets/defs/resources.py``).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg

from dj_ops.core.recipe import RecipeError, recipe_from_dict

from .bundle import RecipeBundle, bundle_from_recipe, dagster_name, find_recipes, load_bundle
from .recipe_defs import recipe_definitions

#: rows for a scaffolded recipe to run on: a duplicate, a short row, some markup
SAMPLE_ROWS = [
    "Dagster runs this recipe as partitioned assets: one partition per input file.",
    "<p>Markup like this paragraph's tags is removed by <b>clean_html_mapper</b>.</p>",
    "Too short.",
    "Each stage of the recipe is an asset; deduplication decides over every partition.",
    "Each stage of the recipe is an asset; deduplication decides over every partition.",
    "The export is written where the recipe's export_path says, as Data-Juicer writes it.",
]


class RecipeScaffolder(dg.Scaffolder):
    """``defs.yaml`` naming ``recipe.yaml`` beside it: a small text recipe over ``data/``."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        folder = request.target_path
        root = request.project_root or Path.cwd()
        name = dagster_name(folder.name)
        here = Path(os.path.relpath(folder.resolve(), root.resolve())).as_posix()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "data" / "sample.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in SAMPLE_ROWS))
        (folder / "recipe.yaml").write_text(textwrap.dedent(f"""\
            # A Data-Juicer recipe: runs unchanged with Data-Juicer and with
            # `dj-process --config {here}/recipe.yaml`; here, recipe {name} of the code location
            # (assets {name}/<stage>, job {name}_job).  Relative paths are taken from the project root.
            project_name: {name}
            dataset_path: {here}/data        # jsonl, jsonl.gz, json, parquet, a folder of them
            export_path: outputs/{name}/{name}.jsonl
            np: 2
            text_keys: text
            process:
              - clean_html_mapper:
              - whitespace_normalization_mapper:
              - text_length_filter:
                  min_len: 20
              - document_deduplicator:
            """))
        dg.scaffold_component(request, {"recipe_file": "recipe.yaml"})


@dg.scaffold_with(RecipeScaffolder)
class DataJuicerRecipe(dg.Component, dg.Resolvable, dg.Model):
    """A Data-Juicer recipe as a partitioned asset graph (a source asset of input files, one
    asset per stage, the export), its job, schedule and inbox sensor.

    Set ``recipe_file`` (a recipe file, relative to this ``defs.yaml``) or ``recipe`` (the recipe's
    keys inline).  Relative paths in the recipe are taken from the project root, as when
    ``dj-process`` runs the file from there.  ``name`` (default: this folder's name) prefixes the
    asset keys and names the asset group, the job ``<name>_job`` and the partitions.
    """

    recipe_file: str | None = None
    recipe: dict[str, Any] | None = None
    name: str | None = None

    def bundle(self, context: dg.ComponentLoadContext) -> RecipeBundle:
        where = context.path / "defs.yaml"
        if (self.recipe_file is None) == (self.recipe is None):
            raise RecipeError(f"{where}: set either `recipe_file` or `recipe` (the recipe inline), not both")
        name = dagster_name(self.name or context.path.name)
        if self.recipe_file is not None:
            return load_bundle(context.path / self.recipe_file, base_dir=context.project_root, name=name)
        return bundle_from_recipe(recipe_from_dict(self.recipe, source=str(where)), name, context.project_root)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return recipe_definitions(self.bundle(context))


class DataJuicerRecipeFolder(dg.Component, dg.Resolvable, dg.Model):
    """Every recipe file of some folders: ``<folder>/<name>.yaml`` (or ``.yml``) and
    ``<folder>/<name>/recipe.yaml``, each a :class:`DataJuicerRecipe` named ``<name>`` whose
    relative paths are taken from the folder's parent.

    ``folders``: relative to this ``defs.yaml``; ``folders_env_var``: an environment variable
    naming more folders, ``:``-separated (relative to the working directory).
    """

    folders: list[str] = []
    folders_env_var: str | None = None

    def recipe_folders(self, context: dg.ComponentLoadContext) -> list[Path]:
        extra = os.environ.get(self.folders_env_var, "") if self.folders_env_var else ""
        return [(context.path / f).resolve() for f in self.folders] + [Path(p).resolve() for p in extra.split(os.pathsep) if p]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        recipes = [recipe_definitions(b) for b in find_recipes(self.recipe_folders(context))]
        return dg.Definitions.merge(*recipes) if recipes else dg.Definitions()
