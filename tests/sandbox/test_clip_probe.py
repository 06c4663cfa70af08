"""The image-text model: a linear probe on CLIP image embeddings (a tiny random CLIP), and an
image sandbox trial end to end (image folder -> probe -> k-sigma -> process -> probe -> accuracy)."""

from __future__ import annotations

import json
import random
import re

import pytest
import yaml

from sandbox_jobs.clip_probe import EMBED_ROWS
from sandbox_jobs.config import SandboxConfigError
from sandbox_jobs.data import prepare_data
from sandbox_jobs.loader import sandbox_from_dict
from sandbox_jobs.models import EvalSettings, TrainSettings, evaluate_model, train_model
from sandbox_jobs.runner import SandboxRunner

from .conftest import needs_torch, write_jsonl

pytestmark = needs_torch


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.ops.tiny_vision_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def make_images(folder, n: int, seed: int = 0, sizes=((40, 40),)) -> list[tuple[str, str]]:
    """Noisy reddish or bluish pictures named ``<red|blue>_<i>.png``: (path, colour)."""
    from PIL import Image

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        colour = "red" if i % 2 == 0 else "blue"
        w, h = sizes[i % len(sizes)]
        img = Image.new("RGB", (w, h))
        px = img.load()
        for x in range(w):
            for y in range(h):
                hot, cold = rng.randint(150, 255), rng.randint(0, 110)
                px[x, y] = (hot, rng.randint(0, 255), cold) if colour == "red" else (cold, rng.randint(0, 255), hot)
        path = folder / f"{colour}_{seed}_{i:03d}.png"
        img.save(path)
        out.append((str(path), colour))
    return out


def probe_settings(data, clip, **over) -> TrainSettings:
    return TrainSettings(**{"type": "clip_linear_probe", "train_dataset": str(data), "clip": {"model": str(clip)},
                            "epochs": 30, "lr": 0.05, "batch_size": 16, "threads": 1, **over})


def rows_of(images) -> list[dict]:
    return [{"text": f"a {c} picture", "images": [p], "meta": {"label": c}} for p, c in images]


def test_probe_learns_labels_from_clip_embeddings(tmp_path, tiny_clip):
    train = rows_of(make_images(tmp_path / "img", 24, seed=0))
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(b"not a png")
    train.append({"text": "broken", "images": [str(broken)], "meta": {"label": "red"}})
    train.append({"text": "no label", "images": [train[0]["images"][0]], "meta": {}})
    data = write_jsonl(tmp_path / "train.jsonl", train)
    held = write_jsonl(tmp_path / "held.jsonl", rows_of(make_images(tmp_path / "held", 12, seed=1)))
    logs: list[str] = []
    cache = tmp_path / "emb"
    a = train_model(probe_settings(data, tiny_clip), tmp_path / "a", tmp_path / "tok", logs.append, embedding_cache=cache)
    # the unreadable image and the row without a label are left out and counted, not fatal
    assert a["train_rows"] == 24 and a["source_rows"] == 26 and a["skipped_rows"] == 2
    assert any("without a usable image" in m for m in logs)
    assert any("embedded 24 images" in m for m in logs)
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["labels"] == ["blue", "red"] and meta["label_counts"] == {"blue": 12, "red": 12}
    assert meta["embed_dim"] == 16  # the tiny CLIP's projection

    # seeded, and the second run reads every embedding from the cache
    logs.clear()
    b = train_model(probe_settings(data, tiny_clip), tmp_path / "b", tmp_path / "tok", logs.append, embedding_cache=cache)
    assert a["final_train_loss"] == b["final_train_loss"] and not any("embedded" in m for m in logs)
    c = train_model(probe_settings(data, tiny_clip, seed=7), tmp_path / "c", tmp_path / "tok", logs.append,
                    embedding_cache=cache)
    assert c["final_train_loss"] != a["final_train_loss"]

    e = evaluate_model(EvalSettings(model_path=a["model_path"], eval_dataset=str(held)), logs.append, cache)
    assert e["eval_rows"] == 12 and e["majority_accuracy"] == 0.5
    assert e["accuracy"] >= 0.9  # colour survives even a random CLIP tower
    uncached = evaluate_model(EvalSettings(model_path=a["model_path"], eval_dataset=str(held)), logs.append, None)
    assert uncached["accuracy"] == e["accuracy"] and uncached["eval_loss"] == pytest.approx(e["eval_loss"], abs=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        evaluate_model(EvalSettings(model_path=a["model_path"], eval_dataset=str(held), type="perplexity"))


def test_probe_embeddings_do_not_depend_on_batching(tmp_path, tiny_clip):
    from sandbox_jobs.clip_probe import image_embeddings

    refs = [p for p, _ in make_images(tmp_path / "img", EMBED_ROWS + 3, seed=2, sizes=((40, 40), (64, 30)))]
    whole, errors = image_embeddings(refs, str(tiny_clip), "cpu", None, log=lambda m: None)
    tail, _ = image_embeddings(refs[EMBED_ROWS:], str(tiny_clip), "cpu", None, log=lambda m: None)
    assert errors == [None] * len(refs)
    assert all((x == y).all() for x, y in zip(whole[EMBED_ROWS:], tail))


def test_probe_needs_two_labels(tmp_path, tiny_clip):
    rows = [r for r in rows_of(make_images(tmp_path / "img", 6)) if r["meta"]["label"] == "red"]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(ValueError, match="at least two distinct labels"):
        train_model(probe_settings(data, tiny_clip), tmp_path / "m", tmp_path / "tok", log=lambda m: None)


IMAGE_RECIPE = {"project_name": "tiny-images", "np": 1,
                "process": [{"image_aspect_ratio_filter": {"min_ratio": 0.1, "max_ratio": 10}}, {"image_shape_filter": {}}]}


def image_sandbox(tmp_path, clip) -> dict:
    """Like recipes/sandbox/imagenet_clip_sandbox.yaml on a folder of generated pictures: mostly
    square, a few wide ones for k-sigma to remove."""
    folder = tmp_path / "pictures"
    make_images(folder, 40, seed=3, sizes=((40, 40),) * 9 + ((120, 24),))
    (folder / "notes.txt").write_text("not an image")
    (folder / "unnamed.png").write_bytes((folder / "red_3_000.png").read_bytes())  # no match: left out
    work = tmp_path / "work"
    recipe = dict(IMAGE_RECIPE, dataset_path=str(work / "data" / "train.jsonl"))
    probe = {"type": "clip_linear_probe", "clip": {"model": str(clip)}, "epochs": 30, "lr": 0.05, "batch_size": 16,
             "threads": 1}
    held = str(work / "data" / "heldout.jsonl")
    return {
        "project_name": "tiny-images", "work_dir": str(work),
        "prepare_data": {"source": str(folder),
                         "image_folder": {"name_pattern": r"(?P<colour>red|blue)_(?P<seed>\d+)_(?P<index>\d+)",
                                          "text": "a {colour} picture",
                                          "label": {"field": "colour", "bins": {"blue": "b", "red": "r"}}},
                         "splits": {"train": {"rows": 28}, "heldout": {"rows": 12}}},
        "probe_job_configs": [{"hook": "ProbeViaAnalyzer", "meta_name": "probe", "dj_configs": recipe,
                               "extra_configs": {"plots": False}}],
        "refine_recipe_job_configs": [{"hook": "RefineRecipeViaKSigma", "meta_name": "probe", "dj_configs": recipe,
                                       "extra_configs": {"k": 1.0}}],
        "execution_job_configs": [
            {"hook": "ProcessData", "meta_name": "process", "input": {"dj_configs": "-1.refined_recipe_path"}},
            {"hook": "TrainModel", "meta_name": "train_model",
             "input": {"extra_configs.train_dataset": "-1.processed_dataset_path"}, "extra_configs": probe},
            {"hook": "TrainModel", "meta_name": "train_baseline", "input": {"extra_configs.max_rows": "anonymous.process.rows_out"},
             "extra_configs": dict(probe, train_dataset=str(work / "data" / "train.jsonl"))},
        ],
        "evaluation_job_configs": [
            {"hook": "EvaluateModel", "meta_name": "eval_model",
             "input": {"extra_configs.model_path": "anonymous.train_model.model_path"},
             "extra_configs": {"eval_dataset": held}},
            {"hook": "EvaluateModel", "meta_name": "eval_baseline",
             "input": {"extra_configs.model_path": "anonymous.train_baseline.model_path"},
             "extra_configs": {"eval_dataset": held}},
        ],
    }


def test_image_sandbox_trial_end_to_end(tmp_path, tiny_clip, messages):
    sandbox = sandbox_from_dict(image_sandbox(tmp_path, tiny_clip), tmp_path)
    report = SandboxRunner(sandbox, log=messages.append).run()
    (row,) = report["trials"]
    assert row["state"] == "COMPLETE"
    m = row["metrics"]
    prepared = json.loads((tmp_path / "work" / "data" / "prepared.json").read_text())
    assert prepared["rows"] == {"train": 28, "heldout": 12}
    first = json.loads((tmp_path / "work" / "data" / "train.jsonl").read_text().splitlines()[0])
    assert first["text"] in ("a red picture", "a blue picture") and first["meta"]["label"] == first["meta"]["colour"]
    assert first["images"][0].startswith(str(tmp_path / "pictures"))
    # k-sigma on the aspect ratios removes the wide pictures; both models train on as many rows
    kept = m["process.rows_out"]
    assert 0 < kept < 28 and m["process.removed_by.image_aspect_ratio_filter"] > 0
    assert m["train_model.train_rows"] == kept == m["train_baseline.train_rows"]
    for name in ("eval_model", "eval_baseline"):
        assert m[f"{name}.eval_rows"] == 12 and 0 <= m[f"{name}.accuracy"] <= 1
    # each image is embedded once: the baseline and the second evaluation read the cache
    embedded = [int(re.search(r"embedded (\d+) images", msg).group(1)) for msg in messages if "embedded" in msg]
    assert sum(embedded) <= 40 and len(embedded) <= 3


def test_image_folder_config_errors(tmp_path):
    cfg = image_sandbox(tmp_path, tmp_path / "no-model")
    cfg["prepare_data"]["image_folder"]["label"]["field"] = "color"
    with pytest.raises(SandboxConfigError, match="not a named group"):
        sandbox_from_dict(cfg, tmp_path)
    cfg["prepare_data"]["image_folder"]["label"]["field"] = "colour"
    cfg["prepare_data"]["image_folder"]["text"] = "a {shade} picture"
    with pytest.raises(SandboxConfigError, match="named groups"):
        sandbox_from_dict(cfg, tmp_path)
    cfg["prepare_data"]["image_folder"]["text"] = "{colour}"
    cfg["prepare_data"]["source"] = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        prepare_data(sandbox_from_dict(cfg, tmp_path), log=lambda m: None)


def test_bundled_imagenet_sandbox_config_loads():
    from sandbox_jobs.definitions import REPO
    from sandbox_jobs.loader import load_sandbox_config

    cfg = load_sandbox_config(REPO / "recipes" / "sandbox" / "imagenet_clip_sandbox.yaml", REPO)
    assert cfg.prepare_data.image_folder.label.label("n01440764") == "animal"
    assert cfg.prepare_data.image_folder.label.label("n02655020") == "animal"  # puffer, the last animal class
    assert cfg.prepare_data.image_folder.label.label("n02666196") == "other"  # abacus
    assert yaml.safe_load((REPO / "recipes" / "sandbox" / "imagenet_clip_sandbox.yaml").read_text())
