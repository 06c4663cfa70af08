"""Videos shared by the video OPs: references, stream metadata and sampled frames (PyAV).

- a row's videos are the paths in ``video_key`` (relative paths were resolved by the executor);
- :func:`infos`: duration, width, height, frame rate and frame count of every distinct video of a
  batch, read from the container header (nothing is decoded), kept for the whole batch;
- :func:`frames`: frames sampled as Data-Juicer samples them (``all_keyframes`` or ``uniform``
  with ``frame_num``), as RGB PIL images, decoded once per video and batch slice and shared by
  every OP asking for the same sampling (the Data-Juicer context key
  ``{video}-{method}[-{frame_num}]``), so a fused group decodes a video once;
- :func:`motion_frames`: the BGR frames ``video_motion_score_filter`` reads (frames 0 and 1, then
  every ``step``-th frame, as its OpenCV seek loop visits them);
- :func:`register_frames`: sampled frames made visible to the image model code (pixel tensors,
  CLIP embeddings are then cached under the sampling, shared like those of images).

A missing, unreadable or corrupt video, or one without a video stream, makes its row bad input
(``Batch.mark_bad`` with the reason): Data-Juicer raises (and drops the sample under
``skip_op_error``) or, in some OPs, scores it -1 or 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator, Sequence

from dj_ops.core.batch import Batch
from dj_ops.ops.base.intermediates import slice_key
from dj_ops.ops.common import images

SAMPLING_METHODS = ("all_keyframes", "uniform")
_AV_TIME_BASE = 1_000_000  # microseconds: the unit of container-level seeks and durations


class VideoError(Exception):
    """A video that cannot be used; ``str(exc)`` is the reason written to the bad-rows file."""


@dataclass(frozen=True)
class VideoInfo:
    #: seconds: the first video stream's duration (the container's when the stream has none),
    #: as Data-Juicer's ffprobe-based reader reports it
    duration: float
    width: int
    height: int
    #: ``av_guess_frame_rate``: what OpenCV's ``CAP_PROP_FPS`` reports
    fps: float
    #: frames in the stream according to the container (0 when it does not say)
    frames: int


# ---------------------------------------------------------------------------------------------
# Opening one video


def open_video(path: Any) -> Any:
    """An open PyAV container with a video stream, or :class:`VideoError`."""
    import av

    if not isinstance(path, str):
        raise VideoError(f"video reference is not a path: {path!r}")
    try:
        container = av.open(path)
    except FileNotFoundError:
        raise VideoError(f"video file not found: {path}") from None
    except IsADirectoryError:
        raise VideoError(f"video path is a directory: {path}") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"cannot open video {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"no video stream in {path}")
    return container


def _duration(container: Any, stream: Any) -> Fraction | None:
    if stream.duration is not None and stream.time_base is not None:
        return stream.duration * stream.time_base
    if container.duration is not None:
        return Fraction(container.duration, _AV_TIME_BASE)
    return None


def read_info(path: Any) -> VideoInfo:
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        duration = _duration(container, stream)
        ctx = stream.codec_context
        if duration is None or not ctx.width or not ctx.height:
            raise VideoError(f"video {path} has no duration or no frame size in its header")
        rate = stream.guessed_rate or stream.average_rate
        return VideoInfo(float(duration), int(ctx.width), int(ctx.height), float(rate or 0), int(stream.frames or 0))
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# Frame sampling (Data-Juicer's extract_key_frames / extract_video_frames_uniformly)


def keyframe_times(container: Any, stream: Any) -> list[float]:
    """Seconds of the stream's key frames, sorted, read from the packets (no decoding)."""
    container.seek(0)
    times = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.is_keyframe and p.pts is not None)
    container.seek(0)
    return times


def sample_keyframes(container: Any) -> list[Any]:
    """Every key frame (the decoder skips the others); the first frame when there is none."""
    stream = container.streams.video[0]
    stream.codec_context.skip_frame = "NONKEY"
    container.seek(0)
    try:
        out = list(container.decode(stream))
    finally:
        stream.codec_context.skip_frame = "DEFAULT"
    if not out:
        container.seek(0)
        for frame in container.decode(stream):
            return [frame]
    return out


def uniform_seconds(duration: Fraction, frame_num: int) -> list[Fraction]:
    """Target times: the middle for one frame, else first to last at equal steps (exact)."""
    if frame_num <= 0:
        return []
    if frame_num == 1:
        return [duration / 2]
    step = duration / (frame_num - 1)
    return [step * i for i in range(frame_num)]


def _groups(targets: list[Fraction], keys: list[float]) -> list[list[Fraction]]:
    """Targets split by the key frame each is decoded from (Data-Juicer's grouping; the last
    group takes every target left)."""
    if len(keys) == 1:
        return [targets]
    groups: list[list[Fraction]] = []
    current: list[Fraction] = []
    g, i = 0, 0
    while i < len(targets):
        if targets[i] < keys[g + 1]:
            current.append(targets[i])
            i += 1
            continue
        groups.append(current)
        current = []
        g += 1
        if g >= len(keys) - 1:
            break
    if current:
        groups.append(current)
    if i < len(targets):
        groups.append(targets[i:])
    return groups


def sample_uniform(container: Any, frame_num: int) -> list[Any]:
    """``frame_num`` frames spread over the video, as Data-Juicer picks them: for each target time
    the first frame at or after it, decoding from the key frame before it; targets past the last
    frame get the last frame (once per key-frame group)."""
    stream = container.streams.video[0]
    if stream.frames and stream.frames < frame_num:
        frame_num = stream.frames
    duration = _duration(container, stream)
    if duration is None:
        raise VideoError("video has no duration")
    keys = keyframe_times(container, stream)
    if 0.0 not in keys:
        keys = [0.0] + keys
    tb = stream.time_base
    out: list[Any] = []
    for key, group in zip(keys, _groups(uniform_seconds(duration, frame_num), keys)):
        if not group:
            continue
        container.seek(int(key * _AV_TIME_BASE))
        pending = iter(group)
        target = next(pending) / tb
        last = None
        found_all = False
        for frame in container.decode(stream):
            last = frame
            if frame.pts is not None and frame.pts >= target:
                out.append(frame)
                nxt = next(pending, None)
                if nxt is None:
                    found_all = True
                    break
                target = nxt / tb
        if not found_all and last is not None:
            out.append(last)
    return out


def sample_frames(path: Any, method: str, frame_num: int) -> list[Any]:
    """The sampled frames of one video as RGB PIL images, or :class:`VideoError`."""
    import av

    container = open_video(path)
    try:
        if method == "all_keyframes":
            picked = sample_keyframes(container)
        elif method == "uniform":
            picked = sample_uniform(container, frame_num)
        else:
            raise ValueError(f"frame_sampling_method must be one of {list(SAMPLING_METHODS)}, got {method!r}")
        return [f.to_image() for f in picked]
    except VideoError as exc:
        raise VideoError(f"{path}: {exc}") from None
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot decode video {path}: {exc}") from None
    finally:
        container.close()


def motion_frames(path: Any, sampling_fps: float) -> Iterator[Any]:
    """The BGR frames (numpy) Data-Juicer's OpenCV loop reads, in one sequential pass: frames 0 and
    1, then every multiple of ``step = round(fps / min(sampling_fps, fps))`` (kept within
    [1, frames - 1]) from ``step`` on.  Frame 1 comes in because that loop skips its seek after the
    first frame (it has no flow yet) and so reads on sequentially; with ``step == 1`` it is read
    twice (once sequentially, once after seeking back to it), and so yielded twice here."""
    import av

    container = open_video(path)
    try:
        stream = container.streams.video[0]
        info_fps = float(stream.guessed_rate or stream.average_rate or 0)
        total = int(stream.frames or 0)
        if not total and info_fps:
            duration = _duration(container, stream)
            total = int(round(float(duration or 0) * info_fps))
        step = round(info_fps / min(sampling_fps, info_fps)) if info_fps else 1
        step = max(min(step, total - 1), 1)
        for index, frame in enumerate(container.decode(stream)):
            repeats = (index < 2) + (index >= step and index % step == 0)
            if repeats:
                bgr = frame.to_ndarray(format="bgr24")
                for _ in range(repeats):
                    yield bgr
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot decode video {path}: {exc}") from None
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# Per-batch caches


def row_videos(batch: Batch, video_key: str) -> list[list]:
    """The video references of every row ([] when the row has none)."""
    return images.row_images(batch, video_key)


def key_of(ref: Any) -> Any:
    """The key a video reference is cached under (a path listed twice is one video)."""
    return images._hashable(ref)


def distinct(refs: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(map(key_of, refs)))


def infos(batch: Batch, op: Any) -> list[dict[Any, VideoInfo | VideoError]]:
    """Per row: distinct video reference -> its header information (or the error)."""

    def compute() -> list[dict]:
        out = []
        for refs in row_videos(batch, op.video_key):
            row: dict[Any, Any] = {}
            for ref in refs:
                key = key_of(ref)
                if key not in row:
                    try:
                        row[key] = read_info(ref)
                    except VideoError as exc:
                        row[key] = exc
            out.append(row)
        return out

    return batch.cached(f"{INFO_CACHE_PREFIX}{op.video_key}", compute)


INFO_CACHE_PREFIX = "__dj__video_info:"


def info_stats(batch: Batch, op: Any) -> tuple[list[list], list[dict[Any, VideoInfo]]]:
    """Video references and header information per row; rows with an unusable video are marked
    bad (their dict is then empty)."""
    return row_videos(batch, op.video_key), images.usable_rows(batch, infos(batch, op), VideoError)


def sampling_suffix(method: str, frame_num: int) -> str:
    """Data-Juicer's context-key suffix of a sampling: ``all_keyframes`` or ``uniform-<n>``."""
    return method if method == "all_keyframes" else f"{method}-{frame_num}"


def frames(batch: Batch, video_key: str, items: Sequence[tuple[int, Any]], method: str,
           frame_num: int) -> list[list[Any] | VideoError]:
    """Sampled frames (RGB PIL images) of ``items`` = [(row, video)], sampled once per batch (or
    slice) and sampling."""
    suffix = sampling_suffix(method, frame_num)
    cache = batch.cached(slice_key(f"video_frames:{suffix}:{video_key}"), lambda: [{} for _ in range(len(batch))])
    for r, ref in dict.fromkeys(items):
        if ref not in cache[r]:
            try:
                cache[r][ref] = sample_frames(ref, method, frame_num)
            except VideoError as exc:
                cache[r][ref] = exc
    return [cache[r][ref] for r, ref in items]


@dataclass(frozen=True)
class FrameImages:
    """Sampled frames seen as images: the ``image_key`` the image model code caches decoded
    images, pixel tensors and embeddings under (one per video field and sampling, so OPs with the
    same sampling share them).  An image reference is ``(video, frame position)``."""

    video_key: str
    method: str
    frame_num: int

    @property
    def image_key(self) -> str:
        return f"__dj__frames:{self.video_key}:{sampling_suffix(self.method, self.frame_num)}"

    @property
    def image_bytes_key(self) -> str:
        return ""

    def register(self, batch: Batch, items: Sequence[tuple[int, Any]]) -> list[list[tuple[int, Any]] | VideoError]:
        """For each (row, video) of ``items``: its frames' image items [(row, (video, i))], made
        available to the image code, or the VideoError."""
        sampled = frames(batch, self.video_key, items, self.method, self.frame_num)
        out: list[Any] = []
        todo: dict[tuple[int, Any], Any] = {}
        for (r, ref), got in zip(items, sampled):
            if isinstance(got, VideoError):
                out.append(got)
                continue
            frame_items = [(r, (ref, i)) for i in range(len(got))]
            todo.update(zip(frame_items, got))
            out.append(frame_items)
        images.put_decoded(batch, self, list(todo), list(todo.values()))
        return out


__all__ = [
    "FrameImages", "SAMPLING_METHODS", "VideoError", "VideoInfo", "distinct", "frames", "info_stats", "infos", "key_of",
    "keyframe_times", "motion_frames", "open_video", "read_info", "row_videos", "sample_frames",
    "sample_keyframes", "sample_uniform", "sampling_suffix", "uniform_seconds",
]
