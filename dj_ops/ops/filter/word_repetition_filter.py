"""word_repetition_filter: keep samples whose word n-gram repetition ratio lies in
[min_ratio, max_ratio].

Words are lower-cased, split on space / newline / tab (or SentencePiece pieces), stripped of
special characters, empty ones dropped.  Over the ``rep_len``-grams of those words:
``word_rep_ratio = (number of n-gram occurrences whose n-gram occurs more than once) /
(number of n-grams)``, 0.0 when the text has fewer than ``rep_len`` words.

The n-grams of a whole batch are compared at once: each word has an integer id (equal ids exactly
for equal words); a hash of each n-gram's ids and row is sorted to find the repeated ones, and
every group of equal hashes is then checked id by id, so a hash collision can only send its row
to an exact per-row recount, never change a result.
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.text import WordLists, batch_refined_words, load_sentencepiece


@functools.cache
def _multipliers(n: int) -> np.ndarray:
    """n + 1 odd 64-bit multipliers, fixed so runs are reproducible: one per n-gram position, one
    for the row."""
    return np.random.default_rng(n).integers(1, 2**63, size=n + 1, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def word_repetition_ratios(words: WordLists, n: int) -> np.ndarray:
    """``word_rep_ratio`` of every row of ``words`` for n-grams of ``n`` words."""
    totals = np.maximum(words.counts() - n + 1, 0)
    ratios = np.zeros(len(words))
    n_grams = int(totals.sum())
    if not n_grams:
        return ratios
    ids = words.ids().astype(np.uint64)
    # every n-gram lying inside one row: its row and its start in the flat word array
    rows = np.repeat(np.arange(len(words)), totals)
    first_of_row = np.cumsum(totals) - totals
    starts = np.arange(n_grams) + np.repeat(words.offsets[:-1] - first_of_row, totals)

    # key = hash of (n-gram, row) in the high bits, the n-gram's index in the low bits: sorting
    # brings equal hashes together and still tells which n-gram each entry is
    index_bits = max(1, (n_grams - 1).bit_length())
    hash_mask = ~np.uint64((1 << index_bits) - 1)
    hashes = _ngram_hashes(ids, n)[starts] ^ (rows.astype(np.uint64) * _multipliers(n)[n])
    ordered = np.sort((hashes & hash_mask) | np.arange(n_grams, dtype=np.uint64))
    group_hash = ordered >> np.uint64(index_bits)
    same_as_next = group_hash[1:] == group_hash[:-1]
    in_group = np.r_[same_as_next, False] | np.r_[False, same_as_next]
    if not in_group.any():
        return ratios
    members = (ordered[in_group] & ~hash_mask).astype(np.int64)
    group_hash = group_hash[in_group]

    rep_counts = np.bincount(rows[members], minlength=len(words))
    for row in _collided_rows(ids, n, group_hash, starts[members], rows[members]):
        start, end = words.offsets[row], words.offsets[row + 1]
        rep_counts[row] = _repeated_ngrams(words.ids()[start:end], n)
    has_ngrams = totals > 0
    ratios[has_ngrams] = rep_counts[has_ngrams] / totals[has_ngrams]
    return ratios


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of the n-gram starting at every position (wrapping arithmetic)."""
    count = len(ids) - n + 1
    mult = _multipliers(n)
    hashes = ids[:count] * mult[0]
    term = np.empty_like(hashes)
    for k in range(1, n):
        np.multiply(ids[k : k + count], mult[k], out=term)
        hashes += term
    return hashes


def _collided_rows(ids: np.ndarray, n: int, group_hash: np.ndarray, starts: np.ndarray, rows: np.ndarray) -> set[int]:
    """Rows where entries sharing a hash (consecutive in ``group_hash``) are not all the same
    n-gram of the same row: there the hash collided and the count must be redone exactly."""
    group_start = np.r_[True, group_hash[1:] != group_hash[:-1]]
    leader = np.maximum.accumulate(np.where(group_start, np.arange(len(group_hash)), 0))
    same = rows == rows[leader]
    for k in range(n):
        same &= ids[starts + k] == ids[starts[leader] + k]
    bad = ~same
    return set(rows[bad].tolist()) | set(rows[leader[bad]].tolist())


def _repeated_ngrams(ids: np.ndarray, n: int) -> int:
    """Exact count of n-gram occurrences whose n-gram occurs more than once (one row)."""
    seq = ids.tolist()
    counts = Counter(zip(*(seq[k:] for k in range(n))))
    return sum(c for c in counts.values() if c > 1)


@register("word_repetition_filter")
class WordRepetitionFilter(Filter):
    stat_bounds = {"word_rep_ratio": ("min_ratio", "max_ratio")}
    intermediates = ("words",)

    def __init__(
        self,
        lang: str = "en",
        tokenization: bool = False,
        rep_len: int = 10,
        min_ratio: float = 0.0,
        max_ratio: float = 0.5,
        sp_model_dir: str | None = None,
        **kwargs,
    ):
        """``sp_model_dir``: folder holding ``{lang}.sp.model`` for ``tokenization=True`` (not a DJ
        parameter; default: DJ's model cache)."""
        super().__init__(**kwargs)
        if rep_len < 1:
            raise ValueError(f"word_repetition_filter: rep_len must be >= 1, got {rep_len}")
        self.lang = lang
        self.rep_len = rep_len
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.tokenizer = load_sentencepiece(lang, sp_model_dir, self.name) if tokenization else None

    def compute_stats(self, batch: Batch) -> None:
        words = batch_refined_words(batch, self.text_key, lower_case=True, tokenizer=self.tokenizer)
        batch.stats["word_rep_ratio"] = word_repetition_ratios(words, self.rep_len).tolist()
