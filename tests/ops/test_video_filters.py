"""Header-based video filters (duration, resolution, aspect ratio), motion score and frame sampling.

The cases on ``video1-3.mp4`` are Data-Juicer's own unit tests (tests/ops/filter/test_video_*.py):
same inputs, parameters and kept samples.  The reference values were computed with Data-Juicer
1.6.1 itself (bench/.venv-dj, av 13.1.0): ``get_video_duration``, ``extract_key_frames``,
``extract_video_frames_uniformly`` and ``VideoMotionScoreFilter._compute_motion_scores_from_video``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from dj_ops.core.batch import Batch  # noqa: E402
from dj_ops.ops.common import videos  # noqa: E402
from tests.helpers_ops import apply_to, make_op, run_op  # noqa: E402
from tests.ops.video_samples import dj_video, write_video  # noqa: E402

# Data-Juicer 1.6.1 on the test videos: duration (s), (width, height), key frame seconds, the
# seconds of the frames uniform sampling picks (frame_num 3), motion score (defaults)
# and the sum of the RGB values of those frames
DJ_REFERENCE = {
    "video1.mp4": dict(duration=11.75, size=(640, 360), keyframes=[0.0, 6.0, 9.875],
                       uniform3=[0.0, 5.875, 11.708333333333334], uniform3_sums=[102621048, 117915006, 126272604],
                       motion=1.8693169907977183),
    "video2.mp4": dict(duration=23.166666666666668, size=(480, 640),
                       keyframes=[0.0, 10.416666666666666, 20.833333333333332],
                       uniform3=[0.0, 11.583333333333334, 23.125], uniform3_sums=[144399930, 146934799, 138538466],
                       motion=3.5211110192727535),
    "video3.mp4": dict(duration=49.583333333333336, size=(362, 640),
                       keyframes=[0.0, 4.291666666666667, 14.708333333333334, 25.125, 35.541666666666664,
                                  45.958333333333336],
                       uniform3=[0.0, 24.791666666666668, 49.541666666666664],
                       uniform3_sums=[85933119, 80428066, 84687535], motion=1.1731419868394732),
}


@pytest.fixture
def v():
    return {i: dj_video(f"video{i}.mp4") for i in (1, 2, 3)}


def kept(op, samples):
    rows, _ = run_op(op, samples)
    return [r["videos"] for r in rows]


def singles(v):
    return [{"videos": [v[1]]}, {"videos": [v[2]]}, {"videos": [v[3]]}]


def pairs(v):
    return [{"videos": [v[1], v[2]]}, {"videos": [v[2], v[3]]}, {"videos": [v[1], v[3]]}]


# -- video_duration_filter (upstream test_video_duration_filter.py) ------------------------------


def test_duration_stats_match_data_juicer(v):
    _, batch = run_op(make_op("video_duration_filter"), singles(v) + [{"videos": [v[1], v[1]]}, {"videos": []}])
    want = [[DJ_REFERENCE[f"video{i}.mp4"]["duration"]] for i in (1, 2, 3)]
    assert batch.stats["video_duration"] == want + [want[0] * 2, []]


@pytest.mark.parametrize("params, expect", [
    ({}, [1, 2, 3]),
    ({"max_duration": 15}, [1]),
    ({"min_duration": 30}, [3]),
    ({"min_duration": 16, "max_duration": 42}, [2]),
    ({"min_duration": 15, "max_duration": 30}, [2]),
])
def test_duration_filter(v, params, expect):
    assert kept(make_op("video_duration_filter", **params), singles(v)) == [[v[i]] for i in expect]


@pytest.mark.parametrize("mode, expect", [("any", [[1, 2], [2, 3]]), ("all", [])])
def test_duration_any_all(v, mode, expect):
    op = make_op("video_duration_filter", min_duration=15, max_duration=30, any_or_all=mode)
    assert kept(op, pairs(v)) == [[v[i] for i in pair] for pair in expect]


# -- video_resolution_filter (upstream test_video_resolution_filter.py) --------------------------


def test_resolution_stats(v):
    _, batch = run_op(make_op("video_resolution_filter"), singles(v))
    sizes = [DJ_REFERENCE[f"video{i}.mp4"]["size"] for i in (1, 2, 3)]
    assert batch.stats["video_width"] == [[w] for w, _ in sizes]
    assert batch.stats["video_height"] == [[h] for _, h in sizes]


@pytest.mark.parametrize("params, expect", [
    ({}, [1, 2, 3]),
    ({"min_width": 480, "min_height": 480}, [2]),
    ({"max_width": 640, "max_height": 480}, [1]),
    ({"min_width": 400, "max_width": 500}, [2]),
])
def test_resolution_filter(v, params, expect):
    assert kept(make_op("video_resolution_filter", **params), singles(v)) == [[v[i]] for i in expect]


@pytest.mark.parametrize("mode, expect", [("any", [[1, 2], [2, 3]]), ("all", [])])
def test_resolution_any_all(v, mode, expect):
    op = make_op("video_resolution_filter", min_width=400, max_width=500, any_or_all=mode)
    assert kept(op, pairs(v)) == [[v[i] for i in pair] for pair in expect]


# -- video_aspect_ratio_filter (upstream test_video_aspect_ratio_filter.py) ----------------------


def test_aspect_ratio_filter(v):
    _, batch = run_op(make_op("video_aspect_ratio_filter"), singles(v))
    assert batch.stats["video_aspect_ratios"] == [[640 / 360], [480 / 640], [362 / 640]]
    assert kept(make_op("video_aspect_ratio_filter"), singles(v)) == [[v[1]], [v[2]], [v[3]]]
    op = make_op("video_aspect_ratio_filter", min_ratio="3/4", max_ratio="16/9")
    assert kept(op, singles(v)) == [[v[1]], [v[2]]]
    assert kept(op, pairs(v)) == [[v[1], v[2]], [v[2], v[3]], [v[1], v[3]]]
    op = make_op("video_aspect_ratio_filter", min_ratio="3:4", max_ratio="16:9", any_or_all="all")
    assert kept(op, pairs(v)) == [[v[1], v[2]]]


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["video_duration_filter", "video_resolution_filter", "video_aspect_ratio_filter",
                                  "video_motion_score_filter"])
def test_unreadable_videos_are_bad_rows(tmp_path, name):
    good = str(write_video(tmp_path / "ok.mp4", seconds=1))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    audio_only = tmp_path / "text.mp4"
    audio_only.write_text("not a video")
    samples = [{"videos": [good]}, {"videos": [str(tmp_path / "missing.mp4")]}, {"videos": [good, str(corrupt)]},
               {"videos": [str(audio_only)]}, {"videos": []}]
    res = apply_to(make_op(name, min_score=-2) if "motion" in name else make_op(name), samples)
    bad = {row.row_id: row.reason for row in res.set_aside}
    assert sorted(bad) == [1, 2, 3] and res.batch.row_ids.tolist() == [0, 4]
    assert "not found" in bad[1] and "missing.mp4" in bad[1]
    assert "corrupt.mp4" in bad[2] and "text.mp4" in bad[3]


# -- frame sampling ------------------------------------------------------------------------------


def brute_force_uniform(path: str, frame_num: int) -> list[float]:
    """Every frame decoded; per target time the first frame at or after it, the last frame for
    targets past the end (Data-Juicer's result on videos whose targets fall in distinct frames)."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        times = [f.pts * f.time_base for f in c.decode(s)]
        duration = s.duration * s.time_base
    targets = videos.uniform_seconds(duration, min(frame_num, len(times)))
    return [float(next((t for t in times if t >= target), times[-1])) for target in targets]


@pytest.mark.parametrize("name", sorted(DJ_REFERENCE))
def test_sampling_matches_data_juicer(name):
    import numpy as np

    path, ref = dj_video(name), DJ_REFERENCE[name]
    c = videos.open_video(path)
    assert [float(f.pts * f.time_base) for f in videos.sample_keyframes(c)] == ref["keyframes"]
    picked = videos.sample_uniform(c, 3)
    c.close()
    assert [float(f.pts * f.time_base) for f in picked] == ref["uniform3"]
    frames = videos.sample_frames(path, "uniform", 3)
    assert [int(np.asarray(im, dtype=np.int64).sum()) for im in frames] == ref["uniform3_sums"]


@pytest.mark.parametrize("frame_num", [1, 2, 3, 5, 7])
def test_uniform_sampling_synthetic(tmp_path, frame_num):
    path = str(write_video(tmp_path / "v.mp4", seconds=2, fps=12, gop=5))
    c = videos.open_video(path)
    got = [float(f.pts * f.time_base) for f in videos.sample_uniform(c, frame_num)]
    c.close()
    assert got == brute_force_uniform(path, frame_num)


def test_keyframes_synthetic(tmp_path):
    path = str(write_video(tmp_path / "v.mp4", seconds=2, fps=12, gop=6))
    c = videos.open_video(path)
    assert [float(f.pts * f.time_base) for f in videos.sample_keyframes(c)] == [0.0, 0.5, 1.0, 1.5]
    assert videos.keyframe_times(c, c.streams.video[0]) == [0.0, 0.5, 1.0, 1.5]
    c.close()
    frames = videos.sample_frames(path, "uniform", 3)
    assert [im.size for im in frames] == [(64, 48)] * 3 and frames[0].mode == "RGB"


def test_frames_are_sampled_once_per_batch(tmp_path, monkeypatch):
    path = str(write_video(tmp_path / "v.mp4", seconds=1))
    calls = []
    real = videos.sample_frames
    monkeypatch.setattr(videos, "sample_frames", lambda *a: calls.append(a) or real(*a))
    batch = Batch.from_rows([{"videos": [path, path]}, {"videos": [path]}])
    view = videos.FrameImages("videos", "uniform", 3)
    items = [(0, path), (1, path)]
    first = view.register(batch, items)
    again = videos.FrameImages("videos", "uniform", 3).register(batch, items)
    assert first == again == [[(0, (path, i)) for i in range(3)], [(1, (path, i)) for i in range(3)]]
    assert len(calls) == 2  # one per (row, video); a second OP with the same sampling decodes nothing
    videos.FrameImages("videos", "all_keyframes", 3).register(batch, items[:1])
    assert len(calls) == 3


# -- video_motion_score_filter (upstream test_video_motion_score_filter.py) ----------------------


@pytest.mark.parametrize("sampling_fps, expect", [(2, [0, 1, 6, 12, 18]), (4, [0, 1, 3, 6, 9, 12, 15, 18, 21]),
                                                   (12, [0, 1] + list(range(1, 24)))])
def test_motion_frames_are_those_data_juicer_reads(tmp_path, sampling_fps, expect):
    """Data-Juicer's OpenCV loop skips its seek after the first frame (no flow yet): it reads frames
    0 and 1, then every ``step``-th frame from ``step`` on (frame 1 twice when step is 1)."""
    path = str(write_video(tmp_path / "v.mp4", seconds=2, fps=12))
    container = videos.open_video(path)
    try:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    finally:
        container.close()
    got = list(videos.motion_frames(path, sampling_fps))
    assert len(got) == len(expect)
    for frame, index in zip(got, expect):
        assert np.array_equal(frame, decoded[index]), index


def test_motion_frames_match_an_opencv_seek_loop(tmp_path):
    """The frames equal those read by Data-Juicer's loop (read; seek to the next multiple of the
    step after every frame but the first), replayed here with OpenCV."""
    cv2 = pytest.importorskip("cv2")
    path = str(write_video(tmp_path / "v.mp4", seconds=2, fps=12))
    cap = cv2.VideoCapture(path)
    ref, count, step = [], 0, 3
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if ref:
                count += step
                cap.set(cv2.CAP_PROP_POS_FRAMES, count)
            ref.append(frame)
    finally:
        cap.release()
    got = list(videos.motion_frames(path, 4))  # 12 fps / 4 -> step 3
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)


def test_motion_score_synthetic_moves(tmp_path):
    path = str(write_video(tmp_path / "v.mp4", seconds=2, fps=12))
    op = make_op("video_motion_score_filter", sampling_fps=12)
    score = op.motion_score(path)
    assert score > 0.05
    assert make_op("video_motion_score_filter", sampling_fps=12, relative=True).motion_score(path) == pytest.approx(
        score / (64 ** 2 + 48 ** 2) ** 0.5, rel=1e-6)


@pytest.mark.slow
def test_motion_score_upstream_cases(v):
    """Upstream's cases (thresholds 1.5 and 3.0); the scores are Data-Juicer's to float noise."""
    op = make_op("video_motion_score_filter")
    _, batch = run_op(op, singles(v))
    for (score,), i in zip(batch.stats["video_motion_score"], (1, 2, 3)):
        assert score == pytest.approx(DJ_REFERENCE[f"video{i}.mp4"]["motion"], rel=1e-5)
    cases = [({}, [1, 2, 3]), ({"min_score": 3.0}, [2]), ({"min_score": 0.0, "max_score": 1.5}, [3]),
             ({"min_score": 1.5, "max_score": 3.0}, [1])]
    for params, expect in cases:
        keep = make_op("video_motion_score_filter", **params).keep(batch)  # on the stats computed once
        assert [i for i, k in zip((1, 2, 3), keep) if k] == expect, params


# Data-Juicer 1.6.1's VideoMotionScoreFilter._compute_motion_scores_from_video (bench/.venv-dj) with
# non-default parameters (downscaled frames keep the test short)
DJ_MOTION_NON_DEFAULT = [
    ({"size": [90, 150], "relative": True},
     {1: 0.009474506030122223, 2: 0.009990837718876136, 3: 0.0027623537032459523}),
    ({"sampling_fps": 3, "size": 100}, {1: 1.5100673821030393, 2: 1.428526299420212, 3: 0.4174054594485452}),
    ({"size": 200, "max_size": 256, "divisible": 8},
     {1: 2.2013903519449136, 2: 2.648315525871325, 3: 0.8344719278812408}),
    ({"max_size": 300, "divisible": 16, "sampling_fps": 1},
     {1: 3.108282670378685, 2: 3.0626725336381546, 3: 1.4425463577359914}),
    ({"sampling_fps": 24, "size": 64}, {1: 0.7146110609747595}),  # step 1: frame 1 read twice
]


@pytest.mark.slow
@pytest.mark.parametrize("params, expect", DJ_MOTION_NON_DEFAULT, ids=[str(p) for p, _ in DJ_MOTION_NON_DEFAULT])
def test_motion_score_matches_data_juicer_non_default(v, params, expect):
    op = make_op("video_motion_score_filter", **params)
    for i, score in expect.items():
        assert op.motion_score(v[i]) == pytest.approx(score, rel=1e-5), (params, i)
