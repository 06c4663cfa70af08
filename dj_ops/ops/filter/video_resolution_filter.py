"""video_resolution_filter: ``video_width`` / ``video_height`` of every video of a sample (the first
video stream's coded frame size, one value per listed video); a video passes when its width is in
[min_width, max_width] *and* its height in [min_height, max_height]; the sample is kept when any /
all videos pass.  Read from the header; a missing or unreadable video makes the row bad input.
"""

from __future__ import annotations

import sys


from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import videos


@register("video_resolution_filter")
class VideoResolutionFilter(Filter):
    stat_bounds = {"video_width": ("min_width", "max_width"), "video_height": ("min_height", "max_height")}
    intermediates = ("video_info",)
    uses_text = False
    item_passes_all_stats = True  # width and height of the same item

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
