"""Tiny sandboxes for the tests: a few dozen synthetic reviews, a tiny model, np=1."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
import yaml

#: tests that train a model need torch (the ``sandbox`` extra)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (pip install -e '.[sandbox]')")

WORDS = ("the movie was great and the plot moved fast but the actor looked bored in every scene while "
         "music carried a story that felt long yet fun with a terrible ending and good camera work").split()


def review_rows(n: int = 80, seed: int = 0) -> list[dict]:
    """Synthetic reviews: mostly ordinary, a few outliers (very long, symbol spam, tiny)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(12, 50))]
        text = " ".join(words).capitalize() + "."
        if i % 13 == 5:
            text = "$$$ !!! ### " * 12
        elif i % 19 == 7:
            text = " ".join(rng.choice(WORDS) for _ in range(400))
        elif i % 23 == 3:
            text = "ok"
        label = "pos" if rng.random() < 0.5 else "neg"
        rows.append({"text": text, "meta": {"split": "train" if i % 4 else "test", "label": label}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TINY_TRAIN = {
    "type": "transformer_lm",
    "tokenizer": {"type": "byte"},
    "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_seq_len": 32},
    "batch_size": 16,
    "epochs": 1,
    "threads": 1,
}

RECIPE = {
    "project_name": "tiny",
    "np": 1,
    "process": [
        {"text_length_filter": {"min_len": 5}},
        {"words_num_filter": {"min_num": 2}},
        {"special_characters_filter": {"max_ratio": 0.6}},
        {"character_repetition_filter": {"rep_len": 5, "max_ratio": 0.9}},
    ],
}


def tiny_sandbox(tmp_path: Path, baseline: bool = False, **overrides) -> dict:
    """A sandbox config dict like recipes/sandbox/imdb_sandbox.yaml, on tiny data in tmp_path."""
    source = write_jsonl(tmp_path / "source" / "reviews.jsonl", review_rows())
    work = tmp_path / "work"
    recipe = dict(RECIPE, dataset_path=str(work / "data" / "train.jsonl"), export_path=str(tmp_path / "out" / "tiny.jsonl"))
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    heldout = str(work / "data" / "heldout.jsonl")
    execution = [
        {"hook": "ProcessDataHook", "meta_name": "process", "input": {"dj_configs": "-1.refined_recipe_path"}},
        {"hook": "TrainModelHook", "meta_name": "train_model",
         "input": {"extra_configs.train_dataset": "-1.processed_dataset_path"}, "extra_configs": dict(TINY_TRAIN)},
    ]
    evaluation = [
        {"hook": "EvaluateDataHook", "meta_name": "eval_data",
         "input": {"extra_configs.dataset_path": "anonymous.process.processed_dataset_path"}},
        {"hook": "EvaluateModelHook", "meta_name": "eval_model",
         "input": {"extra_configs.model_path": "anonymous.train_model.model_path"},
         "extra_configs": {"eval_dataset": heldout, "threads": 1}},
    ]
    if baseline:
        execution.append({"hook": "TrainModel", "meta_name": "train_baseline",
                          "input": {"extra_configs.max_rows": "anonymous.process.rows_out"},
                          "extra_configs": dict(TINY_TRAIN, train_dataset=str(work / "data" / "train.jsonl"))})
        evaluation.append({"hook": "EvaluateModel", "meta_name": "eval_baseline",
                           "input": {"extra_configs.model_path": "anonymous.train_baseline.model_path"},
                           "extra_configs": {"eval_dataset": heldout, "threads": 1}})
    cfg = {
        "project_name": "tiny",
        "experiment_name": "tiny_sandbox",
        "work_dir": str(work),
        "prepare_data": {"source": str(source), "splits": {"train": {"rows": 60, "where": {"meta.split": "train"}},
                                                           "heldout": {"rows": 20, "where": {"meta.split": "test"}}}},
        "probe_job_configs": [{"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis_ori_data",
                               "dj_configs": str(recipe_path), "extra_configs": {"plots": False}}],
        "refine_recipe_job_configs": [{"hook": "RefineRecipeViaKSigmaHook", "meta_name": "analysis_ori_data",
                                       "output": "refined_recipe_path", "dj_configs": str(recipe_path),
                                       "extra_configs": {"k": 2.0}}],
        "execution_job_configs": execution,
        "evaluation_job_configs": evaluation,
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def messages() -> list[str]:
    """Log lines collected instead of printed: pass ``log=messages.append``."""
    return []
