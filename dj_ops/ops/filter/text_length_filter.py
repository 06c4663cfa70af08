"""text_length_filter: ``text_len = len(text)`` in characters (Unicode code points), as Data-Juicer."""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register


@register("text_length_filter")
class TextLengthFilter(Filter):
    stat_bounds = {"text_len": ("min_len", "max_len")}

    def __init__(self, min_len: int = 10, max_len: int = sys.maxsize, **kwargs):
        super().__init__(**kwargs)
        self.min_len = min_len
        self.max_len = max_len

    def compute_stats(self, batch: Batch) -> None:
        batch.stats["text_len"] = list(map(len, self.texts(batch)))
