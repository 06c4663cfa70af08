"""Helpers shared by the text-cleaning mappers: regex replacement with a cheap pre-check, and
character-class patterns built from code-point sets."""

from __future__ import annotations

import re
from typing import Callable, ClassVar, Iterable

import regex

from dj_ops.ops.base import TextMapper


def unwrap_raw_pattern(pattern: str) -> str:
    """Strip a Python raw-string wrapper (``r'...'`` or ``r"..."``) from a user pattern, as Data-Juicer does."""
    if len(pattern) > 2 and (
        (pattern.startswith("r'") and pattern.endswith("'")) or (pattern.startswith('r"') and pattern.endswith('"'))
    ):
        return pattern[2:-1]
    return pattern


def char_class(codepoints: Iterable[int]) -> str:
    """A regex character class (``[...]``) matching exactly the given code points, as ranges
    (code points up to 0xFF are written as two-digit hex escapes, so it also serves bytes patterns
    once encoded)."""
    cps = sorted(set(codepoints))
    if not cps:
        raise ValueError("empty character class")
    parts = []
    start = prev = cps[0]
    for cp in cps[1:] + [None]:
        if cp is not None and cp == prev + 1:
            prev = cp
            continue
        parts.append(_class_char(start) if start == prev else f"{_class_char(start)}-{_class_char(prev)}")
        if cp is not None:
            start = prev = cp
    return "[" + "".join(parts) + "]"


def _class_char(cp: int) -> str:
    # \xNN / \uXXXX / \UXXXXXXXX escapes are understood by both ``re`` and ``regex``
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


class RegexReplaceMapper(TextMapper):
    """Replace every match of ``pattern`` (``regex`` module, DOTALL) with ``repl``.

    Data-Juicer searches first and substitutes only on a hit; ``sub`` on a text without a match
    returns it unchanged, so one ``sub`` per text is the same.  Subclasses name their default
    pattern and, for it only, a necessary condition (``default_precheck``): a text the check
    rejects cannot contain a match, so the full pattern is not run on it.
    """

    default_pattern: ClassVar[str]
    #: returns a falsy value only for texts the default pattern cannot match; None: no pre-check
    default_precheck: ClassVar[Callable[[str], object] | None] = None

    def __init__(self, pattern: str | None = None, repl: str = "", **kwargs):
        super().__init__(**kwargs)
        if pattern is None:
            self.pattern = self.default_pattern
            self._precheck = type(self).default_precheck
        else:
            self.pattern = unwrap_raw_pattern(pattern)
            self._precheck = None
        self.repl = repl
        self._sub = regex.compile(self.pattern, regex.DOTALL).sub

    def process_text(self, text: str) -> str:
        if self._precheck is not None and not self._precheck(text):
            return text
        return self._sub(self.repl, text)


# ---------------------------------------------------------------------------------------------
# Structure of compiled stdlib ``re`` patterns, to prove that a cheaper search finds the same
# matches (used to speed up ftfy's regexes without changing a result)


def _sre():
    try:
        from re import _constants, _parser  # Python >= 3.11
    except ImportError:  # Python 3.10
        import sre_constants as _constants  # type: ignore[no-redef]
        import sre_parse as _parser  # type: ignore[no-redef]
    return _constants, _parser


def _parse(pattern: re.Pattern):
    _, parser = _sre()
    try:
        return parser.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None


def _element_chars(op, av) -> frozenset[int] | None:
    """Code points one element consumes, when it is a plain literal or class (no negation, category,
    case folding); None otherwise."""
    c, _ = _sre()
    if op is c.LITERAL:
        return frozenset((av,))
    if op is not c.IN:
        return None
    cps: set[int] = set()
    for o, a in av:
        if o is c.LITERAL:
            cps.add(a)
        elif o is c.RANGE:
            cps.update(range(a[0], a[1] + 1))
        else:
            return None
    return frozenset(cps)


def first_chars(pattern: re.Pattern) -> frozenset[int] | None:
    """Characters that the first character consumed by any match of ``pattern`` belongs to.

    Then ``pattern.search(text)`` equals ``pattern.match(text, p)`` at the first position ``p`` holding
    such a character that gives a match (``match`` at ``p`` sees the whole text, lookbehind and
    ``^`` included, as ``search`` does there).  None when this cannot be shown (a match might be
    empty or start with an element that is not a plain class).
    """
    c, _ = _sre()
    zero_width = (c.AT, c.ASSERT, c.ASSERT_NOT)
    repeats = tuple(getattr(c, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(c, n))

    def first(items) -> frozenset[int] | None:
        for op, av in items:
            if op in zero_width:
                continue
            chars = _element_chars(op, av)
            if chars is not None:
                return chars
            if op is c.SUBPATTERN:
                return first(av[-1].data)
            if op is c.BRANCH:
                alternatives = [first(alt.data) for alt in av[1]]
                return None if any(a is None for a in alternatives) else frozenset().union(*alternatives)
            if op in repeats and av[0] >= 1:
                return first(av[2].data)
            return None
        return None

    tree = _parse(pattern)
    return None if tree is None else first(tree.data)


def windowed_search_profile(pattern: re.Pattern) -> tuple[frozenset[int], int] | None:
    """``(chars, width)``: every match of ``pattern`` holds one of ``chars`` and is at most ``width``
    long, and nothing outside a match decides whether it matches.

    Then a match exists exactly when one exists inside some window reaching ``width - 1``
    characters either side of an occurrence of ``chars`` (``search`` with pos/endpos).  Needs: in
    each top-level alternative a plain-class element outside any repeat (of those, the one rarest
    in ordinary text is taken), bounded width, and no lookaround, word boundary, back-reference or
    anchor other than the start of the text (``^`` and ``\A`` never match at ``pos`` > 0), no case
    folding.  None when this cannot be shown.
    """
    c, _ = _sre()
    if pattern.flags & (re.IGNORECASE | re.MULTILINE):
        return None
    tree = _parse(pattern)
    if tree is None:
        return None
    width = tree.getwidth()[1]
    if width >= c.MAXREPEAT:
        return None
    repeats = tuple(getattr(c, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(c, n))
    start_anchors = (c.AT_BEGINNING, c.AT_BEGINNING_STRING)

    def context_free(items) -> bool:
        for op, av in items:
            if op is c.AT:
                if av not in start_anchors:
                    return False
            elif op is c.BRANCH:
                if not all(context_free(alt.data) for alt in av[1]):
                    return False
            elif op is c.SUBPATTERN:
                if not context_free(av[-1].data):
                    return False
            elif op in repeats:
                if not context_free(av[2].data):
                    return False
            elif op not in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
                return False
        return True

    if not context_free(tree.data):
        return None
    top = tree.data
    alternatives = [alt.data for alt in top[0][1][1]] if len(top) == 1 and top[0][0] is c.BRANCH else [top]
    chars: set[int] = set()
    for alt in alternatives:
        elements = [e for e in (_element_chars(op, av) for op, av in alt) if e is not None]
        if not elements:
            return None
        chars |= min(elements, key=_rarity_rank)
    return frozenset(chars), width


def _rarity_rank(chars: frozenset[int]) -> tuple[bool, int, int]:
    # which element of an alternative to anchor the windows on: any choice is exact, the rarest in
    # ordinary text is fastest; ASCII and letters are common, symbols and punctuation less so
    return (any(cp < 0x80 for cp in chars), sum(chr(cp).isalpha() for cp in chars), len(chars))


def whole_text_class(pattern: re.Pattern) -> frozenset[int] | None:
    """The set S when ``pattern`` is ``^[S]*$`` with ``"\\n"`` in S (or ending in ``\\Z``): then
    ``pattern.match(text)`` succeeds exactly when every character of the text is in S."""
    c, _ = _sre()
    tree = _parse(pattern)
    if tree is None or pattern.flags & re.IGNORECASE or len(tree.data) != 3:
        return None
    (op1, start), (op2, repeat), (op3, end) = tree.data
    if not (op1 is c.AT and start in (c.AT_BEGINNING, c.AT_BEGINNING_STRING)):
        return None
    if not (op3 is c.AT and end in (c.AT_END, c.AT_END_STRING)):
        return None
    if op2 is not c.MAX_REPEAT or repeat[0] != 0 or repeat[1] != c.MAXREPEAT or len(repeat[2].data) != 1:
        return None
    chars = _element_chars(*repeat[2].data[0])
    if chars is None or (end is c.AT_END and ord("\n") not in chars):
        return None
    return chars


class WindowedSearch:
    """``bool(pattern.search(text))``, computed by searching only short windows of the text.

    Built by :meth:`for_pattern` when ``windowed_search_profile`` proves it exact: a match holds
    an anchor character and is at most ``width`` long, so a match holding the anchor at ``p`` lies
    within ``[p - width + 1, p + width)``; windows that overlap or touch are merged.
    """

    def __init__(self, pattern: re.Pattern, anchors: frozenset[int], width: int):
        self._search = pattern.search
        self._anchors = re.compile(char_class(anchors))
        self._reach = width - 1

    @classmethod
    def for_pattern(cls, pattern: re.Pattern) -> "WindowedSearch | None":
        profile = windowed_search_profile(pattern)
        return None if profile is None else cls(pattern, *profile)

    def __call__(self, text: str) -> bool:
        search, reach, n = self._search, self._reach, len(text)
        lo = hi = None
        for anchor in self._anchors.finditer(text):
            p = anchor.start()
            start, end = max(p - reach, 0), min(p + 1 + reach, n)
            if hi is not None and start <= hi:
                hi = end
                continue
            if hi is not None and search(text, lo, hi):
                return True
            lo, hi = start, end
        return hi is not None and bool(search(text, lo, hi))


class FirstCharSearch:
    """A compiled pattern whose ``search(text)`` only tries positions holding a character that
    can start a match (see ``first_chars``); other attributes are the pattern's own."""

    def __init__(self, pattern: re.Pattern, starts: frozenset[int]):
        self._pattern = pattern
        starts_class = char_class(starts)
        self._starts = re.compile(starts_class.encode("ascii") if isinstance(pattern.pattern, bytes) else starts_class)

    @classmethod
    def for_pattern(cls, pattern: re.Pattern) -> "FirstCharSearch | None":
        starts = first_chars(pattern)
        return None if starts is None else cls(pattern, starts)

    def search(self, text):
        match = self._pattern.match
        for start in self._starts.finditer(text):
            found = match(text, start.start())
            if found:
                return found
        return None

    def __getattr__(self, name: str):
        return getattr(self._pattern, name)
