"""k-sigma refinement against hand computations."""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from dj_ops.analyzer import Analyzer
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import load_recipe, recipe_from_dict
from sandbox_jobs.hooks import write_recipe
from sandbox_jobs.ksigma import refine_recipe_k_sigma

from .conftest import review_rows, write_jsonl


def overall(**stats: tuple[float, float]) -> pd.DataFrame:
    """An analyzer-like overall table: stats as columns, rows count/mean/std/..."""
    return pd.DataFrame({k: {"count": 10, "mean": m, "std": s, "min": 0.0, "max": 1.0} for k, (m, s) in stats.items()})


def params_of(recipe, name):
    return next(s.params for s in recipe.process if s.name == name)


def test_bounds_are_mean_plus_minus_k_std_mapped_through_stat_bounds():
    recipe = recipe_from_dict({"process": [
        {"clean_email_mapper": None},
        {"special_characters_filter": {"min_ratio": 0.0, "max_ratio": 0.25}},
        {"character_repetition_filter": {"rep_len": 10, "max_ratio": 0.5}},
        {"language_id_score_filter": {"lang": "en", "min_score": 0.8}},
    ]})
    df = overall(special_char_ratio=(0.2, 0.05), char_rep_ratio=(0.1, 0.02), lang_score=(0.9, 0.04))
    refined, changes = refine_recipe_k_sigma(recipe, df, k=3)
    sc = params_of(refined, "special_characters_filter")
    assert sc["min_ratio"] == pytest.approx(0.2 - 3 * 0.05) and sc["max_ratio"] == pytest.approx(0.2 + 3 * 0.05)
    cr = params_of(refined, "character_repetition_filter")
    assert cr == {"rep_len": 10, "min_ratio": pytest.approx(0.1 - 0.06), "max_ratio": pytest.approx(0.1 + 0.06)}
    # rep_len names no bound; only min_score bounds lang_score (no max parameter); lang is untouched
    lid = params_of(refined, "language_id_score_filter")
    assert lid == {"lang": "en", "min_score": pytest.approx(0.9 - 0.12)}
    assert refined.process[0].name == "clean_email_mapper" and refined.process[0].params == {}
    assert {(c.op, c.param) for c in changes} == {
        ("special_characters_filter", "min_ratio"), ("special_characters_filter", "max_ratio"),
        ("character_repetition_filter", "min_ratio"), ("character_repetition_filter", "max_ratio"),
        ("language_id_score_filter", "min_score")}


def test_integer_parameters_keep_exactly_the_rows_of_the_real_bounds():
    recipe = recipe_from_dict({"process": [
        {"text_length_filter": {"min_len": 10}},  # max_len left at sys.maxsize: rewritten too, as upstream
        {"words_num_filter": {"min_num": 5, "max_num": 100, "min_closed_interval": False, "max_closed_interval": False}},
    ]})
    df = overall(text_len=(100.0, 12.5), num_words=(20.0, 3.3))
    refined, _ = refine_recipe_k_sigma(recipe, df, k=2)
    tl = params_of(refined, "text_length_filter")
    assert tl == {"min_len": math.ceil(75.0), "max_len": math.floor(125.0)}  # integral: unchanged
    wn = params_of(refined, "words_num_filter")
    # bounds 13.4 and 26.6, exclusive: n > 13.4 <=> n > 13 ; n < 26.6 <=> n < 27
    assert (wn["min_num"], wn["max_num"]) == (13, 27)
    lo, hi = 20.0 - 2 * 3.3, 20.0 + 2 * 3.3
    for n in range(0, 40):
        assert (lo < n < hi) == (wn["min_num"] < n < wn["max_num"])
    refined3, _ = refine_recipe_k_sigma(recipe, overall(text_len=(100.0, 12.3)), k=2)
    tl3 = params_of(refined3, "text_length_filter")  # inclusive: ceil(75.4) = 76, floor(124.6) = 124
    assert (tl3["min_len"], tl3["max_len"]) == (76, 124)
    assert isinstance(tl3["min_len"], int)


def test_unseen_stats_nan_std_and_pinned_parameters_are_left_alone():
    recipe = recipe_from_dict({"process": [
        {"text_length_filter": {"min_len": 10, "max_len": 1000}},
        {"special_characters_filter": {"max_ratio": 0.25}},
        {"alphanumeric_filter": {"min_ratio": 0.5}},
    ]})
    df = overall(text_len=(50.0, float("nan")), special_char_ratio=(0.2, 0.01))
    refined, changes = refine_recipe_k_sigma(recipe, df, k=3, pinned={"special_characters_filter.max_ratio"})
    assert params_of(refined, "text_length_filter") == {"min_len": 10, "max_len": 1000}  # std NaN: skipped
    assert params_of(refined, "alphanumeric_filter") == {"min_ratio": 0.5}  # alnum_ratio not probed
    sc = params_of(refined, "special_characters_filter")
    assert sc["max_ratio"] == 0.25 and sc["min_ratio"] == pytest.approx(0.17)
    assert [c.pinned for c in changes if c.param == "max_ratio"] == [True]


def test_the_stat_comes_from_the_op_instance():
    # alphanumeric_filter bounds alpha_token_ratio when tokenization is on, alnum_ratio otherwise
    recipe = recipe_from_dict({"process": [{"alphanumeric_filter": {"tokenization": True, "min_ratio": 0.1}}]})
    df = overall(alnum_ratio=(0.8, 0.01), alpha_token_ratio=(1.2, 0.1))
    refined, _ = refine_recipe_k_sigma(recipe, df, k=1)
    p = params_of(refined, "alphanumeric_filter")
    assert p["min_ratio"] == pytest.approx(1.1) and p["max_ratio"] == pytest.approx(1.3)


def test_end_to_end_against_numpy_on_analyzer_output(tmp_path):
    rows = review_rows(60)
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    recipe = recipe_from_dict({"dataset_path": str(data), "export_path": str(tmp_path / "out" / "x.jsonl"), "np": 1,
                               "process": [{"text_length_filter": {"min_len": 1}}]})
    result = Analyzer(recipe, progress=False).run(plots=False)
    lengths = np.array([len(r["text"]) for r in rows], dtype=float)
    mean, std = lengths.mean(), lengths.std(ddof=1)  # pandas describe: sample std
    refined, _ = refine_recipe_k_sigma(recipe, result.overall, k=1.5)
    p = params_of(refined, "text_length_filter")
    assert p == {"min_len": math.ceil(mean - 1.5 * std), "max_len": math.floor(mean + 1.5 * std)}
    # the refined recipe is a runnable YAML artifact that keeps exactly the rows inside the real bounds
    path = tmp_path / "refined.yaml"
    write_recipe(refined, path)
    again = load_recipe(path)
    assert yaml.safe_load(path.read_text())["process"] == [{"text_length_filter": p}]
    report = LocalExecutor(again, progress=False, log=lambda m: None).run()
    expected = int(((lengths >= mean - 1.5 * std) & (lengths <= mean + 1.5 * std)).sum())
    assert report.rows_out == expected < len(rows)


def test_default_max_bound_is_rewritten_like_upstream():
    recipe = recipe_from_dict({"process": [{"text_length_filter": {"min_len": 10}}]})
    assert recipe.build_ops()[0].max_len == sys.maxsize
    refined, _ = refine_recipe_k_sigma(recipe, overall(text_len=(10.0, 1.0)), k=3)
    assert params_of(refined, "text_length_filter") == {"min_len": 7, "max_len": 13}
