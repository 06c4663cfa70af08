"""video_duration_filter: ``video_duration`` = the duration in seconds of every video of a sample
(one value per listed video, in order), kept when inside [min_duration, max_duration] for any / all
videos.

The duration is the first video stream's (the container's when the stream has none), read from
the header: what Data-Juicer's default ``ffmpeg`` backend (ffprobe ``stream=duration``, falling
back to ``format=duration``) reports.  ``video_backend`` is accepted for compatibility; both
values read the header with PyAV.  A missing or unreadable video makes the row bad input.
"""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import videos

VIDEO_BACKENDS = ("ffmpeg", "av")


@register("video_duration_filter")
class VideoDurationFilter(Filter):
    stat_bounds = {"video_duration": ("min_duration", "max_duration")}
    intermediates = ("video_info",)
    uses_text = False

    def __init__(self, min_duration: float = 0, max_duration: float = sys.maxsize, any_or_all: str = "any",
                 video_backend: str = "ffmpeg", **kwargs):
        super().__init__(any_or_all=any_or_all, **kwargs)
        if video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {list(VIDEO_BACKENDS)}, got {video_backend!r}")
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.video_backend = video_backend

    def compute_stats(self, batch: Batch) -> None:
        refs, info = videos.info_stats(batch, self)
        batch.stats["video_duration"] = [
            [info[i][videos.key_of(v)].duration for v in row] if info[i] else [] for i, row in enumerate(refs)
        ]
