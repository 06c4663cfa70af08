"""Fixtures for the Dagster layer: a test instance, a copy of the demo data, recipe bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.dagster_fixtures import instance, quiet_previews  # noqa: F401  (fixtures)
import yaml

from dj_assets.build import build_definitions
from dj_assets.factory import bundle_from_recipe
from dj_ops.core.recipe import recipe_from_dict

from ..testing_ops import _register_test_ops

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recipes" / "demo"

_register_test_ops()


@pytest.fixture
def demo_data(tmp_path) -> Path:
    """A copy of the bundled demo dataset (tests never write into the repository)."""
    target = tmp_path / "data"
    shutil.copytree(DEMO / "data", target)
    return target


def demo_recipe_dict(data: Path, tmp_path: Path, **overrides) -> dict:
    d = yaml.safe_load((DEMO / "recipe.yaml").read_text())
    d.update(dataset_path=str(data), export_path=str(tmp_path / "out" / "demo.jsonl"),
             inbox_path=str(tmp_path / "inbox"), **overrides)
    return d


def make_defs(recipe_data: dict, tmp_path: Path, name: str = "demo"):
    """(bundle, Definitions) of one recipe, partitions stored under ``tmp_path/storage``."""
    bundle = bundle_from_recipe(recipe_from_dict(recipe_data), name, tmp_path)
    defs = build_definitions([bundle], str(tmp_path / "storage"), gpu_lock_dir=str(tmp_path / "gpu_locks"))
    return bundle, defs


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
