"""Model-based image filters on tiny random models (built from transformers configs, saved to a
folder and loaded the way users load theirs), compared with a straightforward per-sample reference
that follows Data-Juicer's code path (one forward pass per sample / chunk)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dj_ops.core.batch import Batch  # noqa: E402
from dj_ops.models import clip, runtime  # noqa: E402
from dj_ops.ops.common import images  # noqa: E402
from dj_ops.ops.common.models import ModelLoadError  # noqa: E402
from tests.conftest import shared_path  # noqa: E402
from tests.helpers_ops import apply_to, make_op, run_op  # noqa: E402
from tests.ops.tiny_vision_models import build_tiny_aesthetics, build_tiny_model_set  # noqa: E402

IMG = "<__dj__image>"
EOC = "<|__dj__eoc|>"
TOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    return {**build_tiny_model_set(base),
            "aesthetics_own_tower": str(build_tiny_aesthetics(base / "own-tower-v2-linear", seed=5))}


@pytest.fixture(autouse=True)
def fresh_models():
    yield
    runtime.release_models()


@pytest.fixture
def pics():
    d = shared_path("dj_testdata", "tests", "ops", "data")
    return {n: str(d / n) for n in ("cat.jpg", "img1.png", "img2.jpg", "img3.jpg", "lena.jpg")}


# -- references (Data-Juicer's per-sample path) ---------------------------------------------------


def ref_aesthetics(folder, sample_paths, divide=True):
    from transformers import CLIPImageProcessor

    from dj_ops.models.aesthetics import AestheticsPredictorV2Linear

    model = AestheticsPredictorV2Linear.from_pretrained(folder).eval()
    proc = CLIPImageProcessor.from_pretrained(folder)
    out = []
    for paths in sample_paths:
        imgs = [images.decode(p) for p in dict.fromkeys(paths)]
        if not imgs:
            out.append([])
            continue
        with torch.no_grad():
            logits = model(**proc(images=imgs, return_tensors="pt"))
        out.append([float(v) for v in (logits / 10.0 if divide else logits)])
    return out


def ref_classifier(folder, sample_paths):
    from transformers import AutoImageProcessor, ViTForImageClassification

    model = ViTForImageClassification.from_pretrained(folder).eval()
    proc = AutoImageProcessor.from_pretrained(folder, use_fast=False)
    out = []
    for paths in sample_paths:
        imgs = [images.decode(p) for p in dict.fromkeys(paths)]
        if not imgs:
            out.append([])
            continue
        with torch.no_grad():
            logits = model(**proc(images=imgs, return_tensors="pt")).logits
        out.append([float(s[1]) for s in torch.softmax(logits, dim=-1)])
    return out


def ref_similarity(folder, samples, reduce="avg", hflip=False, vflip=False):
    from PIL import ImageOps
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    proc = CLIPProcessor.from_pretrained(folder)
    out = []
    for s in samples:
        sims, offset = [], 0
        for chunk in s["text"].split(EOC):
            count = chunk.count(IMG)
            if count == 0 or not chunk:
                continue
            text = chunk
            for tok in (IMG, "<__dj__audio>", "<__dj__video>", EOC):
                text = text.replace(tok, "").strip()
            imgs = []
            for p in s["images"][offset: offset + count]:
                img = images.decode(p)
                img = ImageOps.mirror(img) if hflip else img
                imgs.append(ImageOps.flip(img) if vflip else img)
            inputs = proc(text=text, images=imgs, return_tensors="pt", truncation=True,
                          max_length=model.config.text_config.max_position_embeddings, padding=True)
            with torch.no_grad():
                logits = model(**inputs).logits_per_text / 100.0
            sims.append(float({"avg": logits.mean, "max": logits.max, "min": logits.min}[reduce]()))
            offset += count
        out.append(sims)
    return out


def assert_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        assert all(abs(a - b) <= TOL for a, b in zip(g, w)), (g, w)


# -- aesthetics ------------------------------------------------------------------------------------


def test_aesthetics_matches_per_sample_reference(models, pics):
    samples = [[pics["cat.jpg"]], [pics["img1.png"], pics["img2.jpg"], pics["img1.png"]], [], [pics["lena.jpg"]]]
    op = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9, max_score=1e9)
    _, batch = run_op(op, [{"images": s} for s in samples])
    got = batch.stats["image_aesthetics_scores"]
    assert [len(g) for g in got] == [1, 2, 0, 1]  # one score per distinct image, as Data-Juicer
    assert_close(got, ref_aesthetics(models["aesthetics"], samples))


def test_aesthetics_divides_by_ten_only_for_laion_predictors(models, pics):
    samples = [[pics["cat.jpg"]]]
    op = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics_own_tower"])
    assert op.divide_by_ten is False
    _, batch = run_op(op, [{"images": s} for s in samples])
    assert_close(batch.stats["image_aesthetics_scores"], ref_aesthetics(models["aesthetics_own_tower"], samples, False))


def test_aesthetics_keep_rule_any_all(models, pics):
    samples = [{"images": [pics[n]]} for n in ("cat.jpg", "img1.png", "img2.jpg", "img3.jpg", "lena.jpg")]
    _, batch = run_op(make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"],
                              min_score=-1e9, max_score=1e9), samples)
    scores = sorted(s[0] for s in batch.stats["image_aesthetics_scores"])
    cut = (scores[1] + scores[2]) / 2
    kept, _ = run_op(make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=cut), samples)
    assert len(kept) == 3
    both = [{"images": [pics["cat.jpg"], pics["img1.png"], pics["img2.jpg"], pics["img3.jpg"], pics["lena.jpg"]]}]
    assert len(run_op(make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=cut,
                              any_or_all="any"), both)[0]) == 1
    assert len(run_op(make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=cut,
                              any_or_all="all"), both)[0]) == 0


def test_predictor_parameter_names_match_published_checkpoints(models):
    from dj_ops.models.aesthetics import AestheticsPredictorV2Linear, predictor_class

    model = AestheticsPredictorV2Linear.from_pretrained(models["aesthetics"])
    head = {k for k in model.state_dict() if k.startswith("layers.")}
    assert head == {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}
    assert predictor_class("shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE", None) is AestheticsPredictorV2Linear
    with pytest.raises(ValueError, match="not an aesthetics predictor"):
        predictor_class("some/model", ["CLIPModel"])


# -- classifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op_name,param,stat", [("image_nsfw_filter", "hf_nsfw_model", "image_nsfw_score"),
                                                ("image_watermark_filter", "hf_watermark_model", "image_watermark_prob")])
def test_classifier_matches_per_sample_reference(models, pics, op_name, param, stat):
    samples = [[pics["cat.jpg"]], [pics["img2.jpg"], pics["img3.jpg"]], [], [pics["lena.jpg"]] * 2]
    _, batch = run_op(make_op(op_name, **{param: models["vit"]}), [{"images": s} for s in samples])
    assert_close(batch.stats[stat], ref_classifier(models["vit"], samples))


def test_image_bytes_are_used_when_present(models, pics):
    from pathlib import Path

    blob = Path(pics["cat.jpg"]).read_bytes()
    op = make_op("image_nsfw_filter", hf_nsfw_model=models["vit"])
    _, batch = run_op(op, [{"images": [pics["cat.jpg"]]}, {"images": ["not-on-disk.jpg"], "image_bytes": [blob]}])
    by_path, by_bytes = batch.stats["image_nsfw_score"]
    # same pixels; batched fp32 kernels may differ in the last bits between batch positions
    assert by_path == pytest.approx(by_bytes, abs=1e-5) and not batch.bad


def test_watermark_keeps_probabilities_up_to_the_threshold(models, pics):
    samples = [{"images": [pics[n]]} for n in ("cat.jpg", "img2.jpg", "img3.jpg", "lena.jpg")]
    _, batch = run_op(make_op("image_watermark_filter", hf_watermark_model=models["vit"]), samples)
    probs = [p[0] for p in batch.stats["image_watermark_prob"]]
    threshold = sorted(probs)[1]
    kept, _ = run_op(make_op("image_watermark_filter", hf_watermark_model=models["vit"], prob_threshold=threshold),
                     samples)
    assert len(kept) == 2  # closed bound: the sample at the threshold stays


# -- image-text similarity -------------------------------------------------------------------------


def its_samples(p):
    return [
        {"text": f"{IMG}a photo of a cat", "images": [p["cat.jpg"]]},
        {"text": f"{IMG}a photo of a cat {EOC} {IMG}a photo of a dog {EOC}", "images": [p["cat.jpg"], p["cat.jpg"]]},
        {"text": f"{IMG}a photo of a cat {IMG} {EOC}", "images": [p["cat.jpg"], p["img3.jpg"]]},
        {"text": f"no image token here {EOC} {IMG} lena", "images": [p["lena.jpg"], p["img1.png"]]},
        {"text": "plain text", "images": []},
    ]


@pytest.mark.parametrize("reduce,hflip,vflip", [("avg", False, False), ("max", True, True)])
def test_similarity_matches_per_chunk_reference(models, pics, reduce, hflip, vflip):
    samples = its_samples(pics)
    op = make_op("image_text_similarity_filter", hf_clip=models["clip"], reduce_mode=reduce,
                 horizontal_flip=hflip, vertical_flip=vflip, min_score=-1.0)
    _, batch = run_op(op, samples)
    got = batch.stats["image_text_similarity"]
    assert [len(g) for g in got] == [1, 2, 1, 1, 0]
    assert_close(got, ref_similarity(models["clip"], samples, reduce, hflip, vflip))


def test_similarity_marks_rows_with_too_few_images_bad(models, pics):
    batch = Batch.from_rows([{"text": f"{IMG}one {EOC}{IMG} two", "images": [pics["cat.jpg"]]},
                             {"text": f"{IMG}ok", "images": [pics["cat.jpg"]]}])
    make_op("image_text_similarity_filter", hf_clip=models["clip"]).compute_stats(batch)
    assert list(batch.bad) == [0] and "more image tokens" in batch.bad[0]
    assert len(batch.stats["image_text_similarity"][1]) == 1


def test_similarity_rejects_unknown_reduce_mode(models):
    with pytest.raises(ValueError, match="reduce_mode"):
        make_op("image_text_similarity_filter", hf_clip=models["clip"], reduce_mode="median")


# -- sharing one CLIP tower ------------------------------------------------------------------------


def test_identical_towers_are_shared_and_embeddings_computed_once(models, pics):
    aes = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9)
    its = make_op("image_text_similarity_filter", hf_clip=models["clip"], min_score=-1.0)
    own = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics_own_tower"], min_score=-1e9)
    keys_aes, keys_its, keys_own = aes.intermediate_keys(), its.intermediate_keys(), own.intermediate_keys()
    assert keys_aes == keys_its  # same tower weights and preprocessing
    assert keys_own[2] != keys_aes[2]
    assert aes._predictor().model.vision_model is its._clip().model.vision_model  # one copy in memory

    batch = Batch.from_rows([{"text": f"{IMG}a cat", "images": [pics["cat.jpg"]]},
                             {"text": f"{IMG}a dog", "images": [pics["img2.jpg"]]}])
    calls = []
    tower = clip.adopt_tower(aes._predictor(), aes._predictor().model.config)
    original = tower.embed
    tower.embed = lambda px: calls.append(len(px)) or original(px)
    try:
        batch.shared_slice = True  # one slice of a fused group: the OPs share its intermediates
        aes.compute_stats(batch)
        by_first = list(calls)
        its.compute_stats(batch)
    finally:
        tower.embed = original
    assert by_first and calls == by_first  # the second OP reuses the first one's tower passes


def test_worker_memory_counts_a_shared_tower_once(models):
    from dj_ops.engine.placement import CONTEXT_BYTES, measure_worker_bytes

    def ops():
        return [make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"]),
                make_op("image_text_similarity_filter", hf_clip=models["clip"])]

    aes_alone, its_alone = (measure_worker_bytes([op]) - CONTEXT_BYTES for op in ops())
    both = measure_worker_bytes(ops()) - CONTEXT_BYTES
    assert aes_alone > 0 and its_alone > 0
    # the vision tower is resident once: both together need less than the two apart
    assert max(aes_alone, its_alone) <= both < aes_alone + its_alone
    assert not runtime.loaded_models()  # measured, then released


# -- model runtime ---------------------------------------------------------------------------------


def test_offline_error_names_op_model_and_setting(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelLoadError) as err:
        make_op("image_nsfw_filter", hf_nsfw_model="someone/not-downloaded")
    msg = str(err.value)
    assert "image_nsfw_filter" in msg and "someone/not-downloaded" in msg and "`hf_nsfw_model`" in msg
    assert "DATA_JUICER_EXTERNAL_MODELS_HOME" in msg
    with pytest.raises(ModelLoadError, match="does not exist"):
        make_op("image_aesthetics_filter", hf_scorer_model=str(tmp_path / "nowhere" / "model"))


def test_models_resolve_under_data_juicer_models_home(monkeypatch, models):
    import pathlib

    home = pathlib.Path(models["vit"]).parent
    monkeypatch.setenv(runtime.EXTERNAL_MODELS_HOME_ENV, str(home))
    assert runtime.resolve_model("vit", op_name="x", param="p") == str(home / "vit")


def test_model_is_loaded_once_per_process(models):
    op1 = make_op("image_nsfw_filter", hf_nsfw_model=models["vit"])
    op2 = make_op("image_watermark_filter", hf_watermark_model=models["vit"])
    assert op1.load_models()[0] is op2.load_models()[0]
    report = runtime.memory_report()
    assert len(report) == 1 and report[0]["weight_bytes"] > 0 and report[0]["device"] == "cpu"
    assert report[0]["dtype"] == "float32"


def test_out_of_memory_halves_the_batch_and_retries():
    loaded = runtime.LoadedModel(("k",), None, None, runtime.Placement("cpu", "float32"), "fake")
    infer = runtime.BatchedInference(loaded, batch_size=8)
    seen = []

    def forward(x):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return x * 2

    rows = [torch.tensor([float(i)]) for i in range(7)]
    out = infer.run(infer.chunks(rows), forward, lambda xs, n: runtime.pad_stack(xs, n, loaded.where))
    assert [float(o) for o in out] == [2.0 * i for i in range(7)]
    assert infer.batch_size == 2 and seen[:3] == [8, 4, 2]


def test_prefetch_overlaps_and_propagates_errors():
    assert list(runtime.prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        list(runtime.prefetched(broken()))


def test_fixed_size_padding_keeps_results_independent_of_neighbours(models, pics):
    # the same image embedded among different neighbours gives the same embedding
    op = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9)
    a = run_op(op, [{"images": [pics["cat.jpg"]]}, {"images": [pics["img2.jpg"]]}])[1]
    b = run_op(op, [{"images": [pics["lena.jpg"]]}, {"images": [pics["img3.jpg"]]}, {"images": [pics["cat.jpg"]]}])[1]
    assert abs(a.stats["image_aesthetics_scores"][0][0] - b.stats["image_aesthetics_scores"][2][0]) < 1e-6


@pytest.mark.gpu
def test_cuda_placement_uses_half_precision_and_measures_memory(models, pics):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    op = make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9)
    where = op.placement()
    assert where.is_cuda and where.dtype in ("bfloat16", "float16")
    _, batch = run_op(op, [{"images": [pics["cat.jpg"]]}, {"images": [pics["img2.jpg"]]}])
    ref = ref_aesthetics(models["aesthetics"], [[pics["cat.jpg"]], [pics["img2.jpg"]]])
    for got, want in zip(batch.stats["image_aesthetics_scores"], ref):
        assert abs(got[0] - want[0]) < 5e-2  # bf16 tower
    (loaded,) = op.load_models()
    assert loaded.load_bytes > 0 and max(loaded.activation_bytes.values()) > 0


@pytest.mark.gpu
def test_cuda_worker_planning(models):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from dj_ops.engine.placement import gpu_workers, measure_worker_bytes

    ops = [make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"]),
           make_op("image_nsfw_filter", hf_nsfw_model=models["vit"])]
    need = measure_worker_bytes(ops)
    assert need > 0
    n = gpu_workers(ops, requested=4, log=lambda m: None)
    assert 1 <= n <= max(4, torch.cuda.device_count())
    ops[0].mem_required = "1000GB"  # a declared need caps the worker count
    assert gpu_workers(ops, requested=4, log=lambda m: None) == torch.cuda.device_count()


def test_missing_truncated_and_oversized_images_are_set_aside_by_model_filters(models, pics, tmp_path):
    from tests.ops.test_image_filters import _png_header_only

    truncated = tmp_path / "truncated.jpg"
    whole = open(pics["cat.jpg"], "rb").read()
    truncated.write_bytes(whole[: len(whole) // 2])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(50_000, 50_000))
    rows = [{"images": [pics["cat.jpg"]]}, {"images": [str(tmp_path / "missing.jpg")]},
            {"images": [str(truncated)]}, {"images": [str(bomb)]}, {"images": [pics["lena.jpg"]]}]
    for op in (make_op("image_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9),
               make_op("image_nsfw_filter", hf_nsfw_model=models["vit"])):
        res = apply_to(op, rows)
        bad = {row.row_id: row.reason for row in res.set_aside}
        assert sorted(bad) == [1, 2, 3], op.name
        assert ["not found" in bad[1], "truncated" in bad[2], "decompression bomb" in bad[3]] == [True] * 3
        assert res.scored.row_ids.tolist() == [0, 4] and all(len(v) == 1 for v in res.scored.stats[op.stats_keys[0]])
