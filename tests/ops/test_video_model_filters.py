"""Frame-based video filters (aesthetics, nsfw, frames-text similarity) on tiny random models and
synthetic videos, compared with a per-sample reference that follows Data-Juicer's code path (frames
sampled, then one model call per video / chunk); and the sharing of frames and embeddings between
the OPs of a fused group."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from dj_ops.core.batch import Batch  # noqa: E402
from dj_ops.models import clip, runtime  # noqa: E402
from dj_ops.ops.common import videos  # noqa: E402
from tests.helpers_ops import apply_to, make_op, run_op  # noqa: E402
from tests.ops.tiny_vision_models import build_tiny_model_set  # noqa: E402
from tests.ops.video_samples import write_video  # noqa: E402

VID = "<__dj__video>"
EOC = "<|__dj__eoc|>"
TOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def vids(tmp_path_factory):
    base = tmp_path_factory.mktemp("videos")
    return [str(write_video(base / "a.mp4", seconds=2, fps=12, gop=6)),
            str(write_video(base / "b.mp4", seconds=1.5, fps=10, size=(48, 64), gop=4)),
            str(write_video(base / "c.mp4", seconds=1, fps=8, size=(40, 40), gop=8))]


@pytest.fixture(autouse=True)
def fresh_models():
    yield
    runtime.release_models()


def sampled(path, method="uniform", n=3):
    return videos.sample_frames(path, method, n)


def ref_aesthetics(folder, sample_videos, method, n, reduce="avg"):
    from transformers import CLIPImageProcessor

    from dj_ops.models.aesthetics import AestheticsPredictorV2Linear

    model = AestheticsPredictorV2Linear.from_pretrained(folder).eval()
    proc = CLIPImageProcessor.from_pretrained(folder)
    out = []
    for paths in sample_videos:
        row = []
        for p in dict.fromkeys(paths):
            with torch.no_grad():
                scores = model(**proc(images=sampled(p, method, n), return_tensors="pt")) / 10.0
            row.append(float(getattr(scores, {"avg": "mean"}.get(reduce, reduce))()))
        out.append(row)
    return out


def ref_nsfw(folder, sample_videos, method, n):
    from transformers import AutoImageProcessor, ViTForImageClassification

    model = ViTForImageClassification.from_pretrained(folder).eval()
    proc = AutoImageProcessor.from_pretrained(folder, use_fast=False)
    out = []
    for paths in sample_videos:
        row = []
        for p in dict.fromkeys(paths):
            with torch.no_grad():
                logits = model(**proc(images=sampled(p, method, n), return_tensors="pt")).logits
            row.append(float(torch.softmax(logits, dim=-1)[:, 1].mean()))
        out.append(row)
    return out


def ref_similarity(folder, samples, method, n, reduce="avg"):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    proc = CLIPProcessor.from_pretrained(folder)
    out = []
    for s in samples:
        sims, offset = [], 0
        for chunk in s["text"].split(EOC):
            count = chunk.count(VID)
            if count == 0 or not chunk:
                continue
            text = chunk
            for tok in ("<__dj__image>", "<__dj__audio>", VID, EOC):
                text = text.replace(tok, "").strip()
            frames = [im for p in s["videos"][offset: offset + count] for im in sampled(p, method, n)]
            inputs = proc(text=text, images=frames, return_tensors="pt", truncation=True,
                          max_length=model.config.text_config.max_position_embeddings, padding=True)
            with torch.no_grad():
                logits = model(**inputs).logits_per_text / 100.0
            sims.append(float(getattr(logits, {"avg": "mean"}.get(reduce, reduce))()))
            offset += count
        out.append(sims)
    return out


def assert_close(got, want):
    assert [len(g) for g in got] == [len(w) for w in want]
    for g, w in zip(got, want):
        assert all(abs(a - b) <= TOL for a, b in zip(g, w)), (g, w)


@pytest.mark.parametrize("method, n, reduce", [("uniform", 3, "avg"), ("all_keyframes", 3, "max"),
                                               ("uniform", 1, "min")])
def test_aesthetics_matches_reference(models, vids, method, n, reduce):
    rows = [[vids[0]], [vids[1], vids[2], vids[1]], [], [vids[2]]]
    op = make_op("video_aesthetics_filter", hf_scorer_model=models["aesthetics"], frame_sampling_method=method,
                 frame_num=n, reduce_mode=reduce, min_score=-1e9, max_score=1e9)
    _, batch = run_op(op, [{"videos": r} for r in rows])
    got = batch.stats["video_frames_aesthetics_score"]
    assert_close(got, ref_aesthetics(models["aesthetics"], rows, method, n, reduce))
    # a threshold between the scores splits the samples
    cut = sorted(g[0] for g in got if g)[1]
    kept, _ = run_op(make_op("video_aesthetics_filter", hf_scorer_model=models["aesthetics"],
                             frame_sampling_method=method, frame_num=n, reduce_mode=reduce, min_score=cut,
                             max_score=1e9), [{"videos": r} for r in rows])
    assert [r["videos"] for r in kept] == [r for r, g in zip(rows, got) if not g or any(x >= cut for x in g)]


def test_nsfw_matches_reference(models, vids):
    rows = [[vids[0]], [vids[1], vids[2]]]
    op = make_op("video_nsfw_filter", hf_nsfw_model=models["vit"], min_score=0, max_score=1)
    _, batch = run_op(op, [{"videos": r} for r in rows])
    assert_close(batch.stats["video_nsfw_score"], ref_nsfw(models["vit"], rows, "all_keyframes", 3))


def test_frames_text_similarity_matches_reference(models, vids):
    samples = [
        {"text": f"{VID} a square moving right", "videos": [vids[0]]},
        {"text": f"{VID}{VID} two clips {EOC} no video here {EOC}{VID} last one", "videos": vids},
        {"text": "no videos at all", "videos": []},
    ]
    for method in ("all_keyframes", "uniform"):
        op = make_op("video_frames_text_similarity_filter", hf_clip=models["clip"], frame_sampling_method=method,
                     min_score=-1e9, max_score=1e9)
        _, batch = run_op(op, samples)
        assert_close(batch.stats["video_frames_text_similarity"], ref_similarity(models["clip"], samples, method, 3))


def test_bad_videos_are_bad_rows(models, vids, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    rows = [[vids[0]], [str(broken)], [str(tmp_path / "missing.mp4"), vids[1]]]
    op = make_op("video_aesthetics_filter", hf_scorer_model=models["aesthetics"], min_score=-1e9, max_score=1e9)
    res = apply_to(op, [{"videos": r} for r in rows])
    bad = {row.row_id: row.reason for row in res.set_aside}
    assert sorted(bad) == [1, 2] and "broken.mp4" in bad[1] and "not found" in bad[2]
    assert res.batch.row_ids.tolist() == [0] and len(res.batch.stats["video_frames_aesthetics_score"][0]) == 1


def test_fused_ops_share_frames_and_embeddings(models, vids, monkeypatch):
    decoded, embedded = [], []
    real_sample = videos.sample_frames
    monkeypatch.setattr(videos, "sample_frames", lambda *a: decoded.append(a) or real_sample(*a))
    real_embed = clip.Tower.embed
    monkeypatch.setattr(clip.Tower, "embed", lambda self, px: embedded.append(len(px)) or real_embed(self, px))
    samples = [{"text": f"{VID} clip {i}", "videos": [v]} for i, v in enumerate(vids)]
    params = dict(frame_sampling_method="uniform", frame_num=3, min_score=-1e9, max_score=1e9)
    aes = make_op("video_aesthetics_filter", hf_scorer_model=models["aesthetics"], **params)
    sim = make_op("video_frames_text_similarity_filter", hf_clip=models["clip"], **params)
    nsfw = make_op("video_nsfw_filter", hf_nsfw_model=models["vit"], **params)
    batch = Batch.from_rows(samples)
    batch.shared_slice = True  # one slice of a fused group: the OPs share its intermediates
    for op in (aes, sim, nsfw):
        op.ensure_stats(batch)
    assert len(decoded) == 3  # each video decoded once for the three OPs
    fused_passes, embedded[:] = list(embedded), []
    alone = Batch.from_rows(samples)
    sim.ensure_stats(alone)
    assert fused_passes == embedded  # the tower ran for one OP only: the other reused its embeddings
    assert_close(batch.stats["video_frames_text_similarity"], alone.stats["video_frames_text_similarity"])
    assert sim.intermediate_keys()[:2] == aes.intermediate_keys()[:2]
