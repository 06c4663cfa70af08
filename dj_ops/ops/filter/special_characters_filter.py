"""special_characters_filter: keep samples whose share of special characters lies in
[min_ratio, max_ratio].

``special_char_ratio = (number of characters of the text in SPECIAL_CHARACTERS) / len(text)``,
0.0 for an empty text.  SPECIAL_CHARACTERS is Data-Juicer's set (punctuation, digits, whitespace,
a list of typographic/CJK characters and the emoji of emoji 2.2.0); counted for a whole batch at
once with a code-point lookup table.
"""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.text import special_char_counts


@register("special_characters_filter")
class SpecialCharactersFilter(Filter):
    stat_bounds = {"special_char_ratio": ("min_ratio", "max_ratio")}

    def __init__(self, min_ratio: float = 0.0, max_ratio: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def compute_stats(self, batch: Batch) -> None:
        texts = [t if isinstance(t, str) else "" for t in self.texts(batch)]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        specials = special_char_counts(texts)
        ratios = np.divide(specials, lengths, out=np.zeros(len(texts)), where=lengths > 0)
        batch.stats["special_char_ratio"] = ratios.tolist()
