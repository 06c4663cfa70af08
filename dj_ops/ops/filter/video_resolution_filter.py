"""video_resolution_filter: ``video_width`` / ``video_height`` of every video of a sample (the first
video stream's coded frame size, one value per listed video); a video passes when its width is in
[min_width, max_width] *and* its height in [min_height, max_height]; the sample is kept when any /
all videos pass.  Read from the header; a missing or unreadable video makes the row bad input.
"""

from __future__ import annotations

import sys

import numpy as np

from dj_ops.core.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import videos


@register("video_resolution_filter")
class VideoResolutionFilter(Filter):
    stat_bounds = {"video_width": ("min_width", "max_width"), "video_height": ("min_height", "max_height")}
    intermediates = ("video_info",)
    uses_text = False

    def __init__(self, min_width: int = 1, max_width: int = sys.maxsize, min_height: int = 1,
                 max_height: int = sys.maxsize, any_or_all: str = "any", **kwargs):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.min_width = min_width
        self.max_width = max_width
        self.min_height = min_height
        self.max_height = max_height

    def compute_stats(self, batch: Batch) -> None:
        refs, info = videos.info_stats(batch, self)
        for stat, attr in (("video_width", "width"), ("video_height", "height")):
            batch.stats[stat] = [[getattr(info[i][videos.key_of(v)], attr) for v in row] if info[i] else []
                                 for i, row in enumerate(refs)]

    def keep(self, batch: Batch) -> np.ndarray:
        """A video passes when both its width and its height are in range (each bound test follows
        ``reversed_range`` on its own, as Data-Juicer's ``get_keep_boolean``)."""
        reduce = any if self.any_or_all == "any" else all
        out = np.ones(len(batch), dtype=bool)
        for i, (ws, hs) in enumerate(zip(batch.stats["video_width"], batch.stats["video_height"])):
            if ws:
                ok = (self.bounds_mask(np.asarray(ws, dtype=np.float64), self.min_width, self.max_width)
                      & self.bounds_mask(np.asarray(hs, dtype=np.float64), self.min_height, self.max_height))
                out[i] = reduce(ok)
        return out
