"""The code location: loaded from the defs folder by `dg` and `dagster`, the recipe components,
extra recipe folders, and a recipe scaffolded with `dg scaffold defs` into a new project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import dagster as dg
import pytest
import yaml

from .conftest import DEMO, DJ_PROCESS, REPO, demo_recipe_dict, read_jsonl

BIN = os.path.dirname(sys.executable)
DEMO_KEYS = ["articles.jsonl", "forum.jsonl", "reviews_electronics.jsonl@0-100",
             "reviews_electronics.jsonl@100-130", "reviews_home.jsonl"]


def _env(tmp_path, **extra) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "DAGSTER_HOME": str(home), "DJ_STORAGE_ROOT": str(tmp_path / "storage"),
            "PYTHONPATH": path, **extra}


def _run(args, env, cwd=REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


def test_definitions_validate(tmp_path):
    proc = _run([f"{BIN}/dagster", "definitions", "validate", "-w", str(REPO / "workspace.yaml")], _env(tmp_path))
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_dg_check_and_list_defs_show_the_recipe_components(tmp_path):
    env = _env(tmp_path)
    assert "All definitions loaded successfully" in _run([f"{BIN}/dg", "check", "defs"], env).stdout
    listed = json.loads(_run([f"{BIN}/dg", "list", "defs", "--json"], env).stdout)
    demo = {a["asset_key"]: a for a in listed["assets"] if a["asset_key"].startswith("demo/")}
    assert set(demo) == {f"demo/{n}" for n in ("input_shards", "cleaned", "filtered", "deduped", "language", "export")}
    assert all(a["source"].startswith("dj_assets/defs/recipes/defs.yaml") for a in demo.values())
    assert "demo_job" in {j["name"] for j in listed["jobs"]}
    assert {"dj_storage", "dj_parquet_io", "gpu", "dj_run_queue"} <= {r["name"] for r in listed["resources"]}
    assert "defs.yaml (DataJuicerRecipeFolder)" in _run([f"{BIN}/dg", "list", "component-tree"], env).stdout
    components = _run([f"{BIN}/dg", "list", "components"], env).stdout
    assert "dj_assets.components.DataJuicerRecipe " in components
    assert "dj_assets.components.DataJuicerRecipeFolder" in components


def test_demo_recipe_graph():
    from dj_assets.definitions import defs

    defs = defs()
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
    job = defs.resolve_job_def("demo_job")  # an asset job over the stages and the export: no op around them
    assert job.partitions_def.name == "demo_shards" and job.tags["dj/recipe"] == "demo"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {*stages, "demo/export"}
    assert defs.resolve_schedule_def("demo_schedule").cron_schedule == "0 3 * * *"
    assert defs.resolve_sensor_def("demo_inbox_sensor").job_name == "demo_job"


def test_recipe_folder_component_runs_a_recipe_over_a_partition_range(instance, demo_data, tmp_path, monkeypatch):
    """A recipe of $DJ_RECIPES_DIR, loaded through the defs folder's folder component, run as its
    job over the range first..last of its partitions; an untagged run fails naming what to run."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "democopy.yaml").write_text(yaml.safe_dump(demo_recipe_dict(demo_data, tmp_path)))
    monkeypatch.setenv("DJ_RECIPES_DIR", str(folder))
    monkeypatch.setenv("DJ_STORAGE_ROOT", str(tmp_path / "storage"))
    from dj_assets.definitions import defs

    job = defs().resolve_job_def("democopy_job")
    untagged = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not untagged.success
    message = next(e for e in untagged.all_events if e.is_step_failure).step_failure_data.error.message
    assert f"dj-process --config {folder / 'democopy.yaml'}" in message and "No partition is registered" in message

    instance.add_dynamic_partitions("democopy_shards", DEMO_KEYS)
    result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": DEMO_KEYS[0],
                                                             "dagster/asset_partition_range_end": DEMO_KEYS[-1]})
    assert result.success
    mats = result.get_asset_materialization_events()
    assert sorted(e.materialization.partition for e in mats
                  if e.materialization.asset_key.path[-1] == "cleaned") == sorted(DEMO_KEYS)
    assert len(read_jsonl(tmp_path / "out" / "demo.jsonl")) == 275
    assert (tmp_path / "storage" / "democopy" / "language" / "forum.jsonl.parquet").is_file()


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
            "print(sorted(k.to_user_string() for k in defs().resolve_all_asset_keys() if k.path[0] == 'extra_recipe'))")
    out = _run([sys.executable, "-c", code], _env(tmp_path, DJ_RECIPES_DIR=str(folder)), cwd=tmp_path).stdout
    assert out.strip() == str(["extra_recipe/export", "extra_recipe/input_shards", "extra_recipe/stage1",
                                                "extra_recipe/stage2_document_deduplicator", "extra_recipe/stage3"])


def test_dg_scaffold_defs_writes_a_working_recipe(tmp_path):
    """`dg scaffold defs dj_assets.components.DataJuicerRecipe my_recipe` in a new dg project (whose
    defs folder declares the shared resources as this repository's does): `dg check defs` passes,
    dj-process runs the recipe file, `dg launch` runs a partition through the component."""
    project = tmp_path / "proj"
    (project / "proj" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "proj"
        version = "0.1.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "proj"
        registry_modules = ["dj_assets.components"]
        """))
    (project / "proj" / "__init__.py").write_text("")
    (project / "proj" / "defs" / "__init__.py").write_text("")
    (project / "proj" / "definitions.py").write_text((REPO / "dj_assets" / "definitions.py").read_text())
    (project / "proj" / "defs" / "resources.py").write_text((REPO / "dj_assets" / "defs" / "resources.py").read_text())
    env = _env(tmp_path, PYTHONPATH=os.pathsep.join([str(project), str(REPO)]))
    env.pop("DJ_STORAGE_ROOT")  # the project's own outputs/dagster_storage

    _run([f"{BIN}/dg", "scaffold", "defs", "dj_assets.components.DataJuicerRecipe", "my_recipe"], env, cwd=project)
    folder = project / "proj" / "defs" / "my_recipe"
    assert yaml.safe_load((folder / "defs.yaml").read_text()) == {
        "type": "dj_assets.components.DataJuicerRecipe", "attributes": {"recipe_file": "recipe.yaml"}}
    assert yaml.safe_load((folder / "recipe.yaml").read_text())["dataset_path"] == "proj/defs/my_recipe/data"
    assert "All definitions loaded successfully" in _run([f"{BIN}/dg", "check", "defs"], env, cwd=project).stdout

    out = _run([*DJ_PROCESS, "--config", "proj/defs/my_recipe/recipe.yaml"], env, cwd=project).stdout
    assert "6 rows read, 0 bad, 4 written" in out
    exported = read_jsonl(project / "outputs" / "my_recipe" / "my_recipe.jsonl")
    assert [r["text"] for r in exported][1] == "Markup like this paragraph's tags is removed by clean_html_mapper."
    (project / "outputs" / "my_recipe" / "my_recipe.jsonl").unlink()
    _run([f"{BIN}/dg", "launch", "--job", "my_recipe_job", "--partition", "sample.jsonl"], env, cwd=project)
    assert read_jsonl(project / "outputs" / "my_recipe" / "my_recipe.jsonl") == exported
    assert (project / "outputs" / "dagster_storage" / "my_recipe" / "stage1" / "sample.jsonl.parquet").is_file()


def test_recipe_component_inline_and_its_errors(tmp_path):
    from dj_assets.components import DataJuicerRecipe
    from dj_assets.resources import location_resources
    from dj_ops.core.recipe import RecipeError

    context = dg.ComponentTree.for_test().load_context
    inline = DataJuicerRecipe.from_attributes_dict(attributes={"name": "inline", "recipe": {
        "dataset_path": str(DEMO / "data"), "process": [{"text_length_filter": {"min_len": 5}}]}}, context=context)
    defs = dg.Definitions.merge(inline.build_defs(context), location_resources(str(tmp_path)))
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == {
        "inline/input_shards", "inline/stage1", "inline/export"}
    with pytest.raises(RecipeError, match="either `recipe_file` or `recipe`"):
        DataJuicerRecipe.from_attributes_dict(attributes={}, context=context).build_defs(context)
    with pytest.raises(RecipeError, match="unknown recipe key 'procss'"):
        DataJuicerRecipe.from_attributes_dict(attributes={"recipe": {"procss": []}}, context=context).build_defs(context)
