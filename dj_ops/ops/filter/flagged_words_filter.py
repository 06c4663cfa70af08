"""flagged_words_filter: keep samples whose share of flagged (obscene / offensive) words lies in
[min_ratio, max_ratio].

``flagged_words_ratio = (number of refined words in the flagged-word list of lang) / (number of
refined words)``; words lower-cased, split on space / newline / tab (or SentencePiece pieces),
stripped of special characters, plus their n-gram joins with ``use_words_aug``; 0.0 without
words, capped at 1.0.

Difference from DJ: with no ``flagged_words_dir`` the lists come from the ``glin-profanity``
package (maintained, MIT; its English list is the LDNOOBW list that DJ's ``flagged_words.json``
also derives from, see ``dj_ops.ops.common.word_lists``) instead of DJ's downloaded file.
"""

from __future__ import annotations

from dj_ops.core.registry import register
from dj_ops.ops.common.word_lists import WordListRatioFilter


@register("flagged_words_filter")
class FlaggedWordFilter(WordListRatioFilter):
    stat_bounds = {"flagged_words_ratio": ("min_ratio", "max_ratio")}
    stat_key = "flagged_words_ratio"
    words_type = "flagged_words"

    def __init__(
        self,
        lang: str = "en",
        tokenization: bool = False,
        min_ratio: float = 0.0,
        max_ratio: float = 0.045,
        flagged_words_dir: str | None = None,
        use_words_aug: bool = False,
        words_aug_group_sizes: list[int] = [2],  # noqa: B006 (DJ's default; never mutated)
        words_aug_join_char: str = "",
        sp_model_dir: str | None = None,
        **kwargs,
    ):
        """``flagged_words_dir``: folder with DJ-style ``*flagged_words*.json`` or ``<lang>.txt``
        lists (default: package glin-profanity).  ``sp_model_dir``: folder holding
        ``{lang}.sp.model`` for ``tokenization=True`` (not a DJ parameter; default: DJ's model
        cache)."""
        super().__init__(**kwargs)
        self._setup(lang, tokenization, min_ratio, max_ratio, flagged_words_dir, use_words_aug,
                    words_aug_group_sizes, words_aug_join_char, sp_model_dir)
