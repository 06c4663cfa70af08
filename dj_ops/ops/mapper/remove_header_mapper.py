"""remove_header_mapper: cut everything before the first LaTeX sectioning command.

Pattern ``^(.*?)(\\chapter|\\part|\\section|\\subsection|\\subsubsection|\\paragraph|\\subparagraph
... [optional]{title})`` (``regex`` module, DOTALL) replaced by its second group, i.e. the text
from the earliest header on.  Texts without a header become ``""`` when ``drop_no_head`` (the
default), else stay as they are.

Data-Juicer 1.6.1 fixed both quirks the 1.4.3 reference (§14.5) describes: ``drop_no_head`` now
empties header-less texts, and the pattern has the ``|`` between ``paragraph`` and
``subparagraph``.  This follows 1.6.1.  Every header starts with a backslash, so texts without one
skip the regex.
"""

from __future__ import annotations

import regex

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register

_HEADER_NAMES = ("chapter", "part", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
_HEADER = regex.compile(
    r"^(.*?)(" + "|".join(rf"\\\b{name}\b\*?(?:\[(.*?)\])?\{{(.*?)\}}" for name in _HEADER_NAMES) + ")",
    regex.DOTALL,
)


@register("remove_header_mapper")
class RemoveHeaderMapper(TextMapper):
    def __init__(self, drop_no_head: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.drop_no_head = drop_no_head

    def process_text(self, text: str) -> str:
        header = _HEADER.search(text) if "\\" in text else None
        if header is None:
            return "" if self.drop_no_head else text
        # the match runs from the start of the text to the end of the header (group 2): the
        # replacement by group 2 leaves the text from the header on
        return text[header.start(2) :]
