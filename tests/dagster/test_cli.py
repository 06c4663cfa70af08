"""The command lines: `dagster job execute` on a recipe job and `dj-process` through Dagster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from .conftest import DEMO, REPO, demo_recipe_dict, read_jsonl

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
def test_dagster_job_execute_every_partition_then_one(demo_data, tmp_path, monkeypatch):
    """`dagster job execute` (all, then a `dagster/partition` tag) and `dg launch --partition`."""
    folder = tmp_path / "recipes" / "democopy"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(demo_recipe_dict(demo_data, tmp_path)))
    env = _env(tmp_path, DJ_RECIPES_DIR=str(tmp_path / "recipes"))
    _run([f"{BIN}/dagster", "job", "execute", "-m", "dj_assets.definitions", "-j", "democopy_job"], tmp_path, env)
    out = read_jsonl(tmp_path / "out" / "demo.jsonl")
    assert len(out) == 275

    _run([f"{BIN}/dagster", "job", "execute", "-m", "dj_assets.definitions", "-j", "democopy_job",
          "--tags", json.dumps({"dagster/partition": "forum.jsonl"})], tmp_path, env)
    _run([f"{BIN}/dg", "launch", "--job", "democopy_job", "--partition", "reviews_home.jsonl"], tmp_path, env)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage lives there
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for key in ("forum.jsonl", "reviews_home.jsonl"):
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
            assert {r.job_name for r in runs} == {"democopy_job", "__ASSET_JOB"}
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert read_jsonl(tmp_path / "out" / "demo.jsonl") == out  # same input, same export


def test_dj_process_through_dagster_matches_local(tmp_path, monkeypatch):
    config = DEMO / "recipe.yaml"
    env = _env(tmp_path)
    dag = _run([f"{BIN}/dj-process", "--config", str(config), "--export_path", str(tmp_path / "d" / "out.jsonl")],
               tmp_path, env)
    loc = _run([f"{BIN}/dj-process", "--config", str(config), "--executor", "local",
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
        runs = instance.get_runs()  # one asset run, tagged with the recipe (no run of demo_job around it)
        assert [(r.job_name, r.tags["dj/recipe"], r.tags["dj/trigger"]) for r in runs] == \
            [("__ASSET_JOB", "demo", "dj-process")]
