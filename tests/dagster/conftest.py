"""Fixtures for the Dagster layer: a test instance, a copy of the demo data, recipe bundles."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.dagster_fixtures import instance, quiet_previews  # noqa: F401  (fixtures)
import yaml

from dj_assets.bundle import bundle_from_recipe
from dj_assets.process import run_every_partition
from dj_assets.recipe_defs import definitions_for
from dj_assets.resources import location_resources
from dj_assets.summary import run_summary
from dj_ops.core.recipe import recipe_from_dict

from ..testing_ops import _register_test_ops

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recipes" / "demo"
#: the `dj-process` command (the function [project.scripts] names, so the test runs this tree's
#: code whatever console scripts an older install of the project left in the environment)
DJ_PROCESS = [sys.executable, "-c", "import sys; from dj_assets.cli import process_main; sys.exit(process_main())"]

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


def make_defs(recipe_data: dict, tmp_path: Path, name: str = "demo", storage_root: str | None = None):
    """(bundle, Definitions) of one recipe, partitions stored under ``tmp_path/storage``."""
    bundle = bundle_from_recipe(recipe_from_dict(recipe_data), name, tmp_path)
    location = location_resources(storage_root or str(tmp_path / "storage"), gpu_lock_dir=str(tmp_path / "gpu_locks"))
    return bundle, definitions_for([bundle], location)


class Log:
    """A logger that keeps what it is told."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, msg):
        self.lines.append(msg)

    warning = info


def run_all(defs, bundle, dagster_instance, **kw):
    """``<name>_job`` over every partition (synced first), as dj-process runs it: (result, summary)."""
    result = run_every_partition(dagster_instance, bundle, defs, Log(), **kw)
    return result, run_summary(bundle, result)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
