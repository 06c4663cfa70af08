"""Finding recipe files and assembling the Definitions of several recipes with their resources."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from dj_ops.core.recipe import RecipeError

from .factory import IO_MANAGER_KEY, RecipeBundle, load_bundle, recipe_definitions
from .gpu import GpuClaim
from .storage import DJStorage, PartitionedParquetIOManager


def find_recipes(folders: list[Path]) -> list[RecipeBundle]:
    """Bundles of ``<folder>/<name>.yaml|yml`` and ``<folder>/<name>/recipe.yaml``, relative paths
    resolved against each folder's parent."""
    bundles: dict[str, RecipeBundle] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml"), *folder.glob("*/recipe.yaml")])
        for path in files:
            try:
                bundle = load_bundle(path, base_dir=folder.parent)
            except RecipeError as exc:
                raise RecipeError(f"recipe {path}: {exc}") from None
            if bundle.name in bundles:
                raise RecipeError(f"recipes {bundles[bundle.name].source} and {path} share the name {bundle.name!r}")
            bundles[bundle.name] = bundle
    return list(bundles.values())


def build_resources(storage_root: str, gpu_lock_dir: str | None = None) -> dict:
    """The resources every recipe's assets use: partition storage, its IO manager, the GPU claim."""
    storage = DJStorage(root=storage_root)
    home = os.environ.get("DAGSTER_HOME")
    lock_dir = gpu_lock_dir or (str(Path(home) / "gpu_locks") if home else "")
    return {"dj_storage": storage, IO_MANAGER_KEY: PartitionedParquetIOManager(storage=storage),
            "gpu": GpuClaim(lock_dir=lock_dir)}


def build_definitions(bundles: list[RecipeBundle], storage_root: str, gpu_lock_dir: str | None = None) -> dg.Definitions:
    holder: dict = {}
    # one process runs every step of a run: the engine parallelises inside each step
    defs = dg.Definitions.merge(*(recipe_definitions(b, holder) for b in bundles),
                                dg.Definitions(resources=build_resources(storage_root, gpu_lock_dir),
                                               executor=dg.in_process_executor))
    holder["defs"] = defs
    return defs
