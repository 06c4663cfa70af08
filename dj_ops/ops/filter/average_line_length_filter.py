"""average_line_length_filter: ``avg_line_length = len(text) / len(text.splitlines())`` (the
numerator counts the line breaks too), 0.0 without lines, as Data-Juicer.  Reads the shared
``lines`` intermediate."""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.lines import lines_of


@register("average_line_length_filter")
class AverageLineLengthFilter(Filter):
    stat_bounds = {"avg_line_length": ("min_len", "max_len")}
    intermediates = ("lines",)

    def __init__(self, min_len: int = 10, max_len: int = sys.maxsize, **kwargs):
        super().__init__(**kwargs)
        self.min_len = min_len
        self.max_len = max_len

    def compute_stats(self, batch: Batch) -> None:
        lines = lines_of(batch, self.text_key)
        batch.stats["avg_line_length"] = [
            len(text) / len(text_lines) if text_lines else 0.0 for text, text_lines in zip(self.texts(batch), lines)
        ]
