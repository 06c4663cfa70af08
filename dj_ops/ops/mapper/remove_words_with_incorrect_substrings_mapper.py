"""remove_words_with_incorrect_substrings_mapper: drop words containing any of ``substrings``
(default ``["http", "www", ".com", "href", "//"]``) once special characters are stripped from
their ends.

Words are the pieces between spaces, tabs and newlines; the text is rebuilt as Data-Juicer does
(single spaces, tabs and newlines kept as separators, empty pieces / lines dropped).  Only texts
containing a substring are filtered word by word.

With ``tokenization=True`` the words are SentencePiece pieces with "▁" removed; when any is
dropped the text becomes the remaining pieces joined with nothing between them (spaces lost), as
in Data-Juicer; otherwise the text is returned unchanged.
"""

from __future__ import annotations

from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import register
from dj_ops.ops.common.text import load_sentencepiece, rebuild_words, strip_special

_SENTENCEPIECE_SPACE = "▁"


@register("remove_words_with_incorrect_substrings_mapper")
class RemoveWordsWithIncorrectSubstringsMapper(TextMapper):
    def __init__(
        self,
        lang: str = "en",
        tokenization: bool = False,
        substrings: list[str] | None = None,
        sp_model_dir: str | None = None,
        **kwargs,
    ):
        """``sp_model_dir``: folder holding ``{lang}.sp.model`` for ``tokenization=True`` (not a DJ
        parameter; default: DJ's model cache)."""
        super().__init__(**kwargs)
        self.lang = lang
        self.tokenization = tokenization
        self.substrings = ["http", "www", ".com", "href", "//"] if substrings is None else list(substrings)
        self.tokenizer = load_sentencepiece(lang, sp_model_dir, self.name) if tokenization else None

    def _contains_substring(self, text: str) -> bool:
        return any(s in text for s in self.substrings)

    def keep_word(self, word: str) -> bool:
        # the stripped word is part of the word: a word without any substring is kept as it is
        return not self._contains_substring(word) or not self._contains_substring(strip_special(word))

    def process_text(self, text: str) -> str:
        if self.tokenizer is not None:
            pieces = [p.replace(_SENTENCEPIECE_SPACE, "") for p in self.tokenizer.encode(text)]
            kept = [p for p in pieces if self.keep_word(p)]
            return "".join(kept) if len(kept) != len(pieces) else text
        return rebuild_words(text, self.keep_word if self._contains_substring(text) else None)
