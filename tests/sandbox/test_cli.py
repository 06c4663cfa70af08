"""Command lines: ``python -m sandbox_jobs`` and ``dagster job execute`` of a trial job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sandbox_jobs.__main__ import main
from sandbox_jobs.definitions import REPO

from .conftest import needs_torch, tiny_sandbox

pytestmark = needs_torch


def write_config(tmp_path: Path, **over) -> Path:
    path = tmp_path / "configs" / "tiny_sandbox.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tiny_sandbox(tmp_path, **over), sort_keys=False))
    return path


def test_python_m_sandbox_jobs(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "--param", "words_num_filter.min_num=3"]) == 0
    out = capsys.readouterr().out
    assert "trial_0000  COMPLETE" in out and "words_num_filter.min_num=3" in out and "eval_model.perplexity" in out
    report = json.loads((tmp_path / "work" / "sandbox_report.json").read_text())
    assert report["trials"][0]["params"] == {"words_num_filter.min_num": 3}
    assert (tmp_path / "work" / "best_recipe.yaml").is_file()


def test_cli_reports_config_errors(tmp_path, capsys):
    cfg = write_config(tmp_path, max_iter=2)
    assert main(["--config", str(cfg)]) == 2
    assert "unknown key 'max_iter'" in capsys.readouterr().err


@pytest.mark.slow
def test_dagster_job_execute_runs_a_new_trial(tmp_path):
    cfg = write_config(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DJ_SANDBOX_DIR": str(cfg.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "sandbox_jobs.definitions", "-j", "tiny_sandbox_trial_job",
         "--tags", json.dumps({"dagster/partition": "cli_trial"})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout
    assert (tmp_path / "work" / "trials" / "cli_trial" / "steps" / "evaluate.json").is_file()


@pytest.mark.slow
def test_dagster_daemon_runs_a_trial_through_its_sensors(tmp_path, monkeypatch):
    """The real thing behind ``dagster dev``: a dagster-daemon process (sensor and run-queue daemons)
    on a fresh DAGSTER_HOME; the start sensor is switched on from the command line, and the daemon
    launches every step, each in its own run process, as the chain sensors ask."""
    import dagster as dg

    cfg = write_config(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    # the repository's instance configuration: its pooled SQLite storage shared by the daemon,
    # the run processes it launches and this test
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DJ_SANDBOX_DIR": str(cfg.parent)}
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    target = ["-m", "sandbox_jobs.definitions"]
    # create the SQLite storages first: the daemon and the CLI creating them at once race in
    # alembic's migration ("Can't locate revision" / CommandError)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_event(dg.AssetKey("none"))
    log = open(tmp_path / "daemon.log", "w")
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", *target],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = subprocess.run([sys.executable, "-m", "dagster", "sensor", "start", "tiny_sandbox_start_trials",
                                  *target], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr[-3000:]
        best = dg.AssetKey(["tiny_sandbox", "best_recipe"])
        deadline = time.monotonic() + 420
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.monotonic() < deadline and daemon.poll() is None:
                if instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=best), limit=1).records:
                    break
                time.sleep(3)
            runs = list(reversed(instance.get_runs()))  # oldest first
            jobs = [r.job_name for r in runs]
            failed = [r.job_name for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, (tmp_path / "daemon.log").read_text()[-3000:]
            assert instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=best), limit=1).records, (
                f"runs so far: {jobs}\n" + (tmp_path / "daemon.log").read_text()[-3000:])
            assert jobs == ["tiny_sandbox_probe_job", "tiny_sandbox_refine_job", "tiny_sandbox_process_job",
                            "tiny_sandbox_train_job", "tiny_sandbox_evaluate_job", "tiny_sandbox_best_recipe_job"]
            assert {r.tags.get("dagster/partition") for r in runs if "best_recipe" not in r.job_name} == {"trial_0000"}
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()
    assert (tmp_path / "work" / "trials" / "trial_0000" / "steps" / "evaluate.json").is_file()
