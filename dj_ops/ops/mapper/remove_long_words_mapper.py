"""remove_long_words_mapper: drop words whose length is outside [min_len, max_len].

Words are the pieces between spaces, tabs and newlines.  A word is kept when its length is in
range, or when it is too long but in range once special characters are stripped from its ends.
As in Data-Juicer, the text is rebuilt with single spaces between words, tabs and newlines kept
as separators, and empty pieces / lines dropped.

The lengths of all words of a batch are measured at once (separator positions in the batch's
code points); only texts holding an out-of-range word are filtered word by word.
"""

from __future__ import annotations

import sys

import numpy as np

from dj_ops.ops.base import TextMapper
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.text import rebuild_words, strip_special

_SEPARATOR_CODES = np.array([ord(" "), ord("\n"), ord("\t")], dtype=np.uint32)


def word_length_outliers(texts: list[str], min_len: int, max_len: int) -> np.ndarray:
    """Per text: does it hold a word shorter than ``min_len`` or longer than ``max_len``?"""
    # a newline between texts keeps words from running across them
    codes = np.frombuffer("\n".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bounds = np.r_[-1, np.flatnonzero(np.isin(codes, _SEPARATOR_CODES)), len(codes)]
    lengths = np.diff(bounds) - 1  # 0 between two adjacent separators
    outlier = (lengths > max_len) | ((lengths > 0) & (lengths < min_len))
    text_ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1) - 1
    flags = np.zeros(len(texts), dtype=bool)
    flags[np.searchsorted(text_ends, bounds[:-1][outlier] + 1)] = True
    return flags


@register("remove_long_words_mapper")
class RemoveLongWordsMapper(TextMapper):
    def __init__(self, min_len: int = 1, max_len: int = sys.maxsize, **kwargs):
        super().__init__(**kwargs)
        self.min_len = min_len
        self.max_len = max_len

    def keep_word(self, word: str) -> bool:
        length = len(word)
        if self.min_len <= length <= self.max_len:
            return True
        # stripping can only shorten, so it only helps a word that is too long
        return length > self.max_len and self.min_len <= len(strip_special(word)) <= self.max_len

    def process_text(self, text: str) -> str:
        return self._rebuild([text])[0]

    def process_batched(self, batch: Batch) -> Batch:
        column = self.texts(batch)
        rows = [i for i, t in enumerate(column) if isinstance(t, str)]
        out = list(column)
        for i, text in zip(rows, self._rebuild([column[i] for i in rows])):
            out[i] = text
        batch.set_column(self.text_key, out)
        batch.invalidate_cache()
        return batch

    def _rebuild(self, texts: list[str]) -> list[str]:
        longest_possible = max(map(len, texts), default=0)
        if self.min_len <= 1 and self.max_len >= longest_possible:
            return [rebuild_words(t) for t in texts]
        outliers = word_length_outliers(texts, self.min_len, self.max_len)
        return [rebuild_words(t, self.keep_word if o else None) for t, o in zip(texts, outliers.tolist())]
