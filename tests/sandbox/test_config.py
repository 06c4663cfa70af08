"""Sandbox config validation: every mistake is named, with the closest valid choice."""

from __future__ import annotations

import pytest
import yaml

from sandbox_jobs.config import SandboxConfigError
from sandbox_jobs.definitions import REPO
from sandbox_jobs.hpo import load_hpo_config
from sandbox_jobs.loader import load_sandbox_config, sandbox_from_dict

from .conftest import tiny_sandbox


def check(cfg: dict, tmp_path, *fragments: str) -> None:
    with pytest.raises(SandboxConfigError) as exc:
        sandbox_from_dict(cfg, tmp_path)
    for f in fragments:
        assert f in str(exc.value), str(exc.value)


def test_valid_config_resolves_hooks_steps_and_defaults(tmp_path):
    cfg = sandbox_from_dict(tiny_sandbox(tmp_path, baseline=True), tmp_path)
    assert [j.hook for j in cfg.jobs] == ["ProbeViaAnalyzer", "RefineRecipeViaKSigma", "ProcessData", "TrainModel",
                                         "TrainModel", "EvaluateData", "EvaluateModel", "EvaluateModel"]
    assert [j.step for j in cfg.jobs] == ["probe", "refine", "process", "train", "train", "evaluate", "evaluate", "evaluate"]
    assert cfg.name == "tiny_sandbox" and cfg.max_iter_num == 1 and load_hpo_config(cfg) is None


def test_bundled_imdb_configs_are_valid():
    for name in ("imdb_sandbox.yaml", "imdb_hpo_sandbox.yaml"):
        cfg = load_sandbox_config(REPO / "recipes" / "sandbox" / name, REPO)
        assert cfg.probe_job_configs and cfg.evaluation_job_configs


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    check({**cfg, "probe_jobs_configs": []}, tmp_path, "unknown key 'probe_jobs_configs'", "Did you mean 'probe_job_configs'")
    cfg["probe_job_configs"][0]["meta_nmae"] = "x"
    check(cfg, tmp_path, "probe_job_configs[0]", "unknown key 'meta_nmae'", "'meta_name'")


def test_unsupported_upstream_keys_say_so(tmp_path):
    check({**tiny_sandbox(tmp_path), "pipelines": []}, tmp_path, "'pipelines'", "not supported")


def test_hooks_unknown_and_not_implemented(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["probe_job_configs"][0]["hook"] = "ProbeViaAnalyser"
    check(cfg, tmp_path, "unknown hook 'ProbeViaAnalyser'", "Did you mean 'ProbeViaAnalyzer'")
    cfg["probe_job_configs"][0]["hook"] = "ProbeViaModelInferHook"
    check(cfg, tmp_path, "Data-Juicer hook this project does not implement")


def test_extra_configs_are_validated_by_the_hook_including_nested_keys(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["execution_job_configs"][1]["extra_configs"]["tokenizer"] = {"type": "bpe", "vocab_sise": 500}
    check(cfg, tmp_path, "execution_job_configs[1].extra_configs", "'tokenizer.vocab_sise'", "'vocab_size'")
    cfg = tiny_sandbox(tmp_path)
    cfg["refine_recipe_job_configs"][0]["extra_configs"] = {"k": -1}
    check(cfg, tmp_path, "refine_recipe_job_configs[0].extra_configs.k", "greater than 0")
    cfg = tiny_sandbox(tmp_path)
    cfg["execution_job_configs"][0]["extra_configs"] = {"anything": 1}
    check(cfg, tmp_path, "ProcessData takes no 'extra_configs'")


def test_recipes_are_validated_like_recipes(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["probe_job_configs"][0]["dj_configs"] = {"process": [{"text_length_filter": {"min_lne": 3}}]}
    check(cfg, tmp_path, "probe_job_configs[0].dj_configs", "unknown parameter 'min_lne'", "'min_len'")
    cfg["probe_job_configs"][0]["dj_configs"] = str(tmp_path / "missing.yaml")
    check(cfg, tmp_path, "file not found")
    cfg["probe_job_configs"][0]["dj_configs"] = None
    check(cfg, tmp_path, "ProbeViaAnalyzer needs a recipe")


def test_input_references_are_checked(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["execution_job_configs"][1]["input"] = {"extra_configs.train_dataset": "-1.processed_path"}
    check(cfg, tmp_path, "has no result 'processed_path'", "Did you mean 'processed_dataset_path'")
    cfg["execution_job_configs"][1]["input"] = {"extra_configs.train_dataset": "anonymous.proces.processed_dataset_path"}
    check(cfg, tmp_path, "no earlier job with meta_name 'proces'", "Did you mean 'process'")
    cfg["execution_job_configs"][1]["input"] = {"extra_config.train_dataset": "-1.processed_dataset_path"}
    check(cfg, tmp_path, "must start with 'dj_configs' or 'extra_configs'")
    cfg = tiny_sandbox(tmp_path)
    cfg["probe_job_configs"][0]["input"] = {"dj_configs.dataset_path": "-1.x"}
    check(cfg, tmp_path, "this is the first job")


def test_output_renames_results_in_order(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["execution_job_configs"][0]["output"] = ["data_path"]
    cfg["execution_job_configs"][1]["input"] = {"extra_configs.train_dataset": "-1.data_path"}
    cfg["evaluation_job_configs"][0]["input"] = {"extra_configs.dataset_path": "anonymous.process.data_path"}
    sandbox_from_dict(cfg, tmp_path)
    cfg["execution_job_configs"][0]["output"] = ["a", "b", "c", "d"]
    check(cfg, tmp_path, "ProcessData has 3 result(s)")


def test_k_sigma_needs_a_probe_of_that_name(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["refine_recipe_job_configs"][0]["meta_name"] = "analysis_original"
    check(cfg, tmp_path, "no ProbeViaAnalyzer job has that meta_name", "'analysis_ori_data'")


def test_data_hooks_come_before_model_hooks(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["execution_job_configs"].reverse()
    check(cfg, tmp_path, "execution_job_configs", "before")


def test_paths_are_relative_to_base_dir(tmp_path):
    cfg = tiny_sandbox(tmp_path)
    cfg["work_dir"] = "rel/work"
    assert sandbox_from_dict(cfg, tmp_path).work_dir == str(tmp_path / "rel" / "work")


def test_hpo_config_validation(tmp_path):
    good = {"sweep_max_count": 3, "method": "random", "metric": {"name": "eval_model.perplexity", "goal": "minimize"},
            "parameters": {"text_length_filter.min_len": {"min": 5, "max": 50},
                           "analysis_ori_data.extra_configs.k": {"min": 1.0, "max": 3.0}}}
    hpo = load_hpo_config(sandbox_from_dict(tiny_sandbox(tmp_path, hpo_config=good), tmp_path))
    assert hpo.parameters["text_length_filter.min_len"].kind == "int_uniform"
    assert hpo.parameters["analysis_ori_data.extra_configs.k"].kind == "uniform"
    cases = [
        ({**good, "early_terminate": {"type": "hyperband"}}, ["'early_terminate'", "not supported"]),
        ({**good, "metric": {"name": "eval_modle.perplexity"}}, ["metric.name", "Did you mean 'eval_model'"]),
        ({**good, "parameters": {"text_lenght_filter.min_len": {"min": 1, "max": 2}}}, ["OP 'text_lenght_filter' is in no job recipe", "'text_length_filter'"]),
        ({**good, "parameters": {"text_length_filter.min_lne": {"min": 1, "max": 2}}}, ["no parameter 'min_lne'", "'min_len'"]),
        ({**good, "parameters": {"analysis_ori_data.extra_configs.kk": {"min": 1, "max": 2}}}, ["no job named 'analysis_ori_data' has the setting 'kk'"]),
        ({**good, "parameters": {"text_length_filter.min_len": {"min": 5, "max": 1}}}, ["min 5 > max 1"]),
        ({**good, "parameters": {"text_length_filter.min_len": {"mn": 5}}}, ["unknown key 'mn'", "'min'"]),
        ({**good, "method": "grid"}, ["'grid' needs 'values'"]),
    ]
    for hpo_cfg, fragments in cases:
        check(tiny_sandbox(tmp_path, hpo_config=hpo_cfg), tmp_path, *fragments)
    check(tiny_sandbox(tmp_path, hpo_config=good, max_iter_num=3), tmp_path, "exclude each other")


def test_hpo_config_from_a_file(tmp_path):
    path = tmp_path / "hpo.yaml"
    path.write_text(yaml.safe_dump({"metric": {"name": "eval_data.distinct_2"},
                                    "parameters": {"words_num_filter.min_num": {"values": [2, 4]}}}))
    hpo = load_hpo_config(sandbox_from_dict(tiny_sandbox(tmp_path, hpo_config="hpo.yaml"), tmp_path))
    assert hpo.metric.goal == "maximize" and hpo.parameters["words_num_filter.min_num"].kind == "categorical"


def test_iteration_keys(tmp_path):
    check(tiny_sandbox(tmp_path, iter_targets=["eval_data.rows ~ 3"]), tmp_path, "iter_targets", "is not")
    check(tiny_sandbox(tmp_path, iter_updater={"anonymous.process.rows_out": "anonymous.train_model.max_rows"}),
          tmp_path, "iter_updater", "dj_configs|extra_configs")
    cfg = sandbox_from_dict(tiny_sandbox(tmp_path, max_iter_num=2, iter_targets=["anonymous.eval_data.rows >= 1e3"]), tmp_path)
    assert cfg.max_iter_num == 2
