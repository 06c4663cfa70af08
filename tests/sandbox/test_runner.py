"""Whole trials on tiny data: probe -> refine -> process -> train -> evaluate, on disk."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from dj_ops.core.recipe import load_recipe
from sandbox_jobs.context import TrialContext, list_trials
from sandbox_jobs.loader import sandbox_from_dict
from sandbox_jobs.runner import SandboxRunner

from .conftest import needs_torch, tiny_sandbox

pytestmark = needs_torch


def test_one_trial_end_to_end(tmp_path, messages):
    sandbox = sandbox_from_dict(tiny_sandbox(tmp_path, baseline=True), tmp_path)
    report = SandboxRunner(sandbox, log=messages.append).run()
    (row,) = report["trials"]
    assert row["trial"] == "trial_0000" and row["state"] == "COMPLETE" and row["params"] == {}
    m = row["metrics"]
    # data prepared once: 60 train rows, 20 held out
    prepared = json.loads((tmp_path / "work" / "data" / "prepared.json").read_text())
    assert prepared["rows"] == {"train": 60, "heldout": 20}
    # probe stats -> k-sigma -> processing keeps fewer rows, and the baseline trains on as many raw rows
    assert m["analysis_ori_data.text_len.count"] == 60
    kept = m["process.rows_out"]
    assert 0 < kept < 60 and m["process.rows_in"] == 60 and m["process.keep_ratio"] == pytest.approx(kept / 60)
    assert sum(v for k, v in m.items() if k.startswith("process.removed_by.")) == 60 - kept
    assert m["train_model.train_rows"] == kept and m["train_baseline.train_rows"] == kept
    assert m["train_baseline.source_rows"] == 60
    assert m["eval_data.rows"] == kept and 0 < m["eval_data.distinct_2"] <= 1 and m["eval_data.vocab_size"] > 10
    for name in ("eval_model", "eval_baseline"):
        assert m[f"{name}.eval_rows"] == 20 and math.isfinite(m[f"{name}.perplexity"]) and m[f"{name}.bits_per_byte"] > 0
    # Data-Juicer's context infos: one entry per job, in order, with the named results
    ctx = TrialContext(sandbox, "trial_0000")
    infos = ctx.infos["anonymous"]
    assert [j["meta_name"] for j in infos] == ["analysis_ori_data", "analysis_ori_data", "process", "train_model",
                                               "train_baseline", "eval_data", "eval_model", "eval_baseline"]
    refined = load_recipe(infos[1]["refined_recipe_path"])
    text_len = refined.process[0].params  # bounds came from the stats, not the base recipe (min_len 5)
    assert text_len["min_len"] != 5 and text_len["max_len"] < 10_000
    assert {c["op"] for c in infos[1]["bound_changes"]} == {s.name for s in refined.process}
    # the best recipe is the refined one, and the report is on disk
    best = yaml.safe_load(open(report["best_recipe"]))
    assert best["process"] == yaml.safe_load(open(infos[1]["refined_recipe_path"]))["process"]
    assert json.loads(open(report["report_path"]).read())["best_trial"] == "trial_0000"


def test_a_step_run_again_replaces_its_results(tmp_path, messages):
    sandbox = sandbox_from_dict(tiny_sandbox(tmp_path), tmp_path)
    runner = SandboxRunner(sandbox, log=messages.append)
    record = runner.create_trial()
    for step in ("probe", "refine", "process"):
        runner.run_step(record.key, step)
    before = TrialContext(sandbox, record.key).infos["anonymous"]
    runner.run_step(record.key, "refine")
    after = TrialContext(sandbox, record.key).infos["anonymous"]
    assert [j["job"] for j in after] == ["probe_job_configs[0]", "execution_job_configs[0]", "refine_recipe_job_configs[0]"]
    assert len(after) == len(before)
    assert not runner.trial_complete(record.key)
    # the probe's stats survive a re-run of the refine job that shares its meta_name
    assert TrialContext(sandbox, record.key).query("analysis_ori_data") is not None


def test_trial_parameters_reach_recipes_and_pin_k_sigma(tmp_path, messages):
    sandbox = sandbox_from_dict(tiny_sandbox(tmp_path), tmp_path)
    runner = SandboxRunner(sandbox, log=messages.append)
    runner.run(params={"text_length_filter.min_len": 7, "analysis_ori_data.extra_configs.k": 1.0,
                       "character_repetition_filter.rep_len": 3})
    ctx = TrialContext(sandbox, "trial_0000")
    refined = load_recipe(ctx.infos["anonymous"][1]["refined_recipe_path"])
    params = {s.name: s.params for s in refined.process}
    assert params["text_length_filter"]["min_len"] == 7  # pinned by the trial: k-sigma left it
    assert params["character_repetition_filter"]["rep_len"] == 3
    changes = ctx.infos["anonymous"][1]["bound_changes"]
    assert [c["pinned"] for c in changes if c["param"] == "min_len"] == [True]
    assert any("1.0·std" in m for m in messages)  # k came from the trial


def test_iterations_update_configs_and_stop_at_targets(tmp_path, messages):
    cfg = tiny_sandbox(tmp_path, max_iter_num=3,
                       iter_updater={"anonymous.process.rows_out": "anonymous.train_model.extra_configs.max_rows"},
                       iter_targets=["anonymous.eval_data.rows > 1000"])
    # a cheaper trial: no model evaluation
    cfg["evaluation_job_configs"] = cfg["evaluation_job_configs"][:1]
    sandbox = sandbox_from_dict(cfg, tmp_path)
    SandboxRunner(sandbox, log=messages.append).run()
    trials = list_trials(sandbox)
    assert [t.key for t in trials] == ["trial_0000", "trial_0001", "trial_0002"]
    kept = TrialContext(sandbox, "trial_0000").metrics()["process.rows_out"]
    assert trials[1].params == {"train_model.extra_configs.max_rows": kept}
    # a target met after the first iteration stops the loop
    cfg2 = dict(cfg, work_dir=str(tmp_path / "work2"), iter_targets=["anonymous.eval_data.rows >= 1", "eval_data.rows < 0"],
                iter_targets_mode="any")
    sandbox2 = sandbox_from_dict(cfg2, tmp_path)
    SandboxRunner(sandbox2, log=messages.append).run()
    assert [t.key for t in list_trials(sandbox2)] == ["trial_0000"]
    assert any("targets met" in m for m in messages)


def test_resume_skips_finished_steps(tmp_path, messages):
    cfg = tiny_sandbox(tmp_path, resume=True)
    sandbox = sandbox_from_dict(cfg, tmp_path)
    runner = SandboxRunner(sandbox, log=messages.append)
    record = runner.create_trial()
    runner.run_step(record.key, "probe")
    messages.clear()
    runner.run_trial(record)
    assert any("step probe: done before, skipped" in m for m in messages)
    assert runner.trial_complete(record.key)
