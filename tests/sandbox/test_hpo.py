"""HPO with optuna: a 5-trial study on tiny data, resumed, with a failing trial."""

from __future__ import annotations

import optuna
import pytest
import yaml

from sandbox_jobs.context import TrialContext, list_trials
from sandbox_jobs.hpo import load_hpo_config, open_study
from sandbox_jobs.loader import sandbox_from_dict
from sandbox_jobs.runner import SandboxRunner

from .conftest import needs_torch, tiny_sandbox

pytestmark = needs_torch

HPO = {
    "sweep_name": "tiny_study",
    "sweep_max_count": 5,
    "method": "bayes",
    "metric": {"name": "eval_model.perplexity", "goal": "minimize"},
    "parameters": {
        "analysis_ori_data.extra_configs.k": {"distribution": "uniform", "min": 0.5, "max": 3.0},
        "character_repetition_filter.rep_len": {"values": [3, 5, 8]},
    },
}


def test_five_trials_improve_or_match_the_first_and_are_all_recorded(tmp_path, messages):
    sandbox = sandbox_from_dict(tiny_sandbox(tmp_path, hpo_config=HPO), tmp_path)
    report = SandboxRunner(sandbox, log=messages.append).run()
    db = tmp_path / "work" / "hpo" / "tiny_study.db"
    assert db.is_file()
    study = optuna.load_study(study_name="tiny_study", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert study.best_value <= trials[0].value  # minimize: the best is at least as good as the first
    # every trial is on disk with the parameters the study proposed, and its scores
    records = list_trials(sandbox)
    assert [r.hpo_trial for r in records] == [0, 1, 2, 3, 4]
    for rec, t in zip(records, trials):
        assert rec.params == t.user_attrs["applied_params"] == t.params
        assert TrialContext(sandbox, rec.key).metrics()["eval_model.perplexity"] == pytest.approx(t.value)
    rows = report["trials"]
    assert [r["objective"] for r in rows] == pytest.approx([t.value for t in trials])
    best = min(rows, key=lambda r: r["objective"])
    assert report["best_trial"] == best["trial"] == f"trial_{study.best_trial.number:04d}"
    best_refined = TrialContext(sandbox, best["trial"]).infos["anonymous"][1]["refined_recipe_path"]
    assert yaml.safe_load(open(report["best_recipe"])) == yaml.safe_load(open(best_refined))
    # each trial's k reached its k-sigma job
    for rec in records:
        k = rec.params["analysis_ori_data.extra_configs.k"]
        assert any(f"{k}·std" in m for m in messages)

    # resumable: the same study continues up to a larger count, finished trials are not re-run
    more = sandbox_from_dict(tiny_sandbox(tmp_path, hpo_config={**HPO, "sweep_max_count": 6}), tmp_path)
    SandboxRunner(more, log=messages.append).run()
    study = open_study(load_hpo_config(more), more)
    assert len(study.get_trials()) == 6
    assert [r.key for r in list_trials(more)][:5] == [r.key for r in records]


def test_a_failing_trial_is_marked_failed_and_the_study_goes_on(tmp_path, messages):
    hpo = {"sweep_max_count": 2, "method": "grid", "metric": {"name": "eval_model.perplexity", "goal": "minimize"},
           "parameters": {"text_length_filter.min_len": {"values": [5, 100000]}}}  # 100000: no row survives
    sandbox = sandbox_from_dict(tiny_sandbox(tmp_path, hpo_config=hpo), tmp_path)
    report = SandboxRunner(sandbox, log=messages.append).run()
    states = sorted(r["state"] for r in report["trials"])
    assert states == ["COMPLETE", "FAIL"]
    failed = next(r for r in report["trials"] if r["state"] == "FAIL")
    assert failed["params"] == {"text_length_filter.min_len": 100000}
    assert any("failed: ValueError" in m for m in messages)
    assert report["best_trial"] == next(r["trial"] for r in report["trials"] if r["state"] == "COMPLETE")
