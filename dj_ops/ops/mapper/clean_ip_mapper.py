"""clean_ip_mapper: replace IPv4 (dotted quad, octets 0-255) and full 8-group IPv6 addresses with ``repl``.

Default pattern as Data-Juicer 1.6.1 (``regex`` module, DOTALL); a user ``pattern`` may be wrapped
as ``r'...'``.  Pre-check for the default pattern: an IPv4 match contains ``.`` + digit and an IPv6
match ``:`` + a hex digit (never a space), so texts with neither (literal-first stdlib searches, far
faster than the ``regex`` scan) are returned as they are.
"""

from __future__ import annotations

import re

from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import RegexReplaceMapper

_IP_PATTERN = (
    r"(?:(?:1[0-9][0-9]\.)|(?:2[0-4][0-9]\.)|(?:25[0-5]\.)|(?:[1-9][0-9]\.)|(?:[0-9]\.))"
    r"{3}(?:(?:1[0-9][0-9])|(?:2[0-4][0-9])|(?:25[0-5])|(?:[1-9][0-9])|(?:[0-9]))|"
    r"([\da-fA-F]{1,4}:){7}[\da-fA-F]{1,4}"
)
_DOT_THEN_DIGIT = re.compile(r"\.[0-9]").search
_COLON_THEN_NON_SPACE = re.compile(r":\S").search


def _may_hold_ip(text: str) -> bool:
    return bool(_DOT_THEN_DIGIT(text) or _COLON_THEN_NON_SPACE(text))


@register("clean_ip_mapper")
class CleanIpMapper(RegexReplaceMapper):
    default_pattern = _IP_PATTERN
    default_precheck = staticmethod(_may_hold_ip)
