"""character_repetition_filter: share of the text covered by its most repeated character n-grams.

For the ``rep_len``-grams ``text[i:i+rep_len]`` of a text, with their frequencies sorted in
decreasing order ``f``: ``k = min(int(sqrt(len(f))), number of f > 1)`` and
``char_rep_ratio = sum(f[:k]) / sum(f)`` (0.0 when the text is shorter than ``rep_len``), exactly
as Data-Juicer.  Instead of a Python ``Counter`` over substrings, a numba kernel walks the code
points of the whole batch with a rolling hash and counts the n-grams in an open-addressing hash
table; a hash match only counts after the two n-grams' code points compare equal, so hash
collisions never change a result.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.codepoints import codepoints

#: multiplier of the rolling polynomial hash (odd, so no information is shifted out)
_BASE = 0x9E3779B97F4A7C15
#: multiplier that spreads a hash over the table slots (its top bits pick the slot)
_SPREAD = 0xBF58476D1CE4E5B9


@register("character_repetition_filter")
class CharacterRepetitionFilter(Filter):
    stat_bounds = {"char_rep_ratio": ("min_ratio", "max_ratio")}

    def __init__(self, rep_len: int = 10, min_ratio: float = 0.0, max_ratio: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if rep_len < 1:
            raise ValueError(f"rep_len must be a positive integer, got {rep_len}")
        self.rep_len = rep_len
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def compute_stats(self, batch: Batch) -> None:
        batch.stats["char_rep_ratio"] = char_repetition_ratios(self.texts(batch), self.rep_len)


def char_repetition_ratios(texts: list[str], n: int) -> list[float]:
    """Data-Juicer's ``char_rep_ratio`` of every text, for n-grams of ``n`` characters."""
    cps = codepoints(texts)
    ratios = np.zeros(len(texts), dtype=np.float64)
    leading_weight = np.uint64(pow(_BASE, n - 1, 2**64))
    _kernel()(cps.cp, cps.starts, cps.lens, n, leading_weight, ratios)
    return ratios.tolist()


@functools.cache
def _kernel() -> Callable:
    """The numba-compiled kernel (compiled on first use, cached on disk)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_ratios_kernel)


def _ratios_kernel(cp, starts, lens, n, leading_weight, out):  # pragma: no cover - runs compiled
    """``out[d]`` = char_rep_ratio of the text ``cp[starts[d] : starts[d] + lens[d]]``.

    The hash of the n-gram at i is ``sum(cp[i + j] * BASE**(n - 1 - j))`` mod 2**64, rolled from
    the previous one; ``leading_weight`` is ``BASE**(n - 1)``.  Table slots hold the first position
    of each distinct n-gram, its hash and its count.
    """
    base = np.uint64(_BASE)
    spread = np.uint64(_SPREAD)
    most = 1
    for d in range(len(lens)):
        most = max(most, lens[d] - n + 1)
    bits = 1
    while (1 << bits) < 2 * most:
        bits += 1
    slot_first = np.full(1 << bits, -1, dtype=np.int64)
    slot_hash = np.zeros(1 << bits, dtype=np.uint64)
    slot_count = np.zeros(1 << bits, dtype=np.int64)
    used = np.empty(most, dtype=np.int64)
    repeated = np.empty(most, dtype=np.int64)

    for d in range(len(lens)):
        n_grams = lens[d] - n + 1
        if n_grams <= 0:
            continue
        s = starts[d]
        bits = 1  # table of >= 2 slots per n-gram: probe chains stay short
        while (1 << bits) < 2 * n_grams:
            bits += 1
        mask = (1 << bits) - 1
        shift = np.uint64(64 - bits)

        h = np.uint64(0)
        for j in range(n):
            h = h * base + np.uint64(cp[s + j])
        n_distinct = 0
        for i in range(n_grams):
            if i > 0:
                h = (h - np.uint64(cp[s + i - 1]) * leading_weight) * base + np.uint64(cp[s + i + n - 1])
            slot = np.int64((h * spread) >> shift)
            while True:
                first = slot_first[slot]
                if first < 0:
                    slot_first[slot] = i
                    slot_hash[slot] = h
                    slot_count[slot] = 1
                    used[n_distinct] = slot
                    n_distinct += 1
                    break
                if slot_hash[slot] == h:
                    same = True
                    for j in range(n):
                        if cp[s + first + j] != cp[s + i + j]:
                            same = False
                            break
                    if same:
                        slot_count[slot] += 1
                        break
                slot = (slot + 1) & mask

        n_repeated = 0
        for u in range(n_distinct):
            count = slot_count[used[u]]
            if count > 1:
                repeated[n_repeated] = count
                n_repeated += 1
            slot_first[used[u]] = -1  # leave the table empty for the next text
        k = min(int(np.sqrt(n_distinct)), n_repeated)
        top = 0
        if k > 0:
            ordered = np.sort(repeated[:n_repeated])
            for t in range(k):
                top += ordered[n_repeated - 1 - t]
        out[d] = top / n_grams
