"""Splitting a recipe into stages: default split at global OPs, named stages, validation."""

from __future__ import annotations

import pytest

from dj_ops.core.recipe import RecipeError, recipe_from_dict
from dj_ops.engine.stages import plan_stages

from .testing_ops import _register_test_ops

_register_test_ops()

CHAIN = [{"test_upper_mapper": None}, {"test_len_filter": {"min_len": 2}}, {"test_exact_dedup": None},
         {"test_exact_dedup": None}, {"test_len_filter": None}]


def test_default_split_at_global_ops():
    stages = plan_stages(recipe_from_dict({"process": CHAIN}))
    assert [(s.name, s.op_names, s.is_global) for s in stages] == [
        ("stage1", ["test_upper_mapper", "test_len_filter"], False),
        ("stage2_test_exact_dedup", ["test_exact_dedup"], True),
        ("stage3_test_exact_dedup", ["test_exact_dedup"], True),
        ("stage4", ["test_len_filter"], False),
    ]
    assert stages[0].stats_keys == ("test_len",) and stages[1].stats_keys == ()
    assert not any(s.uses_gpu for s in stages)


def test_named_stages_by_count_or_names():
    recipe = recipe_from_dict({"process": CHAIN, "stages": [
        {"name": "clean", "ops": ["test_upper_mapper", "test_len_filter"], "min_keep_ratio": 0.5},
        {"name": "dedup", "ops": 3}]})
    stages = plan_stages(recipe)
    assert [(s.name, len(s.specs), s.is_global) for s in stages] == [("clean", 2, False), ("dedup", 3, True)]
    assert (stages[0].min_keep_ratio, stages[0].max_keep_ratio) == (0.5, 1.0)
    sub = stages[1].recipe(recipe, np=1)
    assert [s.name for s in sub.process] == ["test_exact_dedup", "test_exact_dedup", "test_len_filter"] and sub.np == 1


@pytest.mark.parametrize("stages, message", [
    ([{"name": "a", "ops": 2}], "cover 2 of the 5"),
    ([{"name": "a", "ops": 6}], "holds 6 OPs but only 5"),
    ([{"name": "a", "ops": ["test_len_filter"]}, {"name": "b", "ops": 4}], "do not match"),
    ([{"name": "export", "ops": 5}], "reserved"),
    ([{"name": "a", "ops": 1}, {"name": "a", "ops": 4}], "used twice"),
])
def test_invalid_stages(stages, message):
    with pytest.raises(RecipeError, match=message):
        plan_stages(recipe_from_dict({"process": CHAIN, "stages": stages}))


def test_stage_keys_are_validated_with_the_recipe():
    with pytest.raises(RecipeError, match="identifier"):
        recipe_from_dict({"process": CHAIN, "stages": [{"name": "bad name", "ops": 5}]})
    with pytest.raises(RecipeError, match="cron"):
        recipe_from_dict({"process": CHAIN, "schedule": "every day"})
    with pytest.raises(RecipeError, match="partition_rows"):
        recipe_from_dict({"process": CHAIN, "partition_rows": -1})


def test_recipe_without_ops_is_one_copy_stage():
    (stage,) = plan_stages(recipe_from_dict({}))
    assert (stage.name, stage.specs, stage.is_global) == ("stage1", (), False)
