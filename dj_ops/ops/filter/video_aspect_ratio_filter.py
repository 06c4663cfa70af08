"""video_aspect_ratio_filter: ``video_aspect_ratios`` = width / height of every video of a sample
(the first video stream's coded frame size, one value per listed video), kept when inside
[min_ratio, max_ratio] for any / all videos.  The bounds are fractions written ``"9/21"`` or
``"9:21"`` (or numbers), compared exactly as Data-Juicer compares a float with a ``Fraction``.
Read from the header; a missing or unreadable video makes the row bad input.
"""

from __future__ import annotations

from fractions import Fraction

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import videos


def _fraction(value: str | float | int) -> Fraction:
    return Fraction(str(value).replace(":", "/"))


@register("video_aspect_ratio_filter")
class VideoAspectRatioFilter(Filter):
    stat_bounds = {"video_aspect_ratios": ("min_ratio", "max_ratio")}
    intermediates = ("video_info",)
    uses_text = False

    def __init__(self, min_ratio: str = "9/21", max_ratio: str = "21/9", any_or_all: str = "any", **kwargs):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.min_ratio = _fraction(min_ratio)
        self.max_ratio = _fraction(max_ratio)

    def compute_stats(self, batch: Batch) -> None:
        refs, info = videos.info_stats(batch, self)
        batch.stats["video_aspect_ratios"] = [
            [info[i][k].width / info[i][k].height for k in map(videos.key_of, row)] if info[i] else []
            for i, row in enumerate(refs)
        ]
