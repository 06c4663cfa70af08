"""maximum_line_length_filter: ``max_line_length = max(len(l) for l in text.splitlines())``, 0
without lines, as Data-Juicer.  Reads the shared ``lines`` intermediate."""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.lines import lines_of


@register("maximum_line_length_filter")
class MaximumLineLengthFilter(Filter):
    stat_bounds = {"max_line_length": ("min_len", "max_len")}
    intermediates = ("lines",)

    def __init__(self, min_len: int = 10, max_len: int = sys.maxsize, **kwargs):
        super().__init__(**kwargs)
        self.min_len = min_len
        self.max_len = max_len

    def compute_stats(self, batch: Batch) -> None:
        batch.stats["max_line_length"] = [max(map(len, lines), default=0) for lines in lines_of(batch, self.text_key)]
