"""Definitions of every recipe: ``dagster dev -m dj_assets.definitions`` (or ``-w workspace.yaml``).

Recipes are ``recipes/<name>.yaml`` and ``recipes/<name>/recipe.yaml`` in this repository, plus
the same layout in each folder of ``$DJ_RECIPES_DIR`` (``:``-separated).  Relative paths in a
recipe are taken relative to the folder holding its ``recipes`` folder (the repository root for
the bundled ones).  Partition files go under ``$DJ_STORAGE_ROOT`` (a folder or an fsspec URI;
default ``<repo>/outputs/dagster_storage``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .build import build_definitions, find_recipes

REPO = Path(__file__).resolve().parent.parent


def recipe_folders() -> list[Path]:
    extra = [Path(p).resolve() for p in os.environ.get("DJ_RECIPES_DIR", "").split(os.pathsep) if p]
    return [REPO / "recipes", *extra]


defs = build_definitions(find_recipes(recipe_folders()),
                         storage_root=os.environ.get("DJ_STORAGE_ROOT") or str(REPO / "outputs" / "dagster_storage"))
