"""A batch of strings as one flat array of Unicode code points, for numpy-level text stats."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import numpy as np

#: number of Unicode code points (U+0000 .. U+10FFFF), the size of per-code-point lookup tables
N_CODEPOINTS = 0x110000


class Codepoints(NamedTuple):
    """``cp[starts[i] : starts[i] + lens[i]]`` are the code points of ``texts[i]``."""

    cp: np.ndarray  # uint32, all texts concatenated
    lens: np.ndarray  # int64, len(text) per row
    starts: np.ndarray  # int64, offset of each row in cp


def codepoints(texts: Sequence[str]) -> Codepoints:
    """Encode all texts at once (UTF-32 has one unit per code point, so ``len(text)`` matches).

    ``surrogatepass`` keeps lone surrogates (legal in a Python str) as their own code points.
    """
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        np.cumsum(lens[:-1], out=starts[1:])
    cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return Codepoints(cp, lens, starts)


@functools.cache
def char_class_table(predicate: str) -> np.ndarray:
    """``table[cp] == chr(cp).<predicate>()`` for every code point, e.g. ``char_class_table("isalnum")``.

    Built from the ``str`` method itself (once per process), so it agrees with Python exactly.
    """
    test = getattr(str, predicate)
    table = np.frombuffer(bytes(map(test, map(chr, range(N_CODEPOINTS)))), dtype=bool)
    table.flags.writeable = False
    return table


def count_per_row(table: np.ndarray, cps: Codepoints) -> np.ndarray:
    """Number of code points of each row for which the boolean ``table`` is True."""
    return per_row_sums(table.take(cps.cp, mode="clip"), cps)


def per_row_sums(values: np.ndarray, cps: Codepoints) -> np.ndarray:
    """Sum (int64) of ``values`` (one per code point) over each row's span; 0 for empty rows."""
    sums = np.zeros(len(cps.lens), dtype=np.int64)
    nonempty = np.flatnonzero(cps.lens)
    if len(nonempty):
        # consecutive non-empty rows tile the array, so each reduceat segment is exactly one row
        sums[nonempty] = np.add.reduceat(values, cps.starts[nonempty], dtype=np.int64)
    return sums
