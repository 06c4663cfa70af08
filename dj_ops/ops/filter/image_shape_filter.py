"""image_shape_filter: ``image_width`` / ``image_height`` of every image of a sample (one value per
listed image); an image passes when its width is in [min_width, max_width] *and* its height in
[min_height, max_height] (each bound test follows ``reversed_range`` on its own, as Data-Juicer's
``get_keep_boolean``); the sample is kept when any / all images pass.

Sizes come from the file header (with Data-Juicer's EXIF rotation for files opened from a path).
"""

from __future__ import annotations

import sys


from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import images


@register("image_shape_filter")
class ImageShapeFilter(Filter):
    stat_bounds = {"image_width": ("min_width", "max_width"), "image_height": ("min_height", "max_height")}
    intermediates = ("image_headers",)
    uses_text = False
    item_passes_all_stats = True  # width and height of the same item

    def __init__(
        self,
        min_width: int = 1,
        max_width: int = sys.maxsize,
        min_height: int = 1,
        max_height: int = sys.maxsize,
        any_or_all: str = "any",
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.min_width = min_width
        self.max_width = max_width
        self.min_height = min_height
        self.max_height = max_height

    def compute_stats(self, batch: Batch) -> None:
        refs, heads = images.header_stats(batch, self)
        batch.stats["image_width"] = [[heads[i][k].width for k in row] if heads[i] else [] for i, row in enumerate(refs)]
        batch.stats["image_height"] = [[heads[i][k].height for k in row] if heads[i] else [] for i, row in enumerate(refs)]
