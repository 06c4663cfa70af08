"""suffix_filter: keep a sample when its ``__dj__suffix__`` field is one of ``suffixes`` (an empty
list keeps everything; ``reversed_range`` keeps the others), as Data-Juicer.  No stats."""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.constants import Fields
from dj_ops.core.registry import register


@register("suffix_filter")
class SuffixFilter(Filter):
    has_stats = False
    uses_text = False

    def __init__(self, suffixes: str | list[str] = [], **kwargs):  # noqa: B006 - Data-Juicer's default, never mutated
        super().__init__(**kwargs)
        self.suffixes = [suffixes] if isinstance(suffixes, str) else list(suffixes or [])

    def compute_stats(self, batch: Batch) -> None:
        """Nothing to compute: the decision reads the suffix field directly."""

    def keep(self, batch: Batch) -> np.ndarray:
        if not self.suffixes:
            return np.ones(len(batch), dtype=bool)
        suffixes = batch.columns.get(Fields.suffix) or [None] * len(batch)
        mask = np.fromiter((s in self.suffixes for s in suffixes), dtype=bool, count=len(batch))
        return ~mask if self.reversed_range else mask
