"""video_motion_score_filter: ``video_motion_score`` per listed video of a sample, kept when inside
[min_score, max_score] for any / all videos::

    score = mean over i >= 1 of  mean_pixels |F(g[i-1], g[i])|   [/ hypot(H, W) with ``relative``]

where ``g`` are the read frames in grey, ``F`` is OpenCV's Farneback dense optical flow
(``pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0`` unless
given), ``|.|`` its per-pixel magnitude and (H, W) the (resized) frame size.  A video with fewer
than two read frames scores -1.

The read frames are those of Data-Juicer's OpenCV loop: frames 0 and 1, then every multiple of
``step = round(fps / min(sampling_fps, fps))`` (at least 1, at most frames - 1) from ``step`` on
(Data-Juicer skips its seek after the first frame, which has no flow; with ``step == 1`` frame 1
is read twice).  Each is optionally resized (``size`` / ``max_size`` / ``divisible``,
Data-Juicer's ``calculate_resized_dimensions``, whose (height, width) result is handed to
``cv2.resize`` as its (width, height) — a quirk kept so that scores agree, ``INTER_AREA``) and
turned to grey from BGR.

Frames are decoded with PyAV in one sequential pass (Data-Juicer seeks with OpenCV; the decoded
BGR pixels are the same).  A missing or unreadable video makes the row bad input (Data-Juicer
scores it -1).  ``frame_field`` and ``if_output_optical_flow`` are not supported.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence, Union

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import videos

FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                      "poly_sigma": 1.2, "flags": 0}


def resized_dimensions(height: int, width: int, size: Sequence[int] | None, max_size: int | None,
                       divisible: int) -> tuple[int, int]:
    """Data-Juicer's ``calculate_resized_dimensions`` (``size``: the short edge, or both edges)."""
    short, long = sorted((width, height))
    if size:
        if len(size) == 1:
            new_short, new_long = size[0], int(size[0] * long / short)
        else:
            new_short, new_long = min(size), max(size)
    else:
        new_short, new_long = short, long
    if max_size is not None and new_long > max_size:
        new_short = int(new_short * max_size / new_long)
        new_long = max_size
    dims = (new_short, new_long) if width >= height else (new_long, new_short)
    return tuple(int(d / divisible) * divisible for d in dims)  # type: ignore[return-value]


@register("video_motion_score_filter")
class VideoMotionScoreFilter(Filter):
    stat_bounds = {"video_motion_score": ("min_score", "max_score")}
    intermediates = ("video_info",)
    uses_text = False

    def __init__(
        self,
        min_score: float = 0.25,
        max_score: float = sys.float_info.max,
        frame_field: Optional[str] = None,
        sampling_fps: float = 2,
        original_fps: Optional[float] = None,
        size: Union[int, list, None] = None,
        max_size: Optional[int] = None,
        divisible: int = 1,
        relative: bool = False,
        any_or_all: str = "any",
        if_output_optical_flow: bool = False,
        optical_flow_key: str = "video_optical_flow",
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
        flags: int = 0,
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        if frame_field or if_output_optical_flow:
            raise ValueError("video_motion_score_filter: frame_field and if_output_optical_flow are not supported")
        if sampling_fps <= 0:
            raise ValueError(f"sampling_fps must be positive, got {sampling_fps!r}")
        if isinstance(size, int):
            size = [size]
        if size is not None and len(size) not in (1, 2):
            raise ValueError(f"size must be an int or a 1 or 2 element list, not {len(size)} elements")
        self.min_score = min_score
        self.max_score = max_score
        self.frame_field = frame_field
        self.sampling_fps = sampling_fps
        self.original_fps = original_fps
        self.size = list(size) if size else None
        self.max_size = max_size
        self.divisible = divisible
        self.relative = relative
        self.if_output_optical_flow = if_output_optical_flow
        self.optical_flow_key = optical_flow_key
        self.farneback = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize, iterations=iterations,
                              poly_n=poly_n, poly_sigma=poly_sigma, flags=flags)

    def motion_score(self, path: str) -> float:
        import cv2

        scores = []
        prev = None
        for frame in videos.motion_frames(path, self.sampling_fps):
            height, width = frame.shape[:2]
            dims = resized_dimensions(height, width, self.size, self.max_size, self.divisible)
            if dims != (height, width):
                frame = cv2.resize(frame, dims, interpolation=cv2.INTER_AREA)
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if prev is not None:
                flow = cv2.calcOpticalFlowFarneback(prev, grey, None, **self.farneback)
                magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
                score = float(np.mean(magnitude))
                if self.relative:
                    score /= float(np.hypot(*frame.shape[:2]))
                scores.append(score)
            prev = grey
        return float(np.mean(scores)) if scores else -1.0

    def compute_stats(self, batch: Batch) -> None:
        out = []
        for i, refs in enumerate(videos.row_videos(batch, self.video_key)):
            scores: dict = {}
            try:
                for ref in refs:
                    key = videos.key_of(ref)
                    if key not in scores:
                        scores[key] = self.motion_score(ref)
            except videos.VideoError as exc:
                batch.mark_bad(i, str(exc))
                out.append([])
                continue
            out.append([scores[videos.key_of(ref)] for ref in refs])
        batch.stats["video_motion_score"] = out
