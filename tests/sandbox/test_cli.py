"""Command lines: ``python -m sandbox_jobs`` and ``dagster job execute`` of a trial job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
