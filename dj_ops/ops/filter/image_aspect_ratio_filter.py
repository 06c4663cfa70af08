"""image_aspect_ratio_filter: ``aspect_ratios`` = width / height of every image of a sample (one
value per listed image, in order), kept when inside [min_ratio, max_ratio] for any / all images.

Width and height come from the file header (with Data-Juicer's EXIF rotation for files opened from a
path), so no pixels are decoded; a missing or unreadable image makes the row bad input.
"""

from __future__ import annotations

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import images


@register("image_aspect_ratio_filter")
class ImageAspectRatioFilter(Filter):
    stat_bounds = {"aspect_ratios": ("min_ratio", "max_ratio")}
    intermediates = ("image_headers",)
    uses_text = False

    def __init__(self, min_ratio: float = 0.333, max_ratio: float = 3.0, any_or_all: str = "any", **kwargs):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def compute_stats(self, batch: Batch) -> None:
        refs, heads = images.header_stats(batch, self)
        batch.stats["aspect_ratios"] = [
            [heads[i][k].width / heads[i][k].height for k in row] if heads[i] else []
            for i, row in enumerate(refs)
        ]
