"""whitespace_normalization_mapper: ``text.strip()``, then every character of Data-Juicer's
``VARIOUS_WHITESPACES`` becomes a plain space (newlines are kept), as Data-Juicer 1.6.1.

One compiled character-class ``sub`` per text (the plain space is left out of the class: it
would be replaced by itself); in ASCII texts the tab is the only such character, a plain
``str.replace``.
"""

from __future__ import annotations

import re

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import char_class

#: Data-Juicer's VARIOUS_WHITESPACES (data_juicer/ops/common/special_characters.py), as code points
VARIOUS_WHITESPACES = frozenset(
    chr(cp)
    for cp in (
        0x0009, 0x0020, 0x0084, 0x00A0, *range(0x2000, 0x200E), 0x202F, 0x205F, 0x2060, 0x3000, 0xFFFC,
    )
)
_OTHER_WHITESPACE = re.compile(char_class(ord(c) for c in VARIOUS_WHITESPACES if c != " "))


@register("whitespace_normalization_mapper")
class WhitespaceNormalizationMapper(TextMapper):
    def process_text(self, text: str) -> str:
        text = text.strip()
        if text.isascii():  # the tab is the only listed ASCII character besides the space
            return text.replace("\t", " ")
        return _OTHER_WHITESPACE.sub(" ", text)
