"""clean_copyright_mapper: drop a copyright comment block, or the comment lines heading the text.

As Data-Juicer 1.6.1: when the text holds a ``/* ... */`` block, the first such block is removed
if it contains "copyright" (any case) and the text is otherwise left alone; without a block, the
leading lines that are empty or start with ``//``, ``#`` or ``--`` are dropped.  Texts without
``/*`` whose first line is a non-empty non-comment line are returned as they are.
"""

from __future__ import annotations

import regex

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register

_BLOCK_COMMENT = regex.compile(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")
_COPYRIGHT = regex.compile("copyright", regex.IGNORECASE)
_LINE_COMMENT_MARKS = ("//", "#", "--")


@register("clean_copyright_mapper")
class CleanCopyrightMapper(TextMapper):
    def process_text(self, text: str) -> str:
        if "/*" in text:
            block = _BLOCK_COMMENT.search(text)
            if block:
                if _COPYRIGHT.search(block.group()):
                    return text[: block.start()] + text[block.end() :]
                return text
        # the first line decides whether any line is dropped; "\n" first means an empty first line
        if text and not text.startswith(_LINE_COMMENT_MARKS + ("\n",)):
            return text
        lines = text.split("\n")
        skip = 0
        for line in lines:
            if line and not line.startswith(_LINE_COMMENT_MARKS):
                break
            skip += 1
        return "\n".join(lines[skip:])
