"""Test texts shared by the OP tests."""

from __future__ import annotations

import sys


def all_unicode_texts(block: int = 4096) -> list[str]:
    """Every code point (surrogates included), ``block`` per text, with an empty text after each."""
    texts = []
    for lo in range(0, sys.maxunicode + 1, block):
        texts += ["".join(map(chr, range(lo, min(lo + block, sys.maxunicode + 1)))), ""]
    return texts
