"""fix_unicode_mapper: ``ftfy.fix_text(text, normalization=...)`` on every text, as Data-Juicer 1.6.1
(``normalization`` None or empty means ``"NFC"``; NFC, NFKC, NFD, NFKD, any case).

Two speed-ups, neither of which can change a result (tests/ops/test_fix_unicode_mapper.py checks
them against plain ftfy on real and mutated text):

1. Skip.  ftfy fixes each line segment in a loop that stops as soon as one pass changes nothing,
   so a segment comes back unchanged when its first pass is the identity: no character that a
   per-character fixer rewrites (control and C1 characters, CR, line/paragraph separators,
   surrogates, curly quotes, Latin ligatures, half/full-width forms), no HTML entity while ftfy's
   "auto" unescaping is on (it turns off for good at the first segment holding ``<``), no mojibake
   by ftfy's own badness regex, already in the normalization form.  Texts whose segments all pass
   are returned without calling ftfy (about 97% of IMDB reviews).

2. Exact equivalents of ftfy's hot spots, swapped into ftfy only while a batch runs
   (reference-counted, restored afterwards), for the texts that do need fixing:
   - ``is_bad``: the badness regex is searched only in short windows around the characters every
     match must hold; its structure (a mandatory plain character class in every alternative,
     bounded match length, nothing that looks outside the match) is checked on the regex itself
     when this module loads, else the plain search is kept;
   - the two detector regexes the mojibake step only ``search``: tried only at positions holding
     a character that can start a match (also derived from the regex);
   - ``possible_encoding`` (``^[charset]*$``) and the three ``str.translate`` fixers: answered with
     byte-level ``translate`` for Latin-1 texts, fixers skipped when no table key occurs.
   Each swap is made only when ftfy still holds the object it replaces.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from typing import Callable, Iterator

import ftfy
from ftfy import badness, chardata, fixes
from ftfy.badness import BADNESS_RE

from dj_ops.core.batch import Batch
from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register
from dj_ops.ops.common.mapper_utils import FirstCharSearch, WindowedSearch, char_class, whole_text_class

NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD")
_SEGMENT_MAX = ftfy.TextFixerConfig().max_decode_length

# ---------------------------------------------------------------------------------------------
# Exact, faster equivalent of ftfy.badness.is_bad

_BADNESS_SEARCH = WindowedSearch.for_pattern(BADNESS_RE)


def is_bad(text: str) -> bool:
    """Same result as ``ftfy.badness.is_bad``: the badness regex searched only in windows around
    the characters every match must hold (see ``windowed_search_profile``)."""
    if _BADNESS_SEARCH is None:
        return bool(BADNESS_RE.search(text))
    return _BADNESS_SEARCH(text)


# ---------------------------------------------------------------------------------------------
# Skip test: would ftfy.fix_text return the text unchanged?

# characters some per-character fixer rewrites or removes (ftfy's own tables and patterns);
# the alternation of single-character classes compiles to one character set
_FIXED_CHAR = re.compile(
    "|".join(
        (
            char_class([*chardata.CONTROL_CHARS, *chardata.LIGATURES, *chardata.WIDTH_MAP, 0x1B, 0x0D, 0x2028, 0x2029]),
            chardata.SINGLE_QUOTE_RE.pattern,
            chardata.DOUBLE_QUOTE_RE.pattern,
            chardata.C1_CONTROL_RE.pattern,
            fixes.SURROGATE_RE.pattern,
        )
    )
)


def _segments(text: str) -> Iterator[str]:
    """ftfy.fix_text's segments: lines (ending with their "\\n"), cut at max_decode_length."""
    if len(text) <= _SEGMENT_MAX and "\n" not in text:
        if text:
            yield text
        return
    pos, n = 0, len(text)
    while pos < n:
        brk = text.find("\n", pos) + 1 or n
        brk = min(brk, pos + _SEGMENT_MAX)
        yield text[pos:brk]
        pos = brk


# ASCII bytes among them, for a quick test of pure-ASCII texts
_FIXED_ASCII = bytes(cp for cp in range(0x80) if _FIXED_CHAR.match(chr(cp)))


def unchanged_by_ftfy(text: str, normalization: str) -> bool:
    """True only when ``ftfy.fix_text(text, normalization=normalization)`` returns ``text``."""
    if text.isascii():
        raw = text.encode("ascii")
        if len(raw.translate(None, _FIXED_ASCII)) != len(raw):
            return False
    elif _FIXED_CHAR.search(text):
        return False
    unescape = True  # ftfy's unescape_html="auto", switched off from the first segment with "<" on
    for segment in _segments(text):
        if unescape and "<" in segment:
            unescape = False
        if unescape and "&" in segment and chardata.HTML_ENTITY_RE.search(segment):
            return False
        # ASCII passes ftfy's mojibake test and every normalization form as it is
        if not segment.isascii() and (is_bad(segment) or not unicodedata.is_normalized(normalization, segment)):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Equivalent ftfy internals while a batch runs


def _latin1(text: str) -> bytes | None:
    """The text as Latin-1 bytes (a plain copy for texts CPython stores one byte per character), or
    None when a character is beyond U+00FF."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _skip_unless_present(codepoints, fixer: Callable[[str], str]) -> Callable[[str], str]:
    """``fixer`` run only on texts holding one of ``codepoints`` (for a translate-based fixer, any
    other text comes back unchanged)."""
    present = re.compile(char_class(codepoints)).search
    latin1_keys = bytes(cp for cp in codepoints if cp <= 0xFF)

    def fixer_if_needed(text: str) -> str:
        raw = _latin1(text)
        if raw is None:
            return fixer(text) if present(text) else text
        return fixer(text) if len(raw.translate(None, latin1_keys)) != len(raw) else text

    return fixer_if_needed


def _fast_possible_encoding(original: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    """``chardata.possible_encoding`` (its regex ``^[charset]*$`` over the text), answered for
    Latin-1 texts by deleting the charset's bytes and checking that nothing is left."""
    allowed = {}
    for encoding, regex in chardata.ENCODING_REGEXES.items():
        charset = whole_text_class(regex)
        if charset is not None:
            allowed[encoding] = bytes(cp for cp in charset if cp <= 0xFF)

    def possible_encoding(text: str, encoding: str) -> bool:
        latin1_allowed = allowed.get(encoding)
        raw = None if latin1_allowed is None else _latin1(text)
        if raw is None:
            return original(text, encoding)
        return not raw.translate(None, latin1_allowed)

    return possible_encoding


@functools.cache
def _replacements() -> tuple[tuple[dict, str, object, object], ...]:
    """(namespace, name, ftfy's object, equivalent) for every swap that applies to this ftfy."""
    out: list[tuple[dict, str, object, object]] = []
    if _BADNESS_SEARCH is not None:
        # ftfy's mojibake step and decode_inconsistent_utf8 call is_bad by these global names
        out += [(vars(module), "is_bad", badness.is_bad, is_bad) for module in (ftfy, fixes)]
    # the mojibake step reads these two patterns from chardata and only calls their search
    for name in ("UTF8_DETECTOR_RE", "ALTERED_UTF8_RE"):
        detector = getattr(chardata, name)
        fast_detector = FirstCharSearch.for_pattern(detector)
        if fast_detector is not None:
            out.append((vars(chardata), name, detector, fast_detector))
    # the mojibake step calls chardata.possible_encoding about a dozen times per text
    possible_encoding = chardata.possible_encoding
    out.append((vars(chardata), "possible_encoding", possible_encoding, _fast_possible_encoding(possible_encoding)))
    for name, table in (
        ("fix_latin_ligatures", chardata.LIGATURES),
        ("fix_character_width", chardata.WIDTH_MAP),
        ("remove_control_chars", chardata.CONTROL_CHARS),
    ):
        fixer = getattr(fixes, name)
        out.append((ftfy.FIXERS, name, fixer, _skip_unless_present(table, fixer)))
    return tuple((ns, name, original, fast) for ns, name, original, fast in out if ns.get(name) is original)


class _FastFtfyInternals:
    """Context manager swapping ftfy's slow internals for exact equivalents while any batch runs
    (reference-counted across threads; ftfy is left as it was once the last one exits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._swapped: tuple[tuple[dict, str, object, object], ...] = ()

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._swapped = _replacements()
                for namespace, name, _, fast in self._swapped:
                    namespace[name] = fast
            self._users += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for namespace, name, original, _ in self._swapped:
                    namespace[name] = original
                self._swapped = ()


fast_ftfy_internals = _FastFtfyInternals()


@register("fix_unicode_mapper")
class FixUnicodeMapper(TextMapper):
    def __init__(self, normalization: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.normalization = normalization.upper() if normalization else "NFC"
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"Normalization mode [{normalization}] is not supported. Can only be one of {list(NORMALIZATIONS)}"
            )

    def process_batched(self, batch: Batch) -> Batch:
        with fast_ftfy_internals:
            return super().process_batched(batch)

    def process_text(self, text: str) -> str:
        if unchanged_by_ftfy(text, self.normalization):
            return text
        return ftfy.fix_text(text, normalization=self.normalization)
