"""clean_links_mapper: replace URLs (http/https/ftp/..., ``www.``, ``host.tld/``) with ``repl``.

Default pattern: Data-Juicer 1.6.1's case-insensitive URL regex (``regex`` module, DOTALL); a user
``pattern`` may be wrapped as ``r'...'``.  Pre-check for the default pattern: every match starts
with one of ``scheme:`` + (``/`` or ``[a-z0-9%]``), ``www\d{0,3}.`` or ``host.tld/`` (any case), so it
contains ``:`` followed by a non-space, or ``www`` in some case (only ``w``/``W`` fold to ``w``, so
the lower-cased text holds ``www``), or ``.`` + 2-4 letters + ``/`` (letters are neither spaces nor
``/``).  Texts with none of these, found by literal-first stdlib searches that run at memchr-like
speed, are returned as they are; the ``regex`` engine scans an order of magnitude slower.
"""

from __future__ import annotations

import re

from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import RegexReplaceMapper

_URL_PATTERN = (
    r"(?i)\b("
    r"(?:[a-z][\w-]+:(?:\/{1,3}|[a-z0-9%])|www\d{0,3}[.]|[a-z0-9.\-]+[.][a-z]{2,4}\/)"
    r"(?:[^\s()<>]+|\(([^\s()<>]+|(\([^\s()<>]+\)))*\))"
    r"+(?:\(([^\s()<>]+|(\([^\s()<>]+\)))*\)|[^\s`!()\[\]{};:\'\".,<>?«»“”‘’])"
    r")"
)
_COLON_THEN_NON_SPACE = re.compile(r":\S").search
_DOT_TLD_SLASH = re.compile(r"\.[^/\s]{2,4}/").search


def _may_hold_url(text: str) -> bool:
    return bool(_COLON_THEN_NON_SPACE(text) or _DOT_TLD_SLASH(text) or "www" in text.lower())


@register("clean_links_mapper")
class CleanLinksMapper(RegexReplaceMapper):
    default_pattern = _URL_PATTERN
    default_precheck = staticmethod(_may_hold_url)
