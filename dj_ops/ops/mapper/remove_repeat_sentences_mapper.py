"""remove_repeat_sentences_mapper: drop every later repeat of a sentence within a text.

As Data-Juicer 1.6.1: the text is split into lines (``\n``), each line into sentences (by default
after ``.。！!？?``, ``......`` and ``……`` unless a closing quote follows, upstream's four regexes,
quirks included; or by a custom ``tokenizer``).  A sentence's key is the sentence stripped,
lower-cased if ``lowercase``, and without characters other than ``[a-zA-Z0-9\u4e00-\u9fa5\n\t ]``
if ``ignore_special_character``.  Sentences whose key is shorter than
``min_repeat_sentence_length`` are always kept; others only the first time their key is seen in
the text.  Kept sentences of a line are concatenated as they were (leading whitespace included),
lines joined by ``\n``.

Speed, with identical results: a line holding none of ``......``, ``……``, ``’``, ``”`` can only
match the first pattern, whose matches are then "a sentence end and the character after it"
taken left to right without overlap; those cuts are found with ``str.find`` instead of a regex
scan.  Keys are computed for all sentences of a text at once: stripped sentences joined by
``\n`` (no key holds one, lower-casing and the class keep it, and it blocks the final-sigma
context of ``lower``), lower-cased and filtered in one go (for ASCII by deleting the ASCII
characters outside the class at byte level), then split again.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import regex

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register

# upstream's splitting patterns, applied in turn to a line that is then split on the inserted "\n"
_SENTENCE_BREAKS = tuple(
    regex.compile(pattern)
    for pattern in (
        r"([.。！!？\?])([^’”])",
        r"(\.{6})([^’”])",
        r"(\…{2})([^’”])",
        r"([.。!！？\?\.{6}\…{2}][’”])([^’”])",
    )
)
# what the last three patterns need to match at all
_LATER_PATTERN_MARKS = ("......", "……", "’", "”")
_SENTENCE_ENDS = ".。！!？?"
_SPECIAL_CHARACTER = regex.compile(r"[^a-zA-Z0-9\u4e00-\u9fa5\n\t ]")
_SPECIAL_ASCII = bytes(cp for cp in range(0x80) if _SPECIAL_CHARACTER.match(chr(cp)))


def split_sentence(line: str) -> list[str]:
    """Upstream's regex sentence splitter; each piece keeps its leading whitespace."""
    if any(mark in line for mark in _LATER_PATTERN_MARKS):
        for pattern in _SENTENCE_BREAKS:
            line = pattern.sub(r"\1\n\2", line)
        return line.split("\n")
    ends = []
    for end in _SENTENCE_ENDS:
        i = line.find(end)
        while i >= 0:
            ends.append(i)
            i = line.find(end, i + 1)
    ends.sort()
    # cut after each end that has a following character, the pair consumed as one match
    last = len(line) - 1
    sentences = []
    start = resume = 0
    for i in ends:
        if resume <= i < last:
            sentences.append(line[start : i + 1])
            start, resume = i + 1, i + 2
    sentences.append(line[start:])
    return sentences


def _without_special_characters(text: str) -> str:
    if text.isascii():
        return text.encode("ascii").translate(None, _SPECIAL_ASCII).decode("ascii")
    return _SPECIAL_CHARACTER.sub("", text)


def _space_separated(tokenize: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """Give a custom tokenizer's sentences (after the first) a leading space unless they start
    with whitespace, so that concatenating them reads like split_sentence's pieces (upstream rule)."""

    def tokenize_line(line: str) -> list[str]:
        return [s if i == 0 or s[:1].isspace() else " " + s for i, s in enumerate(tokenize(line))]

    return tokenize_line


def _lambda_from_string(source: str) -> Callable[[str], list[str]]:
    """A one-argument lambda given as source text (recipes), validated as upstream does."""
    try:
        tree = ast.parse(source, mode="eval")
        if not isinstance(tree.body, ast.Lambda):
            raise ValueError("Input string must be a valid lambda function.")
        if len(tree.body.args.args) != 1:
            raise ValueError("Lambda function must have exactly one argument.")
        return eval(compile(tree, "<string>", "eval"), {"__builtins__": __builtins__})
    except Exception as exc:
        raise ValueError(f"Invalid tokenizer lambda: {exc}") from exc


@register("remove_repeat_sentences_mapper")
class RemoveRepeatSentencesMapper(TextMapper):
    def __init__(
        self,
        lowercase: bool = False,
        ignore_special_character: bool = True,
        min_repeat_sentence_length: int = 2,
        tokenizer: Callable[[str], list[str]] | str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.ignore_special_character = ignore_special_character
        self.min_repeat_sentence_length = min_repeat_sentence_length
        self.tokenizer = tokenizer
        if tokenizer is None:
            self._tokenize = split_sentence
        elif callable(tokenizer):
            self._tokenize = _space_separated(tokenizer)
        elif isinstance(tokenizer, str):
            self._tokenize = _space_separated(_lambda_from_string(tokenizer))
        else:
            raise ValueError(f"tokenizer must be None, a callable, or a lambda string, got {type(tokenizer)}")

    def sentence_keys(self, sentences: list[str]) -> list[str]:
        """The dedup key of every sentence (see the module docstring)."""
        if not sentences:
            return []
        stripped = [s.strip() for s in sentences]
        joined = "\n".join(stripped)
        if self.lowercase:
            joined = joined.lower()
        if self.ignore_special_character:
            joined = _without_special_characters(joined)
        keys = joined.split("\n")
        if len(keys) == len(sentences):
            return keys
        # a custom tokenizer left a "\n" inside a sentence: key by key
        keys = [k.lower() for k in stripped] if self.lowercase else stripped
        return [_without_special_characters(k) for k in keys] if self.ignore_special_character else keys

    def process_text(self, text: str) -> str:
        tokenize = self._tokenize
        lines = [tokenize(line) if line else [] for line in text.split("\n")]
        keys = iter(self.sentence_keys([s for sentences in lines for s in sentences]))
        min_len = self.min_repeat_sentence_length
        seen: set[str] = set()
        out_lines = []
        for sentences in lines:
            kept = []
            for sentence, key in zip(sentences, keys):
                if len(key) < min_len:
                    kept.append(sentence)
                elif key not in seen:
                    seen.add(key)
                    kept.append(sentence)
            out_lines.append("".join(kept))
        return "\n".join(out_lines)
