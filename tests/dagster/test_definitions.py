"""The code location loads: `dagster definitions validate`, the recipe graph, extra recipe folders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg

from .conftest import REPO

BIN = os.path.dirname(sys.executable)


def _env(tmp_path, **extra) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "DJ_STORAGE_ROOT": str(tmp_path / "storage"), **extra}


def test_definitions_validate(tmp_path):
    proc = subprocess.run([f"{BIN}/dagster", "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                          cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_demo_recipe_graph():
    from dj_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    stages = ["demo/cleaned", "demo/filtered", "demo/deduped", "demo/language"]
    assert {"demo/input_shards", *stages, "demo/export"} <= keys
    graph = defs.resolve_asset_graph()
    chain = ["demo/input_shards", *stages, "demo/export"]
    for up, down in zip(chain, chain[1:]):
        assert dg.AssetKey.from_user_string(up) in graph.get(dg.AssetKey.from_user_string(down)).parent_keys
    for key in stages:
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.group_name == "demo" and isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
        assert {c.name for c in node.check_keys} == {"non_empty", "schema", "keep_ratio"}
    dedup = graph.get(dg.AssetKey(["demo", "deduped"]))
    assert isinstance(dedup.partition_mappings[dg.AssetKey(["demo", "filtered"])], dg.AllPartitionMapping)
    assert defs.resolve_job_def("demo_job").partitions_def.name == "demo_shards"
    assert defs.resolve_schedule_def("demo_schedule").cron_schedule == "0 3 * * *"
    assert defs.resolve_sensor_def("demo_inbox_sensor")


def test_recipes_from_env_folder(tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "extra_recipe.yaml").write_text(textwrap.dedent("""\
        dataset_path: data
        export_path: out/extra.jsonl
        process:
          - whitespace_normalization_mapper:
          - document_deduplicator:
          - text_length_filter:
              min_len: 5
        """))
    code = ("from dj_assets.definitions import defs; "
            "print(sorted(k.to_user_string() for k in defs.resolve_all_asset_keys() if k.path[0] == 'extra_recipe'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=_env(tmp_path, DJ_RECIPES_DIR=str(folder)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(["extra_recipe/export", "extra_recipe/input_shards", "extra_recipe/stage1",
                                       "extra_recipe/stage2_document_deduplicator", "extra_recipe/stage3"])
