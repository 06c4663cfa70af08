"""The code location: ``dagster dev -w workspace.yaml``, ``dg dev``, ``dagster job execute -m
dj_assets.definitions``.  Its definitions are the components and modules of the defs folder
``dj_assets/defs/`` (the recipes of ``recipes/`` and ``$DJ_RECIPES_DIR``, scaffolded recipes, the
shared resources)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
