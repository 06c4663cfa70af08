"""Recipe loading and validation: everything fails before data is read, naming the key."""

from __future__ import annotations

import json

import pytest

from dj_assets.cli import analyze_main, process_main
from dj_ops.core.recipe import RecipeError, load_recipe, recipe_from_dict
from tests import testing_ops  # noqa: F401  (registers the test OPs)


def write(tmp_path, text: str):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named_with_suggestion(tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, "project_name: x\nexport_pth: out.jsonl\n"))
    assert "export_pth" in str(e.value) and "Did you mean 'export_path'" in str(e.value)


def test_wrong_type_names_key():
    with pytest.raises(RecipeError, match=r"key 'np'.*got 'many'"):
        recipe_from_dict({"np": "many"})
    with pytest.raises(RecipeError, match=r"'np'"):
        recipe_from_dict({"np": 0})


def test_unknown_op_and_param():
    with pytest.raises(RecipeError, match=r"unknown OP 'test_len_filtr'.*Did you mean 'test_len_filter'"):
        recipe_from_dict({"process": [{"test_len_filtr": None}]})
    with pytest.raises(RecipeError, match=r"process\[0\]\.test_len_filter: unknown parameter 'min_lenn'.*'min_len'"):
        recipe_from_dict({"process": [{"test_len_filter": {"min_lenn": 3}}]})
    with pytest.raises(RecipeError, match=r"process\[0\]\.test_len_filter\.min_len"):
        recipe_from_dict({"process": [{"test_len_filter": {"min_len": "three"}}]})


def test_data_juicer_op_not_implemented_is_reported_by_name():
    with pytest.raises(RecipeError, match="'video_captioning_from_audio_mapper' is a Data-Juicer OP that this project does not implement yet"):
        recipe_from_dict({"process": [{"video_captioning_from_audio_mapper": {}}]})


def test_recipes_run_no_code(tmp_path):
    with pytest.raises(RecipeError, match="custom_operator_paths"):
        recipe_from_dict({"custom_operator_paths": ["/tmp/evil.py"]})
    # a YAML tag that would build a Python object is refused by the safe loader
    p = write(tmp_path, "project_name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(p)


def test_process_entry_shapes():
    r = recipe_from_dict({"process": ["test_upper_mapper", {"test_len_filter": None}]})
    assert [s.name for s in r.process] == ["test_upper_mapper", "test_len_filter"]
    with pytest.raises(RecipeError, match="single"):
        recipe_from_dict({"process": [{"a": 1, "b": 2}]})


def test_global_keys_flow_into_ops():
    r = recipe_from_dict({"text_keys": ["content", "other"], "process": [{"test_len_filter": {"min_len": 2}}]})
    op = r.build_ops()[0]
    assert op.text_key == "content" and op.min_len == 2


def test_cli_overrides_and_outputs(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t in ["hello", "a", "world!"]) + "\n")
    recipe = write(tmp_path, f"project_name: cli\ndataset_path: {data}\nexport_path: {tmp_path}/x.jsonl\n"
                             "process:\n  - test_len_filter:\n      min_len: 1\n")
    out = tmp_path / "o" / "res.jsonl"
    rc = process_main(["--config", str(recipe), "--executor", "local", "--np", "1", "--export_path", str(out),
                       "--test_len_filter.min_len", "5", "--no-progress"])
    assert rc == 0
    assert [json.loads(l)["text"] for l in out.read_text().splitlines()] == ["hello", "world!"]
    report = json.loads((tmp_path / "o" / "run_report.json").read_text())
    assert report["rows_out"] == 2 and report["ops"][0]["rows_out"] == 2
    assert "2 written" in capsys.readouterr().out


def test_cli_reports_recipe_errors(tmp_path, capsys):
    recipe = write(tmp_path, "process:\n  - nope_filter:\n")
    assert process_main(["--config", str(recipe)]) == 2
    assert "unknown OP 'nope_filter'" in capsys.readouterr().err


def test_cli_missing_dataset_is_clear(tmp_path, capsys):
    recipe = write(tmp_path, f"dataset_path: {tmp_path}/missing.jsonl\nexport_path: {tmp_path}/o.jsonl\n")
    assert process_main(["--config", str(recipe), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_analyze_writes_overall_and_plots(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps({"text": "x" * n}) for n in range(1, 21)) + "\n")
    recipe = write(tmp_path, f"dataset_path: {data}\nexport_path: {tmp_path}/a/res.jsonl\npercentiles: [0.1]\n"
                             "process:\n  - test_upper_mapper:\n  - test_len_filter:\n      min_len: 10\n")
    assert analyze_main(["--config", str(recipe), "--no-progress"]) == 0
    import pandas as pd

    overall = pd.read_csv(tmp_path / "a" / "analysis" / "overall.csv", index_col=0)
    assert overall.loc["count", "test_len"] == 20
    assert overall.loc["mean", "test_len"] == pytest.approx(10.5)
    assert overall.loc["10%", "test_len"] == pytest.approx(2.9)
    assert (tmp_path / "a" / "analysis" / "test_len-hist.png").stat().st_size > 1000
    stats = [json.loads(l) for l in (tmp_path / "a" / "res_stats.jsonl").read_text().splitlines()]
    assert len(stats) == 20 and stats[0] == {"__dj__stats__": {"test_len": 1}}
