"""The instance's run queue for runs executed in place (dj-process, `dagster job execute`): a run
waits at its start while the limits of dagster.yaml for its tags are reached by earlier runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import dagster as dg
import psutil
import pytest
import yaml

from dj_assets.run_queue import PROCESS_TAG, blocked_by, this_process, wait_for_turn

from .conftest import DEMO, DJ_PROCESS, REPO, Log, read_jsonl

REPO_QUEUE = yaml.safe_load((REPO / ".dagster_home" / "dagster.yaml").read_text())["concurrency"]["runs"]


@dg.op
def noop():
    pass


@dg.job
def placeholder():
    noop()


@pytest.fixture
def queued_instance(tmp_path, monkeypatch):
    """An instance with the repository's run queue (one run per dj/recipe, 4 in all) and a
    `team` limit of 2 for value `data`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    runs = {**REPO_QUEUE, "tag_concurrency_limits": [*REPO_QUEUE["tag_concurrency_limits"],
                                                     {"key": "team", "value": "data", "limit": 2}]}
    with dg.instance_for_test(temp_dir=str(home), overrides={"concurrency": {"runs": runs}}) as inst:
        yield inst


def started(instance, **tags) -> dg.DagsterRun:
    return instance.create_run_for_job(placeholder, status=dg.DagsterRunStatus.STARTED, tags=tags)


def check(instance, run):
    return blocked_by(instance, run, instance.get_run_record_by_id(run.run_id).storage_id)


def test_limits_apply_to_earlier_runs_in_progress(queued_instance):
    inst = queued_instance
    first = started(inst, **{"dj/recipe": "a"})
    second = started(inst, **{"dj/recipe": "a"})
    blocked = check(inst, second)
    assert blocked.limit == "dj/recipe=a: 1" and [r.run_id for r in blocked.runs] == [first.run_id]
    assert check(inst, first) is None  # never waits for a later run
    other = started(inst, **{"dj/recipe": "b"})
    assert check(inst, other) is None  # another recipe
    inst.report_run_failed(first)
    assert check(inst, second) is None  # the earlier run ended
    for run in (second, other):
        inst.report_run_canceled(run)

    team = [started(inst, team="data") for _ in range(3)]
    assert check(inst, team[2]).limit == "team=data: 2"
    assert check(inst, started(inst, team="ml")) is None
    # 4 runs in progress before this one: the three of team data and the one of team ml
    assert check(inst, started(inst)).limit == "max_concurrent_runs: 4"


def test_a_run_whose_process_is_gone_is_failed_instead_of_waited_for(queued_instance):
    inst = queued_instance
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = psutil.Process(sleeper.pid)
        holder = started(inst, **{"dj/recipe": "a", PROCESS_TAG: f"{socket.gethostname()}:{proc.pid}:{proc.create_time():.2f}"})
        waiting = started(inst, **{"dj/recipe": "a", PROCESS_TAG: this_process()})
        assert check(inst, waiting).runs[0].run_id == holder.run_id
        sleeper.kill()
        sleeper.wait()
        log = Log()
        assert wait_for_turn(inst, inst.get_run_record_by_id(waiting.run_id), log, 0.05) < 5
        assert inst.get_run_by_id(holder.run_id).status == dg.DagsterRunStatus.FAILURE
        assert "is gone" in log.lines[0]
    finally:
        sleeper.kill()


@pytest.mark.slow
def test_dj_process_waits_for_a_run_of_the_same_recipe(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {**os.environ, "DJ_STORAGE_ROOT": str(tmp_path / "storage")}
    with dg.DagsterInstance.get() as instance:
        holder = started(instance, **{"dj/recipe": "demo", PROCESS_TAG: this_process()})
        export = tmp_path / "out" / "demo.jsonl"
        proc = subprocess.Popen([*DJ_PROCESS, "--config", str(DEMO / "recipe.yaml"), "--export_path",
                                 str(export)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            deadline = time.time() + 120
            while not [r for r in instance.get_runs() if r.job_name == "demo_job"]:
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.2)
            time.sleep(5)  # the run exists, started, and waits: nothing materialized
            (run,) = [r for r in instance.get_runs() if r.job_name == "demo_job"]
            assert run.status == dg.DagsterRunStatus.STARTED and run.tags["dj/recipe"] == "demo"
            assert not instance.fetch_materializations(dg.AssetKey(["demo", "cleaned"]), limit=1).records
            assert not export.exists()
            instance.report_run_canceled(holder)  # the other run of the recipe ends
            out, _ = proc.communicate(timeout=300)
        finally:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert f"waiting, the instance's limit dj/recipe=demo: 1 is reached by runs in progress ['{holder.run_id}']" in out
    assert "run queue: starting after" in out
    assert len(read_jsonl(export)) == 275
