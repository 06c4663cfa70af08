"""expand_macro_mapper: inline-expand argument-less LaTeX macros defined in the text itself.

As Data-Juicer 1.6.1: macros come from ``\\newcommand{\\name}{value}`` / ``\\newcommand*`` and
``\\def\\name{value}`` lines (the definition must end its line; later definitions of a name
override the value).  Each ``\\name`` followed by a non-alphanumeric character is replaced by its
value, names and values passed through ``unicode-escape`` exactly as upstream does, one
substitution pass per macro in definition order (so definitions themselves are rewritten too).
Texts with neither ``\\newcommand`` nor ``\\def`` define no macro and are returned as they are.
"""

from __future__ import annotations

import regex

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register

_NEWCOMMAND = regex.compile(r"\\\bnewcommand\b\*?\{(\\[a-zA-Z0-9]+?)\}\{(.*?)\}$", flags=regex.MULTILINE)
_DEF = regex.compile(r"\\def\s*(\\[a-zA-Z0-9]+?)\s*\{(.*?)\}$", flags=regex.MULTILINE)


def _escaped(s: str) -> str:
    # upstream turns names and values into regex/template-safe text this way (backslashes doubled)
    return s.encode("unicode-escape").decode("utf-8")


def non_arg_macros(text: str) -> dict[str, str]:
    """Escaped macro name -> escaped value, \\newcommand definitions first, then \\def ones."""
    macros: dict[str, str] = {}
    for definition in (_NEWCOMMAND, _DEF):
        for m in definition.finditer(text):
            macros[_escaped(m.group(1))] = _escaped(m.group(2))
    return macros


@register("expand_macro_mapper")
class ExpandMacroMapper(TextMapper):
    def process_text(self, text: str) -> str:
        if "\\newcommand" not in text and "\\def" not in text:
            return text
        for name, value in non_arg_macros(text).items():
            # the character after the name is captured and written back, so "\\name" inside a
            # longer alphanumeric command is left alone
            text = regex.sub("(" + name + ")([^a-zA-Z0-9])", value + r"\2", text)
        return text
