"""The command lines: `dagster job execute` / `dg launch` on a recipe job and `dj-process` through Dagster."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from .conftest import DEMO, DJ_PROCESS, REPO, demo_recipe_dict, read_jsonl

BIN = os.path.dirname(sys.executable)


def _env(tmp_path, **extra) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    return {**os.environ, "DAGSTER_HOME": str(home), "DJ_STORAGE_ROOT": str(tmp_path / "storage"), **extra}


def _run(args, tmp_path, env, cwd=REPO):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


@pytest.mark.slow
def test_recipe_job_from_the_command_line(demo_data, tmp_path, monkeypatch):
    """An untagged `dagster job execute` fails at once naming what to run; dj-process registers the
    partitions and runs them all; then `dagster job execute` over the range the message names,
    `dg launch --partition` and `dg launch --partition-range`."""
    folder = tmp_path / "recipes" / "democopy"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(demo_recipe_dict(demo_data, tmp_path)))
    env = _env(tmp_path, DJ_RECIPES_DIR=str(tmp_path / "recipes"))
    execute = [f"{BIN}/dagster", "job", "execute", "-m", "dj_assets.definitions", "-j", "democopy_job"]

    untagged = subprocess.run(execute, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert untagged.returncode != 0
    assert "democopy_job runs on partitions" in untagged.stderr + untagged.stdout
    assert f"dj-process --config {folder / 'recipe.yaml'}" in untagged.stderr + untagged.stdout
    assert "No partition is registered yet" in untagged.stderr + untagged.stdout

    _run([*DJ_PROCESS, "--config", str(folder / "recipe.yaml")], tmp_path, env)
    out = read_jsonl(tmp_path / "out" / "demo.jsonl")
    assert len(out) == 275

    message = subprocess.run(execute, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tags = re.search(r"--tags '(\{.*?\})'", message.stderr + message.stdout).group(1)
    assert json.loads(tags) == {"dagster/asset_partition_range_start": "articles.jsonl",
                                "dagster/asset_partition_range_end": "reviews_home.jsonl"}
    _run([*execute, "--tags", tags], tmp_path, env)
    _run([f"{BIN}/dg", "launch", "--job", "democopy_job", "--partition", "forum.jsonl"], tmp_path, env)
    _run([f"{BIN}/dg", "launch", "--job", "democopy_job", "--partition-range", "forum.jsonl...reviews_home.jsonl"],
         tmp_path, env)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage lives there
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert {r.job_name for r in runs} == {"democopy_job"} and len(runs) == 4
        assert all(r.tags["dj/recipe"] == "democopy" for r in runs)
    assert read_jsonl(tmp_path / "out" / "demo.jsonl") == out  # same input, same export


def test_dj_process_through_dagster_matches_local(tmp_path, monkeypatch):
    config = DEMO / "recipe.yaml"
    env = _env(tmp_path)
    dag = _run([*DJ_PROCESS, "--config", str(config), "--export_path", str(tmp_path / "d" / "out.jsonl")],
               tmp_path, env)
    loc = _run([*DJ_PROCESS, "--config", str(config), "--executor", "local",
                "--export_path", str(tmp_path / "l" / "out.jsonl")], tmp_path, env)
    assert read_jsonl(tmp_path / "d" / "out.jsonl") == read_jsonl(tmp_path / "l" / "out.jsonl")
    assert read_jsonl(tmp_path / "d" / "out_stats.jsonl") == read_jsonl(tmp_path / "l" / "out_stats.jsonl")
    # same per-OP table and totals as the local executor prints
    def op_table(text: str) -> list[list[str]]:  # index, op, rows left, removed, changed
        return [m.group(0).split() for m in re.finditer(r"^ *\d+  [a-z_]+ +\d+ +\d+ +\d+", text, re.M)]

    assert op_table(dag.stdout) == op_table(loc.stdout) and len(op_table(dag.stdout)) == 12
    assert "331 rows read, 1 bad, 275 written" in dag.stdout
    assert "dagster: run " in dag.stdout
    report = json.loads((tmp_path / "d" / "run_report.json").read_text())
    assert report["rows_out"] == 275
    assert [s["name"] for s in report["stages"]] == ["cleaned", "filtered", "deduped", "language"]
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage lives there
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()  # one run of the recipe's job over every partition, no run around it
        assert [(r.job_name, r.tags["dj/recipe"], r.tags["dj/trigger"]) for r in runs] == \
            [("demo_job", "demo", "dj-process")]
        assert runs[0].tags["dagster/asset_partition_range_end"] == "reviews_home.jsonl"


def test_engine_never_imports_dagster_and_local_cli_runs_without_it(tmp_path):
    """The command lines live in dj_assets; dj_ops imports neither Dagster nor dj_assets, and
    `dj-process --executor local` runs the engine without loading Dagster."""
    imported = set()
    for path in (REPO / "dj_ops").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {(path, a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add((path, node.module.split(".")[0]))
    assert not [(str(p), m) for p, m in imported if m in ("dagster", "dj_assets")]

    code = ("import sys; from dj_assets.cli import process_main; "
            f"rc = process_main(['--config', {str(DEMO / 'recipe.yaml')!r}, '--executor', 'local', '--no-progress', "
            f"'--export_path', {str(tmp_path / 'out.jsonl')!r}]); "
            "print('DAGSTER_LOADED', any(m == 'dagster' or m.startswith('dagster.') for m in sys.modules)); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DAGSTER_LOADED False" in proc.stdout and len(read_jsonl(tmp_path / "out.jsonl")) == 275


def test_console_scripts_name_the_command_lines():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"dj-process": "dj_assets.cli:process_main", "dj-analyze": "dj_assets.cli:analyze_main"}
    from dj_assets import cli

    assert callable(cli.process_main) and callable(cli.analyze_main)
