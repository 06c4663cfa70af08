"""OP fusion: grouping, ordering on a probe of the upstream output, the plan the executor exposes,
and fused runs giving the same rows and stats as unfused ones."""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path

import pytest

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.engine import LocalExecutor
from dj_ops.engine.fusion import build_plan, filter_runs
from dj_ops.core.registry import OPERATORS, register
from tests.conftest import shared_path
from tests.test_executor import make_recipe, read_jsonl, write_jsonl

IMG = "<__dj__image>"


def _register_probe_ops():
    if "test_fusion_slow_filter" in OPERATORS:
        return

    @register("test_fusion_slow_filter")
    class SlowFilter(Filter):
        """Keeps everything (after a costly look at each row)."""

        stat_bounds = {"test_slow": ("min_v", None)}

        def __init__(self, min_v: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.min_v = min_v

        def compute_stats(self, batch: Batch) -> None:
            time.sleep(0.002 * len(batch))
            batch.stats["test_slow"] = [1] * len(batch)


_register_probe_ops()


def test_runs_of_consecutive_filters_are_the_fusion_units(tmp_path):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    process = [{"text_length_filter": None}, {"words_num_filter": None}, {"clean_email_mapper": None},
               {"alphanumeric_filter": None}, {"document_deduplicator": None}, {"special_characters_filter": None},
               {"average_line_length_filter": None}]
    ops = make_recipe(tmp_path, ds, process).build_ops()
    assert filter_runs(ops) == [[0, 1], [2], [3], [4], [5, 6]]
    plan = build_plan(ops, op_fusion=False)
    assert plan.order == list(range(7)) and not any(s.fused for s in plan.steps)


def test_probe_puts_cheap_selective_filters_first(tmp_path):
    texts = ["short"] * 30 + ["a much longer text that passes the length filter " * 3] * 10
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    process = [{"test_fusion_slow_filter": None}, {"words_num_filter": {"min_num": 1}},
               {"text_length_filter": {"min_len": 50}}]
    recipe = make_recipe(tmp_path, ds, process, op_fusion=True, batch_size=40)
    ex = LocalExecutor(recipe, progress=False, log=lambda m: None)
    plan = ex.plan()
    (step,) = plan["steps"]
    # text_length removes 75% cheaply; the slow filter removes nothing, so it goes last
    assert step["ops"][0] == "text_length_filter" and step["ops"][-1] == "test_fusion_slow_filter"
    assert step["probe"]["text_length_filter"]["pass_rate"] == pytest.approx(0.25)
    report = ex.run()
    assert [o["name"] for o in report.ops] == step["ops"]
    # the stats a row carries are written in recipe order whatever order the plan ran them in
    stats = [json.loads(line)["__dj__stats__"] for line in Path(report.stats_file).read_text().splitlines()]
    assert stats and all(list(s) == ["test_slow", "num_words", "text_len"] for s in stats)
    assert [o["rows_out"] for o in report.ops] == [10, 10, 10]
    assert report.plan == plan


def test_greedy_strategy_keeps_recipe_order(tmp_path):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello there"}])
    process = [{"test_fusion_slow_filter": None}, {"text_length_filter": None}]
    recipe = make_recipe(tmp_path, ds, process, op_fusion=True, fusion_strategy="greedy")
    plan = LocalExecutor(recipe, progress=False, log=lambda m: None).plan()
    assert plan["steps"][0]["ops"] == ["test_fusion_slow_filter", "text_length_filter"] and plan["probe_rows"] == 0


def test_text_chain_fused_equals_unfused_bit_for_bit(tmp_path, imdb_texts):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in imdb_texts[:600]])
    process = [{"words_num_filter": {"min_num": 50, "max_num": 400}}, {"word_repetition_filter": {"rep_len": 3, "max_ratio": 0.2}},
               {"stopwords_filter": {"min_ratio": 0.3}}, {"clean_email_mapper": None},
               {"text_length_filter": {"min_len": 300}}, {"average_line_length_filter": {"min_len": 100}},
               {"maximum_line_length_filter": {"max_len": 3000}}]
    out = {}
    for fused in (False, True):
        recipe = make_recipe(tmp_path / str(fused), ds, process, op_fusion=fused, batch_size=200, np=1)
        rep = LocalExecutor(recipe, progress=False, log=lambda m: None).run()
        out[fused] = (Path(rep.outputs[0]).read_text(), [json.loads(l) for l in Path(rep.stats_file).read_text().splitlines()])
    assert out[True][0] == out[False][0]
    assert out[True][1] == out[False][1]


# -- image chains ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.ops.tiny_vision_models import build_tiny_aesthetics, build_tiny_clip

    base = tmp_path_factory.mktemp("fusion-models")
    clip_dir = build_tiny_clip(base / "clip")
    return {"clip": str(clip_dir),
            "aesthetics": str(build_tiny_aesthetics(base / "aesthetics-predictor-v2-tiny-linear", tower_from=clip_dir))}


@pytest.fixture
def photos(tmp_path):
    folder = shared_path("images", "imagenet_sample")
    files = sorted(glob.glob(str(folder / "*.JPEG")))[:24]
    rows = [{"text": f"{IMG}a photo of a {Path(p).stem.split('_', 1)[1].replace('_', ' ')}", "images": [p]} for p in files]
    rows.insert(5, {"text": f"{IMG}gone", "images": [str(tmp_path / "missing.jpg")]})
    return write_jsonl(tmp_path / "photos.jsonl", rows)


def image_chain(tiny):
    return [{"image_aesthetics_filter": {"hf_scorer_model": tiny["aesthetics"], "min_score": -0.04, "max_score": 1.0}},
            {"image_text_similarity_filter": {"hf_clip": tiny["clip"], "min_score": 0.021}},
            {"image_aspect_ratio_filter": {"min_ratio": 1.2, "max_ratio": 2.0}},
            {"image_shape_filter": {"min_height": 340}}]


def run_chain(tmp_path, ds, process, fused, np_=1):
    recipe = make_recipe(tmp_path / f"f{fused}-np{np_}", ds, process, op_fusion=fused, batch_size=13, np=np_)
    rep = LocalExecutor(recipe, progress=False, log=lambda m: None).run()
    rows = read_jsonl(rep.outputs[0])
    stats = [json.loads(l)["__dj__stats__"] for l in Path(rep.stats_file).read_text().splitlines()]
    return rep, rows, stats


def assert_same_stats(a, b):
    """Header stats equal exactly; model stats to float32 rounding (the model sees each image in a
    micro-batch with other neighbours when rows are dropped in another order)."""
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        assert sa.keys() == sb.keys()
        for key in sa:
            if key in ("aspect_ratios", "image_width", "image_height"):
                assert sa[key] == sb[key]
            else:
                assert sa[key] == pytest.approx(sb[key], rel=1e-6, abs=1e-7)


def test_image_chain_fused_equals_unfused(tmp_path, tiny, photos):
    process = image_chain(tiny)
    rep_u, rows_u, stats_u = run_chain(tmp_path, photos, process, fused=False)
    rep_f, rows_f, stats_f = run_chain(tmp_path, photos, process, fused=True)
    assert 0 < len(rows_u) < 24
    # every filter removes something
    assert all(o["rows_out"] < o["rows_in"] for o in rep_u.ops)
    assert rows_f == rows_u
    assert_same_stats(stats_f, stats_u)
    assert rep_f.bad_rows == rep_u.bad_rows == 1
    (step,) = rep_f.plan["steps"]
    # the header-only filters first (which of the two leads depends on timings), the models last
    assert step["fused"] and set(step["ops"][:2]) == {"image_aspect_ratio_filter", "image_shape_filter"}
    models = {"image_aesthetics_filter", "image_text_similarity_filter"}
    assert set(step["sliced_ops"]) == models
    shared = [k for k in step["shared"] if k.startswith("clip_image_embeds")]
    assert shared and set(step["shared"][shared[0]]) == models
    assert rep_f.plan["devices"]["image_aesthetics_filter#0"] == "cpu float32"


def test_fused_group_embeds_each_image_once(tmp_path, tiny, photos, monkeypatch):
    from dj_ops.models import clip, runtime

    calls = {"n": 0}
    original = clip.Tower.embed

    def counting(self, pixel_values):
        calls["n"] += 1
        return original(self, pixel_values)

    monkeypatch.setattr(clip.Tower, "embed", counting)
    counts = {}
    for fused in (False, True):
        calls["n"] = 0
        rep = run_chain(tmp_path, photos, image_chain(tiny), fused=fused)[0]
        counts[fused] = calls["n"]
        runtime.release_models()
    # fused: the probe rows, then one pass over the rows reaching the models, in micro-batches
    # (at most one partial batch per chunk of 13 rows: two chunks)
    size = runtime.default_batch_size(runtime.Placement("cpu", "float32"))
    probe = -(-max(runtime.MIN_PROBE_ROWS, size) // size)
    into_models = next(o["rows_in"] for o in rep.ops if o["name"] == "image_aesthetics_filter")
    assert counts[True] <= probe + -(-into_models // size) + 1
    assert counts[True] < counts[False]


def test_plan_is_printed_and_available_without_running(tmp_path, tiny, photos):
    messages = []
    recipe = make_recipe(tmp_path, photos, image_chain(tiny), op_fusion=True, batch_size=13)
    ex = LocalExecutor(recipe, progress=False, log=messages.append)
    plan = ex.plan()
    assert plan["op_fusion"] and plan["probe_rows"] == 4  # one CPU micro-batch
    assert any("fused group of 4 filters" in m and "shares clip_image_embeds" in m for m in messages)
    assert set(plan["steps"][0]["probe"]) == {"image_aesthetics_filter", "image_text_similarity_filter",
                                             "image_aspect_ratio_filter", "image_shape_filter"}


@pytest.mark.slow
def test_image_chain_fused_equals_unfused_in_worker_processes(tmp_path, tiny, photos):
    process = image_chain(tiny)
    _, rows_u, stats_u = run_chain(tmp_path, photos, process, fused=False, np_=2)
    _, rows_f, stats_f = run_chain(tmp_path, photos, process, fused=True, np_=2)
    assert rows_f == rows_u
    assert_same_stats(stats_f, stats_u)


def test_cheap_filter_that_removed_nothing_on_a_small_probe_still_precedes_a_model_filter():
    from dj_ops.engine.fusion import _greedy_order

    measured = {0: {"cold_seconds": 16.0, "warm_seconds": 16.0, "pass_rate": 0.7, "rows": 16},  # a model filter
                1: {"cold_seconds": 0.001, "warm_seconds": 0.001, "pass_rate": 1.0, "rows": 16}}  # a header check
    assert _greedy_order([0, 1], {0: (), 1: ()}, measured) == [1, 0]
    # the smoothing does not override a clear measurement: equal costs, the selective one first
    measured[1].update(cold_seconds=16.0, warm_seconds=16.0)
    assert _greedy_order([0, 1], {0: (), 1: ()}, measured) == [0, 1]
