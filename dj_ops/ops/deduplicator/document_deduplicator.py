"""document_deduplicator: exact deduplication on ``md5(text.strip())`` (hex digest, Data-Juicer's
``__dj__hash``) after optional lowercasing and, with ``ignore_non_character``, removal of every
match of Data-Juicer's ``\\s+|\\d+|[<string.punctuation>]`` (``regex`` module); the first
occurrence of each hash is kept.

The removal deletes exactly the characters matched by ``[\\s\\d<punctuation>]``, so it runs as one
per-code-point table lookup over the whole batch (numpy) instead of a regex pass per text.
"""

from __future__ import annotations

import functools
import hashlib
import string

import numpy as np
import regex

from dj_ops.ops.base import Deduplicator
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.codepoints import N_CODEPOINTS, codepoints, per_row_sums

#: Data-Juicer's pattern; only its character set is used (see ``_removed_chars``)
NON_CHARACTER_PATTERN = rf"\s+|\d+|[{regex.escape(string.punctuation)}]"


@register("document_deduplicator")
class DocumentDeduplicator(Deduplicator):
    text_keys = True
    light_text_keys = True

    def __init__(self, lowercase: bool = False, ignore_non_character: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.ignore_non_character = ignore_non_character

    def compute_hash(self, batch: Batch) -> list[str]:
        texts = self.texts(batch)
        if self.lowercase:
            texts = [t.lower() for t in texts]
        if self.ignore_non_character:
            texts = remove_non_characters(texts)
        md5 = hashlib.md5
        # surrogatepass: a lone surrogate (legal in a str) hashes instead of failing the batch
        return [md5(t.strip().encode("utf-8", "surrogatepass")).hexdigest() for t in texts]


def remove_non_characters(texts: list[str]) -> list[str]:
    """``regex.sub(NON_CHARACTER_PATTERN, "", t)`` for every text.

    ASCII texts go through ``bytes.translate``; the others through one numpy pass over their code
    points, decoded back at once and cut per text.
    """
    removed = _removed_chars()
    ascii_removed = bytes(np.flatnonzero(removed[:128]).tolist())
    out = list(texts)
    wide = []
    for i, text in enumerate(texts):
        if text.isascii():
            out[i] = text.encode("ascii").translate(None, ascii_removed).decode("ascii")
        else:
            wide.append(i)
    if wide:
        cps = codepoints([texts[i] for i in wide])
        kept = ~removed.take(cps.cp, mode="clip")
        joined = cps.cp.take(np.flatnonzero(kept)).tobytes().decode("utf-32-le", "surrogatepass")
        ends = np.cumsum(per_row_sums(kept, cps)).tolist()
        for i, start, end in zip(wide, [0, *ends[:-1]], ends):
            out[i] = joined[start:end]
    return out


@functools.cache
def _removed_chars() -> np.ndarray:
    """Table over all code points: does Data-Juicer's pattern delete this character?

    Each alternative matches single characters of one class, so the deleted set is the class union;
    it is read off the ``regex`` module itself, so it follows that module's Unicode tables.
    """
    all_chars = "".join(map(chr, range(N_CODEPOINTS)))
    union = regex.compile(rf"[\s\d{regex.escape(string.punctuation)}]")
    table = np.zeros(N_CODEPOINTS, dtype=bool)
    table[[ord(c) for c in union.findall(all_chars)]] = True
    table.flags.writeable = False
    return table
