"""clean_html_mapper: HTML to plain text, as Data-Juicer 1.6.1.

``<li>`` and ``<ol>`` become ``"\\n*"``, ``</li>`` and ``</ol>`` are dropped, then the text of the
document parsed by selectolax's Lexbor parser is returned.

Plain texts skip the parser: without ``<`` there is no tag, and without ``&``, CR, NUL, surrogates
and BOM no character the HTML tokenizer rewrites, so the parser's only effect is dropping the
HTML whitespace (space, tab, LF, FF) that precedes the first character (the parser ignores it
before the body starts); the text is returned with that prefix stripped.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register

_LEADING_HTML_WHITESPACE = " \t\n\x0c"
_REWRITTEN_BY_PARSER = re.compile("[<&\r\x00\ud800-\udfff\ufeff]")


def _is_plain(text: str) -> bool:
    if text.isascii():
        return "<" not in text and "&" not in text and "\r" not in text and "\x00" not in text
    return _REWRITTEN_BY_PARSER.search(text) is None


@register("clean_html_mapper")
class CleanHtmlMapper(TextMapper):
    def process_text(self, text: str) -> str:
        if _is_plain(text):
            return text.lstrip(_LEADING_HTML_WHITESPACE)
        if "<" in text:
            text = text.replace("<li>", "\n*").replace("</li>", "").replace("<ol>", "\n*").replace("</ol>", "")
        return LexborHTMLParser(text).text()
