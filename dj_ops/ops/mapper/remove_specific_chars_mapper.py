"""remove_specific_chars_mapper: delete every occurrence of the given characters.

``chars_to_remove`` is a string or a list of strings; the characters of all of them form one
regex character class (each escaped), as Data-Juicer 1.6.1; empty means no-op.  When no
character to remove is ASCII, ASCII texts cannot contain one and are returned as they are.
"""

from __future__ import annotations

import regex

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register


@register("remove_specific_chars_mapper")
class RemoveSpecificCharsMapper(TextMapper):
    def __init__(self, chars_to_remove: str | list[str] = "◆●■►▼▲▴∆▻▷❖♡□", **kwargs):
        super().__init__(**kwargs)
        self.chars_to_remove = chars_to_remove
        if chars_to_remove:
            self._sub = regex.compile("[" + "".join(regex.escape(c) for c in chars_to_remove) + "]").sub
            self._ascii_texts_unaffected = not any(c.isascii() for c in "".join(chars_to_remove))
        else:
            self._sub = None

    def process_text(self, text: str) -> str:
        if self._sub is None or (self._ascii_texts_unaffected and text.isascii()):
            return text
        return self._sub("", text)
