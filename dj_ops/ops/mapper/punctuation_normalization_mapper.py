"""punctuation_normalization_mapper: map unicode punctuation to ASCII equivalents character by
character (``，``→``,``, ``—``→`` - ``, ``…``→``...`` ...), Data-Juicer 1.6.1's table.

Every mapped character is non-ASCII, so ASCII texts are returned as they are; other texts go
through ``re.sub`` over a character class of the mapped characters (a C-level scan) instead of a
per-character lookup.
"""

from __future__ import annotations

import re

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import char_class

PUNCTUATION_UNICODE = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}
_PUNCTUATION = re.compile(char_class(ord(c) for c in PUNCTUATION_UNICODE))


def _ascii_equivalent(match: re.Match) -> str:
    return PUNCTUATION_UNICODE[match.group()]


@register("punctuation_normalization_mapper")
class PunctuationNormalizationMapper(TextMapper):
    def process_text(self, text: str) -> str:
        if text.isascii():
            return text
        return _PUNCTUATION.sub(_ascii_equivalent, text)
