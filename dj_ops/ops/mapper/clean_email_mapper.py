"""clean_email_mapper: replace e-mail addresses with ``repl`` (default: remove them).

Default pattern ``[A-Za-z0-9.\\-+_]+@[a-z0-9.\\-+_]+\\.[a-z]+`` (``regex`` module, DOTALL), as
Data-Juicer 1.6.1; a user ``pattern`` may be wrapped as a raw-string literal ``r'...'``.  Texts
without ``@`` cannot match the default pattern and are returned as they are.
"""

from __future__ import annotations

from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import RegexReplaceMapper


def _has_at_sign(text: str) -> bool:
    return "@" in text


@register("clean_email_mapper")
class CleanEmailMapper(RegexReplaceMapper):
    default_pattern = r"[A-Za-z0-9.\-+_]+@[a-z0-9.\-+_]+\.[a-z]+"
    default_precheck = staticmethod(_has_at_sign)
